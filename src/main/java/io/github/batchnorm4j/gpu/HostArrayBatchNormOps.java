package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.AbstractSplitBatchNormOps;
import io.github.batchnorm4j.ChannelStatistics;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.DeviceResidentTiming;
import io.github.batchnorm4j.GradientSums;
import io.github.batchnorm4j.Shape;

import java.util.Optional;

/**
 * Our CUDA kernels behind the host API {@link io.github.batchnorm4j.BatchNormOps}, over any {@link Device} (JCuda or
 * the PTX emulator): each call copies its float[] inputs to the device, runs {@link DeviceResidentBatchNorm}, and
 * copies the outputs back. Device staging buffers grow to the largest shape seen and are reused. Running statistics are
 * copied back only after every launch succeeded, so a failing call leaves the caller's arrays unchanged.
 *
 * <p>On a {@link MeasuringDevice} (the emulator) every operation resets the metrics when it starts and records them
 * when it ends: {@link #lastOperationMetrics()} is the kernels' traffic only (host copies are not kernel traffic).
 * For {@code bench}, {@link #prepareTiming} uploads an operation's inputs once and runs it on the device-resident API.
 * Not thread-safe.
 */
public final class HostArrayBatchNormOps extends AbstractSplitBatchNormOps implements MeasuredOps, DeviceResidentTiming {
    private final Device device;
    private final boolean ownsDevice;
    private final String name;
    private final DeviceResidentBatchNorm kernels;
    private final Staging staging;
    private TrafficMetrics last;

    /**
     * @param name       backend name reported by {@link #name()} ("cuda" or "emulator")
     * @param device     the device to run on
     * @param ownsDevice whether {@link #close()} also closes the device
     * @throws DeviceException when the kernel modules cannot be loaded (the device is closed first if owned)
     */
    public HostArrayBatchNormOps(String name, Device device, boolean ownsDevice) {
        if (name == null || name.isBlank()) throw new IllegalArgumentException("name must not be empty");
        if (device == null) throw new IllegalArgumentException("device must not be null");
        this.name = name;
        this.device = device;
        this.ownsDevice = ownsDevice;
        try {
            this.kernels = new DeviceResidentBatchNorm(device);
        } catch (RuntimeException e) {
            if (ownsDevice) device.close();
            throw e;
        }
        this.staging = new Staging(device);
    }

    @Override
    public String name() {
        return name;
    }

    /** The device-resident API over the same device and modules (shares this object's workspace: same thread only). */
    public DeviceResidentBatchNorm deviceApi() {
        return kernels;
    }

    @Override
    public Optional<TrafficMetrics> lastOperationMetrics() {
        return Optional.ofNullable(last);
    }

    @Override
    public Timed prepareTiming(Op op, Shape shape, float[] x, float[] dy, float[] gamma, float[] beta,
                               float[] runningMean, float[] runningVar, float[] saveMean, float[] saveInvstd,
                               double eps, double momentum) {
        checkOpen();
        DeviceTiming.checkArguments(op, shape, x, dy, gamma, beta, runningMean, runningVar, saveMean, saveInvstd, eps,
                momentum);
        DeviceStream s = device.defaultStream();
        return DeviceTiming.prepare(device, op, shape, x, dy, gamma, beta, runningMean, runningVar, saveMean,
                saveInvstd, p -> {
                    Runnable call = switch (op) {
                        case FORWARD_TRAINING -> () -> kernels.forwardTraining(shape, p.x(), p.gamma(), p.beta(), eps,
                                p.runningMean(), p.runningVar(), momentum, p.out(), p.saveMean(), p.saveInvstd(), s);
                        case FORWARD_INFERENCE -> () -> kernels.forwardInference(shape, p.x(), p.gamma(), p.beta(),
                                p.runningMean(), p.runningVar(), eps, p.out(), s);
                        case BACKWARD_TRAINING -> () -> kernels.backwardTraining(shape, p.x(), p.dy(), p.gamma(),
                                p.saveMean(), p.saveInvstd(), p.out(), p.dgamma(), p.dbeta(), s);
                    };
                    return () -> {
                        begin();
                        call.run();
                        s.synchronize();
                        end();
                    };
                });
    }

