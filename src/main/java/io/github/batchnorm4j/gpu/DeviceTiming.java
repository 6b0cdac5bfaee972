package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.ArgumentChecks;
import io.github.batchnorm4j.BatchNormOptions;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.DeviceResidentTiming;
import io.github.batchnorm4j.Shape;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;
import java.util.function.UnaryOperator;

import static io.github.batchnorm4j.ArgumentChecks.HOST;

/**
 * What every device backend's {@link DeviceResidentTiming} shares (our kernels in {@link HostArrayBatchNormOps}, cuDNN
 * in {@code cudnn.CudnnBatchNormOps}): the validation of {@link DeviceResidentTiming#prepareTiming}'s arguments, the
 * device buffers of one prepared operation ({@link #prepare}: inputs uploaded once, outputs allocated, all freed
 * together on close), and the device-to-device copy bench measures as the device's copy bandwidth. A backend hands
 * over its {@link DeviceResidentOperations} ({@link #prepareTiming}); nothing else of the bridge is its own.
 */
public final class DeviceTiming {

    private DeviceTiming() {
    }

    /**
     * The whole of a backend's {@link DeviceResidentTiming#prepareTiming}: validates the arguments as the host API
     * would, uploads the inputs once, and returns the operation run by {@code ops} on the device's default stream,
     * returning once the device has finished it.
     *
     * @param measured wraps one run (our kernels reset and read the emulator's traffic metrics around it); a backend
     *                 that measures nothing passes {@link UnaryOperator#identity()}
     */
    public static DeviceResidentTiming.Timed prepareTiming(Device device, DeviceResidentOperations ops,
                                                           UnaryOperator<Runnable> measured,
                                                           DeviceResidentTiming.Op op, Shape shape, float[] x,
                                                           float[] dy, float[] gamma, float[] beta,
                                                           float[] runningMean, float[] runningVar, float[] saveMean,
                                                           float[] saveInvstd, double eps, double momentum) {
        checkArguments(op, shape, x, dy, gamma, beta, runningMean, runningVar, saveMean, saveInvstd, eps, momentum);
        DeviceStream s = device.defaultStream();
        return prepare(device, op, shape, x, dy, gamma, beta, runningMean, runningVar, saveMean, saveInvstd, p -> {
            Runnable call = switch (op) {
                case FORWARD_TRAINING -> () -> ops.forwardTraining(shape, p.x(), p.gamma(), p.beta(), eps,
                        p.runningMean(), p.runningVar(), momentum, p.out(), p.saveMean(), p.saveInvstd(), s);
                case FORWARD_INFERENCE -> () -> ops.forwardInference(shape, p.x(), p.gamma(), p.beta(),
                        p.runningMean(), p.runningVar(), eps, p.out(), s);
                case BACKWARD_TRAINING -> () -> ops.backwardTraining(shape, p.x(), p.dy(), p.gamma(), p.saveMean(),
                        p.saveInvstd(), p.out(), p.dgamma(), p.dbeta(), s);
            };
            return measured.apply(() -> {
                call.run();
                s.synchronize();
            });
        });
    }

    /**
     * {@link #prepareTiming} with x and dy (and y or dx) in the 16-bit {@code dtype}: validated as the 16-bit host API
     * would, uploaded once, run by {@code ops}' {@link DType} forms.
     */
    public static DeviceResidentTiming.Timed prepareTiming(Device device, DeviceResidentOperations ops,
                                                           UnaryOperator<Runnable> measured,
                                                           DeviceResidentTiming.Op op, Shape shape, DType dtype,
                                                           short[] x, short[] dy, float[] gamma, float[] beta,
                                                           float[] runningMean, float[] runningVar, float[] saveMean,
                                                           float[] saveInvstd, double eps, double momentum) {
        ArgumentChecks.sixteenBit(dtype);
        // the per-channel and scalar checks of the float32 form, on a stand-in x of the right length
        checkArguments(op, shape, new float[checkedLength("x", shape, x)],
                op == DeviceResidentTiming.Op.BACKWARD_TRAINING ? new float[checkedLength("dy", shape, dy)] : null,
                gamma, beta, runningMean, runningVar, saveMean, saveInvstd, eps, momentum);
        DeviceStream s = device.defaultStream();
        Buffers b = new Buffers(device);
        try {
            int c = shape.channels();
            boolean backward = op == DeviceResidentTiming.Op.BACKWARD_TRAINING;
            boolean training = op == DeviceResidentTiming.Op.FORWARD_TRAINING;
            DevicePointer px = b.upload(x);
            DevicePointer pdy = backward ? b.upload(dy) : null;
            DevicePointer pg = b.upload(gamma);
            DevicePointer pb = b.upload(beta);
            DevicePointer rm = backward ? null : b.upload(runningMean);
            DevicePointer rv = backward ? null : b.upload(runningVar);
            DevicePointer sm = backward ? b.upload(saveMean) : training ? b.alloc(c) : null;
            DevicePointer si = backward ? b.upload(saveInvstd) : training ? b.alloc(c) : null;
            DevicePointer out = b.allocBytes(2L * Math.max(1, x.length));
            DevicePointer dg = backward ? b.alloc(c) : null;
            DevicePointer db = backward ? b.alloc(c) : null;
            Runnable call = switch (op) {
                case FORWARD_TRAINING -> () -> ops.forwardTraining(shape, dtype, px, pg, pb, eps, rm, rv, momentum,
                        out, sm, si, s);
                case FORWARD_INFERENCE -> () -> ops.forwardInference(shape, dtype, px, pg, pb, rm, rv, eps, out, s);
                case BACKWARD_TRAINING -> () -> ops.backwardTraining(shape, dtype, px, pdy, pg, sm, si, out, dg, db,
                        s);
            };
            return b.timed(measured.apply(() -> {
                call.run();
                s.synchronize();
            }));
        } catch (RuntimeException e) {
            b.close();
            throw e;
        }
    }

