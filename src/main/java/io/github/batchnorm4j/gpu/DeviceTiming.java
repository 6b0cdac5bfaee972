package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.AbstractBatchNormOps;
import io.github.batchnorm4j.BatchNormOptions;
import io.github.batchnorm4j.DeviceResidentTiming;
import io.github.batchnorm4j.Shape;
import java.util.ArrayList;
import java.util.List;

/**
 * What every device backend's {@link DeviceResidentTiming} shares (our kernels in {@link GpuBatchNormOps}, cuDNN in
 * {@code cudnn.CudnnBatchNormOps}): the validation of {@link DeviceResidentTiming#prepareTiming}'s arguments, the
 * device buffers of one prepared operation ({@link Buffers}: uploaded inputs and allocated outputs, freed together),
 * and the device-to-device copy bench measures as the device's copy bandwidth.
 */
public final class DeviceTiming {

    private DeviceTiming() {
    }

    /**
     * Checks the arguments {@code op} reads as the host API would (IllegalArgumentException naming the argument).
     * Arrays an op does not read may be anything.
     */
    public static void checkArguments(DeviceResidentTiming.Op op, Shape shape, float[] x, float[] dy, float[] gamma,
                                      float[] beta, float[] runningMean, float[] runningVar, float[] saveMean,
                                      float[] saveInvstd, double eps, double momentum) {
        if (op == null) throw new IllegalArgumentException("op must not be null");
        AbstractBatchNormOps.checkTensor("x", shape, x);
        AbstractBatchNormOps.checkOptionalChannels("gamma", shape, gamma);
        AbstractBatchNormOps.checkOptionalChannels("beta", shape, beta);
        BatchNormOptions.checkEps(eps);
        switch (op) {
            case FORWARD_TRAINING -> {
                AbstractBatchNormOps.checkTraining(shape);
                AbstractBatchNormOps.checkChannels("runningMean", shape, runningMean);
                AbstractBatchNormOps.checkChannels("runningVar", shape, runningVar);
                BatchNormOptions.checkMomentum(momentum);
            }
            case FORWARD_INFERENCE -> {
                AbstractBatchNormOps.checkChannels("runningMean", shape, runningMean);
                AbstractBatchNormOps.checkChannels("runningVar", shape, runningVar);
            }
            case BACKWARD_TRAINING -> {
                AbstractBatchNormOps.checkTraining(shape);
                AbstractBatchNormOps.checkTensor("dy", shape, dy);
                AbstractBatchNormOps.checkChannels("saveMean", shape, saveMean);
                AbstractBatchNormOps.checkChannels("saveInvstd", shape, saveInvstd);
            }
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
    public static final class Buffers implements AutoCloseable {
        private final Device device;
        private final List<DeviceBuffer> owned = new ArrayList<>();

        /** Buffers on {@code device}, copied on its default stream. */
        public Buffers(Device device) {
            if (device == null) throw new IllegalArgumentException("device must not be null");
            this.device = device;
        }

        /** A new buffer holding a copy of {@code host}, or null when host is null (an absent optional input). */
        public DevicePointer upload(float[] host) {
            if (host == null) return null;
            DevicePointer p = alloc(host.length);
            device.copyToDevice(host, 0, p, host.length, device.defaultStream());
            return p;
        }

        /** A new uninitialized buffer of {@code floats} floats (at least one, so that every pointer is valid). */
        public DevicePointer alloc(long floats) {
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
        public DeviceResidentTiming.Timed timed(Runnable body) {
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