    @Override
    public Timed prepareCopy(long bytes) {
        checkOpen();
        return DeviceTiming.deviceCopy(device, bytes);
    }

    @Override
    protected ChannelStatistics doStatistics(Shape shape, float[] x) {
        DeviceStream s = device.defaultStream();
        staging.ensure(shape);
        upload(x, staging.a, s);
        begin();
        ChannelStatistics out = kernels.statistics(shape, staging.a.pointer(), s);
        end();
        return out;
    }

    @Override
    protected void doForwardTraining(Shape shape, float[] x, float[] gamma, float[] beta, double eps,
                                     float[] runningMean, float[] runningVar, double momentum, float[] y,
                                     float[] saveMean, float[] saveInvstd) {
        DeviceStream s = device.defaultStream();
        staging.ensure(shape);
        upload(x, staging.a, s);
        DevicePointer g = uploadChannels(gamma, 0, s);
        DevicePointer b = uploadChannels(beta, 1, s);
        DevicePointer rm = uploadChannels(runningMean, 2, s);
        DevicePointer rv = uploadChannels(runningVar, 3, s);
        begin();
        kernels.forwardTraining(shape, staging.a.pointer(), g, b, eps, rm, rv, momentum, staging.out.pointer(),
                staging.channel(4), staging.channel(5), s);
        end();
        downloadForward(s, y, rm, rv, saveMean, saveInvstd, runningMean, runningVar);
    }

    /**
     * Copies y (unless null: the caller copies a 16-bit y itself), the saved and the running statistics back; the
     * caller's per-channel arrays only after every copy.
     */
    private void downloadForward(DeviceStream s, float[] y, DevicePointer rm, DevicePointer rv, float[] saveMean,
                                 float[] saveInvstd, float[] runningMean, float[] runningVar) {
        int c = saveMean.length;
        float[] mean = new float[c];
        float[] invstd = new float[c];
        float[] newRm = runningMean == null ? null : new float[c];
        float[] newRv = runningVar == null ? null : new float[c];
        if (y != null) device.copyToHost(staging.out.pointer(), y, 0, y.length, s);
        device.copyToHost(staging.channel(4), mean, 0, mean.length, s);
        device.copyToHost(staging.channel(5), invstd, 0, invstd.length, s);
        if (newRm != null) {
            device.copyToHost(rm, newRm, 0, newRm.length, s);
            device.copyToHost(rv, newRv, 0, newRv.length, s);
        }
        // Only now, with every copy done, touch the caller's per-channel state.
        System.arraycopy(mean, 0, saveMean, 0, mean.length);
        System.arraycopy(invstd, 0, saveInvstd, 0, invstd.length);
        if (newRm != null) {
            System.arraycopy(newRm, 0, runningMean, 0, newRm.length);
            System.arraycopy(newRv, 0, runningVar, 0, newRv.length);
        }
    }