    private static int checkedLength(String name, Shape shape, short[] a) {
        if (shape == null) throw new IllegalArgumentException("shape must not be null");
        if (a == null) throw new IllegalArgumentException(name + " must not be null");
        if (a.length != shape.elementCount()) {
            throw new IllegalArgumentException(name + ": expected " + shape.elementCount() + " values (shape "
                    + shape + "), got " + a.length);
        }
        return a.length;
    }

    /**
     * Checks the arguments {@code op} reads as the host API would (IllegalArgumentException naming the argument).
     * Arrays an op does not read may be anything.
     */
    public static void checkArguments(DeviceResidentTiming.Op op, Shape shape, float[] x, float[] dy, float[] gamma,
                                      float[] beta, float[] runningMean, float[] runningVar, float[] saveMean,
                                      float[] saveInvstd, double eps, double momentum) {
        if (op == null) throw new IllegalArgumentException("op must not be null");
        HOST.tensor("x", shape, x);
        HOST.optionalChannels("gamma", shape, gamma);
        HOST.optionalChannels("beta", shape, beta);
        BatchNormOptions.checkEps(eps);
        switch (op) {
            case FORWARD_TRAINING -> {
                ArgumentChecks.training(shape);
                HOST.channels("runningMean", shape, runningMean);
                HOST.channels("runningVar", shape, runningVar);
                BatchNormOptions.checkMomentum(momentum);
            }
            case FORWARD_INFERENCE -> {
                HOST.channels("runningMean", shape, runningMean);
                HOST.channels("runningVar", shape, runningVar);
            }
            case BACKWARD_TRAINING -> {
                ArgumentChecks.training(shape);
                HOST.tensor("dy", shape, dy);
                HOST.channels("saveMean", shape, saveMean);
                HOST.channels("saveInvstd", shape, saveInvstd);
            }
        }
    }

    /**
     * The device buffers of one prepared operation; those the operation does not use are null.
     *
     * @param x           input (uploaded)
     * @param dy          upstream gradient (uploaded; BACKWARD_TRAINING)
     * @param gamma       scale, or null for gamma = 1 (uploaded)
     * @param beta        shift, or null for beta = 0 (uploaded)
     * @param runningMean running mean (uploaded, updated by FORWARD_TRAINING at every run; FORWARD_*)
     * @param runningVar  running variance (as runningMean)
     * @param saveMean    saved mean: an output of FORWARD_TRAINING, an input (uploaded) of BACKWARD_TRAINING
     * @param saveInvstd  saved invstd (as saveMean)
     * @param out         y of the forward operations, dx of BACKWARD_TRAINING (allocated)
     * @param dgamma      gradient of gamma (allocated; BACKWARD_TRAINING)
     * @param dbeta       gradient of beta (allocated; BACKWARD_TRAINING)
     */
    public record Pointers(DevicePointer x, DevicePointer dy, DevicePointer gamma, DevicePointer beta,
                           DevicePointer runningMean, DevicePointer runningVar, DevicePointer saveMean,
                           DevicePointer saveInvstd, DevicePointer out, DevicePointer dgamma, DevicePointer dbeta) {
    }