    /**
     * The merged statistics travel as one record ({@link DeviceResidentBatchNorm#statisticsRecordFloats}): center =
     * the mean rounded to float, mean − center the remainder (so the mean keeps its digits at |mean| ≫ std), M2 and
     * the count; the merge kernel with one record finishes exactly as the fused forward does.
     */
    @Override
    protected void doForwardWithStatistics(Shape shape, float[] x, ChannelStatistics statistics, float[] gamma,
                                           float[] beta, double eps, float[] runningMean, float[] runningVar,
                                           double momentum, float[] y, float[] saveMean, float[] saveInvstd) {
        DeviceStream s = device.defaultStream();
        staging.ensure(shape);
        upload(x, staging.a, s);
        DevicePointer g = uploadChannels(gamma, 0, s);
        DevicePointer b = uploadChannels(beta, 1, s);
        DevicePointer rm = uploadChannels(runningMean, 2, s);
        DevicePointer rv = uploadChannels(runningVar, 3, s);
        int c = shape.channels();
        float[] record = new float[DeviceResidentBatchNorm.statisticsRecordFloats(c)];
        System.arraycopy(DeviceResidentBatchNorm.countWords(statistics.count()), 0, record, 0, 2);
        for (int k = 0; k < c; k++) {
            float center = (float) statistics.mean(k);
            record[2 + k] = center;
            record[2 + c + k] = (float) (statistics.mean(k) - center);
            record[2 + 2 * c + k] = (float) statistics.m2(k);
        }
        device.copyToDevice(record, 0, staging.record.pointer(), record.length, s);
        begin();
        kernels.forwardWithRecords(shape, staging.a.pointer(), staging.record.pointer(), 1, g, b, eps, rm, rv,
                momentum, staging.out.pointer(), staging.channel(4), staging.channel(5), s);
        end();
        downloadForward(s, y, rm, rv, saveMean, saveInvstd, runningMean, runningVar);
    }

    @Override
    protected GradientSums doGradientSums(Shape shape, float[] x, float[] dy, float[] saveMean, float[] saveInvstd) {
        DeviceStream s = device.defaultStream();
        staging.ensure(shape);
        upload(x, staging.a, s);
        upload(dy, staging.b, s);
        DevicePointer m = uploadChannels(saveMean, 2, s);
        DevicePointer is = uploadChannels(saveInvstd, 3, s);
        begin();
        kernels.gradientRecord(shape, staging.a.pointer(), staging.b.pointer(), m, is, staging.record.pointer(), s);
        end();
        int c = shape.channels();
        float[] record = new float[DeviceResidentBatchNorm.gradientRecordFloats(c)];
        device.copyToHost(staging.record.pointer(), record, 0, record.length, s);
        double[] sumDy = new double[c];
        double[] sumDyXhat = new double[c];
        for (int k = 0; k < c; k++) {
            sumDy[k] = record[2 + k];
            sumDyXhat[k] = record[2 + c + k];
        }
        return new GradientSums(shape.reductionSize(), sumDy, sumDyXhat);
    }

    @Override
    protected void doBackwardWithSums(Shape shape, float[] x, float[] dy, float[] gamma, float[] saveMean,
                                      float[] saveInvstd, GradientSums sums, float[] dx) {
        DeviceStream s = device.defaultStream();
        staging.ensure(shape);
        upload(x, staging.a, s);
        upload(dy, staging.b, s);
        DevicePointer g = uploadChannels(gamma, 0, s);
        DevicePointer m = uploadChannels(saveMean, 2, s);
        DevicePointer is = uploadChannels(saveInvstd, 3, s);
        int c = shape.channels();
        float[] record = new float[DeviceResidentBatchNorm.gradientRecordFloats(c)];
        System.arraycopy(DeviceResidentBatchNorm.countWords(sums.count()), 0, record, 0, 2);
        for (int k = 0; k < c; k++) {
            record[2 + k] = (float) sums.sumDy(k);
            record[2 + c + k] = (float) sums.sumDyXhat(k);
        }
        device.copyToDevice(record, 0, staging.record.pointer(), record.length, s);
        begin();
        kernels.backwardWithRecords(shape, staging.a.pointer(), staging.b.pointer(), g, m, is,
                staging.record.pointer(), 1, staging.out.pointer(), null, null, s);
        end();
        device.copyToHost(staging.out.pointer(), dx, 0, dx.length, s);
    }

    @Override
    protected void doForwardInference(Shape shape, float[] x, float[] gamma, float[] beta, float[] runningMean,
                                      float[] runningVar, double eps, float[] y) {
        DeviceStream s = device.defaultStream();
        staging.ensure(shape);
        upload(x, staging.a, s);
        DevicePointer g = uploadChannels(gamma, 0, s);
        DevicePointer b = uploadChannels(beta, 1, s);
        DevicePointer rm = uploadChannels(runningMean, 2, s);
        DevicePointer rv = uploadChannels(runningVar, 3, s);
        begin();
        kernels.forwardInference(shape, staging.a.pointer(), g, b, rm, rv, eps, staging.out.pointer(), s);
        end();
        device.copyToHost(staging.out.pointer(), y, 0, y.length, s);
    }

    @Override
    protected void doNormalize(Shape shape, float[] x, float[] gamma, float[] beta, float[] mean, float[] invstd,
                               float[] y) {
        DeviceStream s = device.defaultStream();
        staging.ensure(shape);
        upload(x, staging.a, s);
        DevicePointer g = uploadChannels(gamma, 0, s);
        DevicePointer b = uploadChannels(beta, 1, s);
        DevicePointer m = uploadChannels(mean, 2, s);
        DevicePointer is = uploadChannels(invstd, 3, s);
        begin();
        kernels.normalize(shape, staging.a.pointer(), g, b, m, is, staging.out.pointer(), s);
        end();
        device.copyToHost(staging.out.pointer(), y, 0, y.length, s);
    }

    @Override
    protected void doBackwardTraining(Shape shape, float[] x, float[] dy, float[] gamma, float[] saveMean,
                                      float[] saveInvstd, float[] dx, float[] dgamma, float[] dbeta) {
        DeviceStream s = device.defaultStream();
        staging.ensure(shape);
        upload(x, staging.a, s);
        upload(dy, staging.b, s);
        DevicePointer g = uploadChannels(gamma, 0, s);
        DevicePointer m = uploadChannels(saveMean, 2, s);
        DevicePointer is = uploadChannels(saveInvstd, 3, s);
        DevicePointer dg = dgamma != null ? staging.channel(4) : null;
        DevicePointer db = dbeta != null ? staging.channel(5) : null;
        begin();
        kernels.backwardTraining(shape, staging.a.pointer(), staging.b.pointer(), g, m, is, staging.out.pointer(),
                dg, db, s);
        end();
        downloadGradients(s, dx, dgamma, dbeta);
    }

    @Override
    protected void doBackwardInference(Shape shape, float[] x, float[] dy, float[] gamma, float[] runningMean,
                                       float[] runningVar, double eps, float[] dx, float[] dgamma, float[] dbeta) {
        DeviceStream s = device.defaultStream();
        staging.ensure(shape);
        upload(x, staging.a, s);
        upload(dy, staging.b, s);
        DevicePointer g = uploadChannels(gamma, 0, s);
        DevicePointer rm = uploadChannels(runningMean, 2, s);
        DevicePointer rv = uploadChannels(runningVar, 3, s);
        DevicePointer dg = dgamma != null ? staging.channel(4) : null;
        DevicePointer db = dbeta != null ? staging.channel(5) : null;
        begin();
        kernels.backwardInference(shape, staging.a.pointer(), staging.b.pointer(), g, rm, rv, eps,
                staging.out.pointer(), dg, db, s);
        end();
        downloadGradients(s, dx, dgamma, dbeta);
    }

    // ---- 16-bit activations: the same staging, the kernels of the storage type ---------------------------------------

    @Override
    protected ChannelStatistics doStatistics(Shape shape, DType dtype, short[] x) {
        DeviceStream s = device.defaultStream();
        staging.ensure(shape);
        upload(x, staging.a, s);
        begin();
        ChannelStatistics out = kernels.statistics(shape, dtype, staging.a.pointer(), s);
        end();
        return out;
    }