    /**
     * Uploads what {@code op} reads and allocates what it writes (arguments already validated, e.g. by
     * {@link #checkArguments}), then returns the operation {@code launch} makes from those buffers. The launch must
     * return once the device has finished. On any exception the buffers are freed before it propagates.
     */
    public static DeviceResidentTiming.Timed prepare(Device device, DeviceResidentTiming.Op op, Shape shape,
                                                     float[] x, float[] dy, float[] gamma, float[] beta,
                                                     float[] runningMean, float[] runningVar, float[] saveMean,
                                                     float[] saveInvstd, Function<Pointers, Runnable> launch) {
        Buffers b = new Buffers(device);
        try {
            int c = shape.channels();
            boolean backward = op == DeviceResidentTiming.Op.BACKWARD_TRAINING;
            boolean training = op == DeviceResidentTiming.Op.FORWARD_TRAINING;
            Pointers p = new Pointers(b.upload(x), backward ? b.upload(dy) : null, b.upload(gamma), b.upload(beta),
                    backward ? null : b.upload(runningMean), backward ? null : b.upload(runningVar),
                    backward ? b.upload(saveMean) : training ? b.alloc(c) : null,
                    backward ? b.upload(saveInvstd) : training ? b.alloc(c) : null,
                    b.alloc(x.length), backward ? b.alloc(c) : null, backward ? b.alloc(c) : null);
            return b.timed(launch.apply(p));
        } catch (RuntimeException e) {
            b.close();
            throw e;
        }
    }

    /**
     * A device-to-device copy of {@code bytes} on the device's default stream, timed to completion (bench's yardstick
     * for {@link DeviceResidentTiming#prepareCopy}).
     */
    public static DeviceResidentTiming.Timed deviceCopy(Device device, long bytes) {
        if (bytes < 1) throw new IllegalArgumentException("bytes must be >= 1, got " + bytes);
        Buffers b = new Buffers(device);
        try {
            DevicePointer src = b.allocBytes(bytes);
            DevicePointer dst = b.allocBytes(bytes);
            DeviceStream s = device.defaultStream();
            device.memset(src, (byte) 1, bytes, s);
            return b.timed(() -> {
                device.copyDeviceToDevice(src, dst, bytes, s);
                s.synchronize();
            });
        } catch (RuntimeException e) {
            b.close();
            throw e;
        }
    }

    /**
     * The device buffers of one prepared operation. Allocate and upload through it, then hand it its launch with
     * {@link #timed}; on an exception before that, {@link #close} it. Not thread-safe.
     */
    private static final class Buffers implements AutoCloseable {
        private final Device device;
        private final List<DeviceBuffer> owned = new ArrayList<>();

        /** Buffers on {@code device}, copied on its default stream. */
        Buffers(Device device) {
            if (device == null) throw new IllegalArgumentException("device must not be null");
            this.device = device;
        }

        /** A new buffer holding a copy of {@code host}, or null when host is null (an absent optional input). */
        DevicePointer upload(float[] host) {
            if (host == null) return null;
            DevicePointer p = alloc(host.length);
            device.copyToDevice(host, 0, p, host.length, device.defaultStream());
            return p;
        }

        /** A new buffer holding a copy of 16-bit {@code host}. */
        DevicePointer upload(short[] host) {
            DevicePointer p = allocBytes(2L * Math.max(1, host.length));
            device.copyToDevice(host, 0, p, host.length, device.defaultStream());
            return p;
        }

        /** A new uninitialized buffer of {@code floats} floats (at least one, so that every pointer is valid). */
        DevicePointer alloc(long floats) {
            return allocBytes(Math.max(1, floats) * Float.BYTES);
        }

        private DevicePointer allocBytes(long bytes) {
            DeviceBuffer b = device.allocate(bytes);
            owned.add(b);
            return b.pointer();
        }

        /**
         * The prepared operation: {@code body} launches it and returns once the device has finished; closing it frees
         * these buffers.
         */
        DeviceResidentTiming.Timed timed(Runnable body) {
            return new DeviceResidentTiming.Timed() {
                private boolean closed;

                @Override
                public void run() {
                    if (closed) throw new IllegalStateException("timed operation is closed");
                    body.run();
                }

                @Override
                public void close() {
                    if (closed) return;
                    closed = true;
                    Buffers.this.close();
                }
            };
        }

        /** Frees every buffer (idempotent). */
        @Override
        public void close() {
            owned.forEach(DeviceBuffer::close);
            owned.clear();
        }
    }
}