    @Override
    protected void doForwardTraining(Shape shape, DType dtype, short[] x, float[] gamma, float[] beta, double eps,
                                     float[] runningMean, float[] runningVar, double momentum, short[] y,
                                     float[] saveMean, float[] saveInvstd) {
        DeviceStream s = device.defaultStream();
        staging.ensure(shape);
        upload(x, staging.a, s);
        DevicePointer g = uploadChannels(gamma, 0, s);
        DevicePointer b = uploadChannels(beta, 1, s);
        DevicePointer rm = uploadChannels(runningMean, 2, s);
        DevicePointer rv = uploadChannels(runningVar, 3, s);
        begin();
        kernels.forwardTraining(shape, dtype, staging.a.pointer(), g, b, eps, rm, rv, momentum, staging.out.pointer(),
                staging.channel(4), staging.channel(5), s);
        end();
        short[] out = new short[y.length];
        device.copyToHost(staging.out.pointer(), out, 0, out.length, s);
        downloadForward(s, null, rm, rv, saveMean, saveInvstd, runningMean, runningVar);
        System.arraycopy(out, 0, y, 0, y.length);
    }

    @Override
    protected void doForwardInference(Shape shape, DType dtype, short[] x, float[] gamma, float[] beta,
                                      float[] runningMean, float[] runningVar, double eps, short[] y) {
        DeviceStream s = device.defaultStream();
        staging.ensure(shape);
        upload(x, staging.a, s);
        DevicePointer g = uploadChannels(gamma, 0, s);
        DevicePointer b = uploadChannels(beta, 1, s);
        DevicePointer rm = uploadChannels(runningMean, 2, s);
        DevicePointer rv = uploadChannels(runningVar, 3, s);
        begin();
        kernels.forwardInference(shape, dtype, staging.a.pointer(), g, b, rm, rv, eps, staging.out.pointer(), s);
        end();
        device.copyToHost(staging.out.pointer(), y, 0, y.length, s);
    }

    @Override
    protected void doNormalize(Shape shape, DType dtype, short[] x, float[] gamma, float[] beta, float[] mean,
                               float[] invstd, short[] y) {
        DeviceStream s = device.defaultStream();
        staging.ensure(shape);
        upload(x, staging.a, s);
        DevicePointer g = uploadChannels(gamma, 0, s);
        DevicePointer b = uploadChannels(beta, 1, s);
        DevicePointer m = uploadChannels(mean, 2, s);
        DevicePointer is = uploadChannels(invstd, 3, s);
        begin();
        kernels.normalize(shape, dtype, staging.a.pointer(), g, b, m, is, staging.out.pointer(), s);
        end();
        device.copyToHost(staging.out.pointer(), y, 0, y.length, s);
    }

    @Override
    protected void doBackwardTraining(Shape shape, DType dtype, short[] x, short[] dy, float[] gamma,
                                      float[] saveMean, float[] saveInvstd, short[] dx, float[] dgamma,
                                      float[] dbeta) {
        DeviceStream s = device.defaultStream();
        staging.ensure(shape);
        upload(x, staging.a, s);
        upload(dy, staging.b, s);
        DevicePointer g = uploadChannels(gamma, 0, s);
        DevicePointer m = uploadChannels(saveMean, 2, s);
        DevicePointer is = uploadChannels(saveInvstd, 3, s);
        DevicePointer dg = dgamma != null ? staging.channel(4) : null;
        DevicePointer db = dbeta != null ? staging.channel(5) : null;
        begin();
        kernels.backwardTraining(shape, dtype, staging.a.pointer(), staging.b.pointer(), g, m, is,
                staging.out.pointer(), dg, db, s);
        end();
        downloadGradients(s, dx, dgamma, dbeta);
    }

    @Override
    protected void doBackwardInference(Shape shape, DType dtype, short[] x, short[] dy, float[] gamma,
                                       float[] runningMean, float[] runningVar, double eps, short[] dx,
                                       float[] dgamma, float[] dbeta) {
        DeviceStream s = device.defaultStream();
        staging.ensure(shape);
        upload(x, staging.a, s);
        upload(dy, staging.b, s);
        DevicePointer g = uploadChannels(gamma, 0, s);
        DevicePointer rm = uploadChannels(runningMean, 2, s);
        DevicePointer rv = uploadChannels(runningVar, 3, s);
        DevicePointer dg = dgamma != null ? staging.channel(4) : null;
        DevicePointer db = dbeta != null ? staging.channel(5) : null;
        begin();
        kernels.backwardInference(shape, dtype, staging.a.pointer(), staging.b.pointer(), g, rm, rv, eps,
                staging.out.pointer(), dg, db, s);
        end();
        downloadGradients(s, dx, dgamma, dbeta);
    }

    private void downloadGradients(DeviceStream s, short[] dx, float[] dgamma, float[] dbeta) {
        device.copyToHost(staging.out.pointer(), dx, 0, dx.length, s);
        if (dgamma != null) device.copyToHost(staging.channel(4), dgamma, 0, dgamma.length, s);
        if (dbeta != null) device.copyToHost(staging.channel(5), dbeta, 0, dbeta.length, s);
    }

    private void upload(short[] host, DeviceBuffer dst, DeviceStream s) {
        device.copyToDevice(host, 0, dst.pointer(), host.length, s);
    }

    @Override
    protected void doClose() {
        try {
            staging.close();
            kernels.close();
        } finally {
            if (ownsDevice) device.close();
        }
    }

    private void downloadGradients(DeviceStream s, float[] dx, float[] dgamma, float[] dbeta) {
        device.copyToHost(staging.out.pointer(), dx, 0, dx.length, s);
        if (dgamma != null) device.copyToHost(staging.channel(4), dgamma, 0, dgamma.length, s);
        if (dbeta != null) device.copyToHost(staging.channel(5), dbeta, 0, dbeta.length, s);
    }

    private void upload(float[] host, DeviceBuffer dst, DeviceStream s) {
        device.copyToDevice(host, 0, dst.pointer(), host.length, s);
    }

    private DevicePointer uploadChannels(float[] host, int slot, DeviceStream s) {
        if (host == null) return null;
        DevicePointer p = staging.channel(slot);
        device.copyToDevice(host, 0, p, host.length, s);
        return p;
    }

    private void begin() {
        last = null;
        if (device instanceof MeasuringDevice m) m.resetMetrics();
    }

    private void end() {
        if (device instanceof MeasuringDevice m) {
            device.synchronize();
            last = m.metrics();
        }
    }

    /** Host-API staging buffers: tensors a (x), b (dy), out (y or dx), and six per-channel slots. */
    private static final class Staging implements AutoCloseable {
        private static final int CHANNEL_SLOTS = 6;
        private final Device device;
        DeviceBuffer a;
        DeviceBuffer b;
        DeviceBuffer out;
        DeviceBuffer channels;
        DeviceBuffer record;   // one statistics or gradient record (the split operations)
        private long elementCap;
        private int channelCap;

        Staging(Device device) {
            this.device = device;
        }

        void ensure(Shape shape) {
            long n = shape.elementCount();
            int c = shape.channels();
            if (n > elementCap) {
                closeTensors();
                a = device.allocate(n * 4);
                b = device.allocate(n * 4);
                out = device.allocate(n * 4);
                elementCap = n;
            }
            if (c > channelCap) {
                if (channels != null) channels.close();
                channels = null;
                if (record != null) record.close();
                record = null;
                channels = device.allocate(slotBytes(c) * CHANNEL_SLOTS);
                record = device.allocate(4L * DeviceResidentBatchNorm.statisticsRecordFloats(c));
                channelCap = c;
            }
        }

        DevicePointer channel(int slot) {
            return channels.at(slot * slotBytes(channelCap));
        }

        private static long slotBytes(int c) {
            return ((c * 4L) + 255) & ~255L;
        }

        private void closeTensors() {
            for (DeviceBuffer buf : new DeviceBuffer[]{a, b, out}) {
                if (buf != null) buf.close();
            }
            a = b = out = null;
            elementCap = 0;
        }

        @Override
        public void close() {
            closeTensors();
            if (channels != null) channels.close();
            channels = null;
            if (record != null) record.close();
            record = null;
            channelCap = 0;
        }
    }
}
