package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.AbstractSplitBatchNormOps;
import io.github.batchnorm4j.ChannelStatistics;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.DeviceResidentTiming;
import io.github.batchnorm4j.GradientSums;
import io.github.batchnorm4j.Shape;

import java.util.List;
import java.util.Optional;

import static io.github.batchnorm4j.gpu.HostArrayBatchNormOps.Slot.BETA;
import static io.github.batchnorm4j.gpu.HostArrayBatchNormOps.Slot.GAMMA;
import static io.github.batchnorm4j.gpu.HostArrayBatchNormOps.Slot.MEAN;
import static io.github.batchnorm4j.gpu.HostArrayBatchNormOps.Slot.SAVE_INVSTD_OR_DBETA;
import static io.github.batchnorm4j.gpu.HostArrayBatchNormOps.Slot.SAVE_MEAN_OR_DGAMMA;
import static io.github.batchnorm4j.gpu.HostArrayBatchNormOps.Slot.VAR_OR_INVSTD;
import static io.github.batchnorm4j.gpu.HostArrayBatchNormOps.Tensor.DY;
import static io.github.batchnorm4j.gpu.HostArrayBatchNormOps.Tensor.OUT;
import static io.github.batchnorm4j.gpu.HostArrayBatchNormOps.Tensor.X;

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
public final class HostArrayBatchNormOps extends AbstractSplitBatchNormOps implements MeasuredOps, DeviceResidentTiming,
        LaunchReporting {
    private final Device device;
    private final boolean ownsDevice;
    private final String name;
    private final DeviceResidentBatchNorm kernels;
    private final Staging staging;
    private final FusedBackwardStaging fusedBackward;
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
        this.fusedBackward = new FusedBackwardStaging(device);
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
    public List<KernelLaunch> lastOperationLaunches() {
        return kernels.lastOperationLaunches();
    }

    @Override
    public Timed prepareTiming(Op op, Shape shape, float[] x, float[] dy, float[] gamma, float[] beta,
                               float[] runningMean, float[] runningVar, float[] saveMean, float[] saveInvstd,
                               double eps, double momentum) {
        checkOpen();
        return DeviceTiming.prepareTiming(device, kernels, run -> () -> {
            begin();
            run.run();
            end();
        }, op, shape, x, dy, gamma, beta, runningMean, runningVar, saveMean, saveInvstd, eps, momentum);
    }

    @Override
    public Timed prepareTiming(Op op, Shape shape, DType dtype, short[] x, short[] dy, float[] gamma, float[] beta,
                               float[] runningMean, float[] runningVar, float[] saveMean, float[] saveInvstd,
                               double eps, double momentum) {
        checkOpen();
        return DeviceTiming.prepareTiming(device, kernels, run -> () -> {
            begin();
            run.run();
            end();
        }, op, shape, dtype, x, dy, gamma, beta, runningMean, runningVar, saveMean, saveInvstd, eps, momentum);
    }

    @Override
    public Timed prepareCopy(long bytes) {
        checkOpen();
        return DeviceTiming.deviceCopy(device, bytes);
    }

    @Override
    protected ChannelStatistics doStatistics(Shape shape, float[] x) {
        Staged in = stage(shape, x, null, null, null, null, null);
        begin();
        ChannelStatistics out = kernels.statistics(shape, in.x(), in.s());
        end();
        return out;
    }

    @Override
    protected void doForwardTraining(Shape shape, float[] x, float[] gamma, float[] beta, double eps,
                                     float[] runningMean, float[] runningVar, double momentum, float[] y,
                                     float[] saveMean, float[] saveInvstd) {
        Staged in = stage(shape, x, null, gamma, beta, runningMean, runningVar);
        begin();
        kernels.forwardTraining(shape, in.x(), in.gamma(), in.beta(), eps, in.mean(), in.varOrInvstd(), momentum,
                staging.tensor(OUT), staging.slot(SAVE_MEAN_OR_DGAMMA), staging.slot(SAVE_INVSTD_OR_DBETA), in.s());
        end();
        downloadForward(in, y, saveMean, saveInvstd, runningMean, runningVar);
    }

    // ---- fused batch norm + (add) + ReLU, forward: the device's fused kernels (z staged in the dy tensor) --------

    @Override
    protected void doForwardTrainingRelu(Shape shape, float[] x, float[] z, float[] gamma, float[] beta, double eps,
                                         float[] runningMean, float[] runningVar, double momentum, float[] y,
                                         int[] mask, float[] saveMean, float[] saveInvstd) {
        Staged in = stage(shape, x, z, gamma, beta, runningMean, runningVar);
        begin();
        kernels.forwardTrainingRelu(shape, DType.FLOAT32, in.x(), in.dy(), in.gamma(), in.beta(), eps, in.mean(),
                in.varOrInvstd(), momentum, staging.tensor(OUT), maskOrNull(shape, mask),
                staging.slot(SAVE_MEAN_OR_DGAMMA), staging.slot(SAVE_INVSTD_OR_DBETA), in.s());
        end();
        int[] bits = downloadMask(in.s(), mask);
        downloadForward(in, y, saveMean, saveInvstd, runningMean, runningVar);
        if (bits != null) System.arraycopy(bits, 0, mask, 0, bits.length);
    }

    @Override
    protected void doForwardInferenceRelu(Shape shape, float[] x, float[] z, float[] gamma, float[] beta,
                                          float[] runningMean, float[] runningVar, double eps, float[] y,
                                          int[] mask) {
        Staged in = stage(shape, x, z, gamma, beta, runningMean, runningVar);
        begin();
        kernels.forwardInferenceRelu(shape, DType.FLOAT32, in.x(), in.dy(), in.gamma(), in.beta(), in.mean(),
                in.varOrInvstd(), eps, staging.tensor(OUT), maskOrNull(shape, mask), in.s());
        end();
        int[] bits = downloadMask(in.s(), mask);
        float[] out = new float[y.length];
        device.copyToHost(staging.tensor(OUT), out, 0, out.length, in.s());
        System.arraycopy(out, 0, y, 0, y.length);
        if (bits != null) System.arraycopy(bits, 0, mask, 0, bits.length);
    }

    @Override
    protected void doForwardTrainingRelu(Shape shape, DType dtype, short[] x, short[] z, float[] gamma,
                                         float[] beta, double eps, float[] runningMean, float[] runningVar,
                                         double momentum, short[] y, int[] mask, float[] saveMean,
                                         float[] saveInvstd) {
        Staged in = stage(shape, x, z, gamma, beta, runningMean, runningVar);
        begin();
        kernels.forwardTrainingRelu(shape, dtype, in.x(), in.dy(), in.gamma(), in.beta(), eps, in.mean(),
                in.varOrInvstd(), momentum, staging.tensor(OUT), maskOrNull(shape, mask),
                staging.slot(SAVE_MEAN_OR_DGAMMA), staging.slot(SAVE_INVSTD_OR_DBETA), in.s());
        end();
        short[] out = new short[y.length];
        device.copyToHost(staging.tensor(OUT), out, 0, out.length, in.s());
        int[] bits = downloadMask(in.s(), mask);
        downloadForward(in, null, saveMean, saveInvstd, runningMean, runningVar);
        System.arraycopy(out, 0, y, 0, y.length);
        if (bits != null) System.arraycopy(bits, 0, mask, 0, bits.length);
    }

    @Override
    protected void doForwardInferenceRelu(Shape shape, DType dtype, short[] x, short[] z, float[] gamma,
                                          float[] beta, float[] runningMean, float[] runningVar, double eps,
                                          short[] y, int[] mask) {
        Staged in = stage(shape, x, z, gamma, beta, runningMean, runningVar);
        begin();
        kernels.forwardInferenceRelu(shape, dtype, in.x(), in.dy(), in.gamma(), in.beta(), in.mean(),
                in.varOrInvstd(), eps, staging.tensor(OUT), maskOrNull(shape, mask), in.s());
        end();
        short[] out = new short[y.length];
        device.copyToHost(staging.tensor(OUT), out, 0, out.length, in.s());
        int[] bits = downloadMask(in.s(), mask);
        System.arraycopy(out, 0, y, 0, y.length);
        if (bits != null) System.arraycopy(bits, 0, mask, 0, bits.length);
    }

    /** The staged mask buffer for {@code shape} when the caller wants a mask, else null (the kernel writes none). */
    private DevicePointer maskOrNull(Shape shape, int[] mask) {
        return mask == null ? null : staging.mask(shape);
    }

    /** The mask words the kernel wrote, into a new array (null when none was wanted). */
    private int[] downloadMask(DeviceStream s, int[] mask) {
        if (mask == null) return null;
        int[] bits = new int[mask.length];
        device.copyToHost(staging.maskPointer(), bits, 0, bits.length, s);
        return bits;
    }

    /**
     * Copies y (unless null: a 16-bit y is copied by the caller), the saved and the running statistics back; the
     * caller's per-channel arrays only after every copy.
     */
    private void downloadForward(Staged in, float[] y, float[] saveMean, float[] saveInvstd, float[] runningMean,
                                 float[] runningVar) {
        DeviceStream s = in.s();
        int c = saveMean.length;
        float[] mean = new float[c];
        float[] invstd = new float[c];
        float[] newRm = runningMean == null ? null : new float[c];
        float[] newRv = runningVar == null ? null : new float[c];
        if (y != null) device.copyToHost(staging.tensor(OUT), y, 0, y.length, s);
        device.copyToHost(staging.slot(SAVE_MEAN_OR_DGAMMA), mean, 0, mean.length, s);
        device.copyToHost(staging.slot(SAVE_INVSTD_OR_DBETA), invstd, 0, invstd.length, s);
        if (newRm != null) {
            device.copyToHost(in.mean(), newRm, 0, newRm.length, s);
            device.copyToHost(in.varOrInvstd(), newRv, 0, newRv.length, s);
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
        Staged in = stage(shape, x, null, gamma, beta, runningMean, runningVar);
        int c = shape.channels();
        float[] record = new float[DeviceResidentBatchNorm.statisticsRecordFloats(c)];
        System.arraycopy(DeviceResidentBatchNorm.countWords(statistics.count()), 0, record, 0, 2);
        for (int k = 0; k < c; k++) {
            float center = (float) statistics.mean(k);
            record[2 + k] = center;
            record[2 + c + k] = (float) (statistics.mean(k) - center);
            record[2 + 2 * c + k] = (float) statistics.m2(k);
        }
        device.copyToDevice(record, 0, staging.record(), record.length, in.s());
        begin();
        kernels.forwardWithRecords(shape, in.x(), staging.record(), 1, in.gamma(), in.beta(), eps, in.mean(),
                in.varOrInvstd(), momentum, staging.tensor(OUT), staging.slot(SAVE_MEAN_OR_DGAMMA),
                staging.slot(SAVE_INVSTD_OR_DBETA), in.s());
        end();
        downloadForward(in, y, saveMean, saveInvstd, runningMean, runningVar);
    }

    @Override
    protected GradientSums doGradientSums(Shape shape, float[] x, float[] dy, float[] saveMean, float[] saveInvstd) {
        Staged in = stage(shape, x, dy, null, null, saveMean, saveInvstd);
        begin();
        kernels.gradientRecord(shape, in.x(), in.dy(), in.mean(), in.varOrInvstd(), staging.record(), in.s());
        end();
        int c = shape.channels();
        float[] record = new float[DeviceResidentBatchNorm.gradientRecordFloats(c)];
        device.copyToHost(staging.record(), record, 0, record.length, in.s());
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
        Staged in = stage(shape, x, dy, gamma, null, saveMean, saveInvstd);
        int c = shape.channels();
        float[] record = new float[DeviceResidentBatchNorm.gradientRecordFloats(c)];
        System.arraycopy(DeviceResidentBatchNorm.countWords(sums.count()), 0, record, 0, 2);
        for (int k = 0; k < c; k++) {
            record[2 + k] = (float) sums.sumDy(k);
            record[2 + c + k] = (float) sums.sumDyXhat(k);
        }
        device.copyToDevice(record, 0, staging.record(), record.length, in.s());
        begin();
        kernels.backwardWithRecords(shape, in.x(), in.dy(), in.gamma(), in.mean(), in.varOrInvstd(), staging.record(),
                1, staging.tensor(OUT), null, null, in.s());
        end();
        device.copyToHost(staging.tensor(OUT), dx, 0, dx.length, in.s());
    }

    @Override
    protected void doForwardInference(Shape shape, float[] x, float[] gamma, float[] beta, float[] runningMean,
                                      float[] runningVar, double eps, float[] y) {
        Staged in = stage(shape, x, null, gamma, beta, runningMean, runningVar);
        begin();
        kernels.forwardInference(shape, in.x(), in.gamma(), in.beta(), in.mean(), in.varOrInvstd(), eps,
                staging.tensor(OUT), in.s());
        end();
        device.copyToHost(staging.tensor(OUT), y, 0, y.length, in.s());
    }

    @Override
    protected void doNormalize(Shape shape, float[] x, float[] gamma, float[] beta, float[] mean, float[] invstd,
                               float[] y) {
        Staged in = stage(shape, x, null, gamma, beta, mean, invstd);
        begin();
        kernels.normalize(shape, in.x(), in.gamma(), in.beta(), in.mean(), in.varOrInvstd(), staging.tensor(OUT),
                in.s());
        end();
        device.copyToHost(staging.tensor(OUT), y, 0, y.length, in.s());
    }

    @Override
    protected void doBackwardTraining(Shape shape, float[] x, float[] dy, float[] gamma, float[] saveMean,
                                      float[] saveInvstd, float[] dx, float[] dgamma, float[] dbeta) {
        Staged in = stage(shape, x, dy, gamma, null, saveMean, saveInvstd);
        begin();
        kernels.backwardTraining(shape, in.x(), in.dy(), in.gamma(), in.mean(), in.varOrInvstd(), staging.tensor(OUT),
                dgammaOut(dgamma),
                dbetaOut(dbeta), in.s());
        end();
        downloadGradients(in.s(), dx, dgamma, dbeta);
    }

    @Override
    protected void doBackwardInference(Shape shape, float[] x, float[] dy, float[] gamma, float[] runningMean,
                                       float[] runningVar, double eps, float[] dx, float[] dgamma, float[] dbeta) {
        Staged in = stage(shape, x, dy, gamma, null, runningMean, runningVar);
        begin();
        kernels.backwardInference(shape, in.x(), in.dy(), in.gamma(), in.mean(), in.varOrInvstd(), eps,
                staging.tensor(OUT), dgammaOut(dgamma),
                dbetaOut(dbeta), in.s());
        end();
        downloadGradients(in.s(), dx, dgamma, dbeta);
    }

    // ---- 16-bit activations: the same staging (each tensor holds n floats, so n halves fit), the 16-bit kernels -------

    @Override
    protected ChannelStatistics doStatistics(Shape shape, DType dtype, short[] x) {
        Staged in = stage(shape, x, null, null, null, null, null);
        begin();
        ChannelStatistics out = kernels.statistics(shape, dtype, in.x(), in.s());
        end();
        return out;
    }

    @Override
    protected void doForwardTraining(Shape shape, DType dtype, short[] x, float[] gamma, float[] beta, double eps,
                                     float[] runningMean, float[] runningVar, double momentum, short[] y,
                                     float[] saveMean, float[] saveInvstd) {
        Staged in = stage(shape, x, null, gamma, beta, runningMean, runningVar);
        begin();
        kernels.forwardTraining(shape, dtype, in.x(), in.gamma(), in.beta(), eps, in.mean(), in.varOrInvstd(),
                momentum, staging.tensor(OUT), staging.slot(SAVE_MEAN_OR_DGAMMA), staging.slot(SAVE_INVSTD_OR_DBETA),
                in.s());
        end();
        short[] out = new short[y.length];
        device.copyToHost(staging.tensor(OUT), out, 0, out.length, in.s());
        downloadForward(in, null, saveMean, saveInvstd, runningMean, runningVar);
        System.arraycopy(out, 0, y, 0, y.length);
    }

    @Override
    protected void doForwardInference(Shape shape, DType dtype, short[] x, float[] gamma, float[] beta,
                                      float[] runningMean, float[] runningVar, double eps, short[] y) {
        Staged in = stage(shape, x, null, gamma, beta, runningMean, runningVar);
        begin();
        kernels.forwardInference(shape, dtype, in.x(), in.gamma(), in.beta(), in.mean(), in.varOrInvstd(), eps,
                staging.tensor(OUT), in.s());
        end();
        device.copyToHost(staging.tensor(OUT), y, 0, y.length, in.s());
    }

    @Override
    protected void doNormalize(Shape shape, DType dtype, short[] x, float[] gamma, float[] beta, float[] mean,
                               float[] invstd, short[] y) {
        Staged in = stage(shape, x, null, gamma, beta, mean, invstd);
        begin();
        kernels.normalize(shape, dtype, in.x(), in.gamma(), in.beta(), in.mean(), in.varOrInvstd(),
                staging.tensor(OUT), in.s());
        end();
        device.copyToHost(staging.tensor(OUT), y, 0, y.length, in.s());
    }

    @Override
    protected void doBackwardTraining(Shape shape, DType dtype, short[] x, short[] dy, float[] gamma,
                                      float[] saveMean, float[] saveInvstd, short[] dx, float[] dgamma,
                                      float[] dbeta) {
        Staged in = stage(shape, x, dy, gamma, null, saveMean, saveInvstd);
        begin();
        kernels.backwardTraining(shape, dtype, in.x(), in.dy(), in.gamma(), in.mean(), in.varOrInvstd(),
                staging.tensor(OUT), dgammaOut(dgamma),
                dbetaOut(dbeta), in.s());
        end();
        downloadGradients(in.s(), dx, dgamma, dbeta);
    }

    @Override
    protected void doBackwardInference(Shape shape, DType dtype, short[] x, short[] dy, float[] gamma,
                                       float[] runningMean, float[] runningVar, double eps, short[] dx,
                                       float[] dgamma, float[] dbeta) {
        Staged in = stage(shape, x, dy, gamma, null, runningMean, runningVar);
        begin();
        kernels.backwardInference(shape, dtype, in.x(), in.dy(), in.gamma(), in.mean(), in.varOrInvstd(), eps,
                staging.tensor(OUT), dgammaOut(dgamma),
                dbetaOut(dbeta), in.s());
        end();
        downloadGradients(in.s(), dx, dgamma, dbeta);
    }

    // ---- fused backward of BN + (add +) ReLU: the fused kernels (DeviceResidentBatchNorm#backwardTrainingRelu) ----

    @Override
    protected void doBackwardTrainingRelu(Shape shape, float[] x, float[] dy, int[] mask, float[] gamma,
                                          float[] saveMean, float[] saveInvstd, float[] dx, float[] dz,
                                          float[] dgamma, float[] dbeta) {
        Staged in = stage(shape, x, dy, gamma, null, saveMean, saveInvstd);
        DevicePointer m = stageMask(shape, mask, in.s());
        begin();
        kernels.backwardTrainingRelu(shape, in.x(), in.dy(), m, in.gamma(), in.mean(), in.varOrInvstd(),
                staging.tensor(OUT), dzOut(shape, dz),
                dgammaOut(dgamma),
                dbetaOut(dbeta), in.s());
        end();
        downloadGradients(in.s(), dx, dgamma, dbeta);
        downloadDz(shape, dz, in.s());
    }

    @Override
    protected void doBackwardInferenceRelu(Shape shape, float[] x, float[] dy, int[] mask, float[] gamma,
                                           float[] runningMean, float[] runningVar, double eps, float[] dx,
                                           float[] dz, float[] dgamma, float[] dbeta) {
        Staged in = stage(shape, x, dy, gamma, null, runningMean, runningVar);
        DevicePointer m = stageMask(shape, mask, in.s());
        begin();
        kernels.backwardInferenceRelu(shape, in.x(), in.dy(), m, in.gamma(), in.mean(), in.varOrInvstd(), eps,
                staging.tensor(OUT), dzOut(shape, dz),
                dgammaOut(dgamma),
                dbetaOut(dbeta), in.s());
        end();
        downloadGradients(in.s(), dx, dgamma, dbeta);
        downloadDz(shape, dz, in.s());
    }

    @Override
    protected void doBackwardTrainingRelu(Shape shape, DType dtype, short[] x, short[] dy, int[] mask,
                                          float[] gamma, float[] saveMean, float[] saveInvstd, short[] dx,
                                          short[] dz, float[] dgamma, float[] dbeta) {
        Staged in = stage(shape, x, dy, gamma, null, saveMean, saveInvstd);
        DevicePointer m = stageMask(shape, mask, in.s());
        begin();
        kernels.backwardTrainingRelu(shape, dtype, in.x(), in.dy(), m, in.gamma(), in.mean(), in.varOrInvstd(),
                staging.tensor(OUT), dzOut(shape, dz),
                dgammaOut(dgamma),
                dbetaOut(dbeta), in.s());
        end();
        downloadGradients(in.s(), dx, dgamma, dbeta);
        downloadDz(shape, dz, in.s());
    }

    @Override
    protected void doBackwardInferenceRelu(Shape shape, DType dtype, short[] x, short[] dy, int[] mask,
                                           float[] gamma, float[] runningMean, float[] runningVar, double eps,
                                           short[] dx, short[] dz, float[] dgamma, float[] dbeta) {
        Staged in = stage(shape, x, dy, gamma, null, runningMean, runningVar);
        DevicePointer m = stageMask(shape, mask, in.s());
        begin();
        kernels.backwardInferenceRelu(shape, dtype, in.x(), in.dy(), m, in.gamma(), in.mean(), in.varOrInvstd(),
                eps, staging.tensor(OUT), dzOut(shape, dz),
                dgammaOut(dgamma),
                dbetaOut(dbeta), in.s());
        end();
        downloadGradients(in.s(), dx, dgamma, dbeta);
        downloadDz(shape, dz, in.s());
    }

    /** The staging slot that receives dgamma, or null when the caller wants none. */
    private DevicePointer dgammaOut(float[] dgamma) {
        return dgamma != null ? staging.slot(SAVE_MEAN_OR_DGAMMA) : null;
    }

    /** The staging slot that receives dbeta, or null when the caller wants none. */
    private DevicePointer dbetaOut(float[] dbeta) {
        return dbeta != null ? staging.slot(SAVE_INVSTD_OR_DBETA) : null;
    }

    /** The device buffer that receives the fused backward's dz (float[] or short[] on the host), or null. */
    private DevicePointer dzOut(Shape shape, Object dz) {
        return dz != null ? fusedBackward.dz(shape) : null;
    }

    private void downloadDz(Shape shape, float[] dz, DeviceStream s) {
        if (dz != null) device.copyToHost(fusedBackward.dz(shape), dz, 0, dz.length, s);
    }

    private void downloadDz(Shape shape, short[] dz, DeviceStream s) {
        if (dz != null) device.copyToHost(fusedBackward.dz(shape), dz, 0, dz.length, s);
    }

    /** Uploads a ReLU mask into the staging mask buffer (shared with the fused forward's output mask). */
    private DevicePointer stageMask(Shape shape, int[] hostMask, DeviceStream s) {
        DevicePointer m = staging.mask(shape);
        device.copyToDevice(hostMask, 0, m, hostMask.length, s);
        return m;
    }

    /** The fused backward's dz output buffer (the other tensors use {@link Staging}), grown to the largest shape. */
    private static final class FusedBackwardStaging implements AutoCloseable {
        private final Device device;
        private DeviceBuffer dz;
        private long elementCap;

        FusedBackwardStaging(Device device) {
            this.device = device;
        }

        /** dz for {@code shape}: n floats, room for n elements of any storage type. */
        DevicePointer dz(Shape shape) {
            long n = shape.elementCount();
            if (n > elementCap) {
                close();
                dz = device.allocate(4L * n);
                elementCap = n;
            }
            return dz.pointer();
        }

        @Override
        public void close() {
            if (dz != null) dz.close();
            dz = null;
            elementCap = 0;
        }
    }

    /** {@link #stage} for 16-bit x and dy. */
    private Staged stage(Shape shape, short[] x, short[] dy, float[] gamma, float[] beta, float[] mean,
                         float[] varOrInvstd) {
        DeviceStream s = device.defaultStream();
        staging.ensure(shape);
        DevicePointer px = staging.tensor(X);
        device.copyToDevice(x, 0, px, x.length, s);
        DevicePointer pdy = null;
        if (dy != null) {
            pdy = staging.tensor(DY);
            device.copyToDevice(dy, 0, pdy, dy.length, s);
        }
        return new Staged(s, px, pdy, upload(gamma, staging.slot(GAMMA), s), upload(beta, staging.slot(BETA), s),
                upload(mean, staging.slot(MEAN), s), upload(varOrInvstd, staging.slot(VAR_OR_INVSTD), s));
    }

    private void downloadGradients(DeviceStream s, short[] dx, float[] dgamma, float[] dbeta) {
        device.copyToHost(staging.tensor(OUT), dx, 0, dx.length, s);
        if (dgamma != null) device.copyToHost(staging.slot(SAVE_MEAN_OR_DGAMMA), dgamma, 0, dgamma.length, s);
        if (dbeta != null) device.copyToHost(staging.slot(SAVE_INVSTD_OR_DBETA), dbeta, 0, dbeta.length, s);
    }

    @Override
    protected void doClose() {
        try {
            staging.close();
            fusedBackward.close();
            kernels.close();
        } finally {
            if (ownsDevice) device.close();
        }
    }

    private void downloadGradients(DeviceStream s, float[] dx, float[] dgamma, float[] dbeta) {
        device.copyToHost(staging.tensor(OUT), dx, 0, dx.length, s);
        if (dgamma != null) device.copyToHost(staging.slot(SAVE_MEAN_OR_DGAMMA), dgamma, 0, dgamma.length, s);
        if (dbeta != null) device.copyToHost(staging.slot(SAVE_INVSTD_OR_DBETA), dbeta, 0, dbeta.length, s);
    }

    /**
     * An operation's inputs on the device, in the staging buffers, on the default stream; an input given as null
     * (absent, or not read by the operation) is a null pointer.
     *
     * @param mean        the per-channel mean the operation reads: running, given or saved
     * @param varOrInvstd its partner: the running variance (eval), or the given or saved invstd
     */
    private record Staged(DeviceStream s, DevicePointer x, DevicePointer dy, DevicePointer gamma, DevicePointer beta,
                          DevicePointer mean, DevicePointer varOrInvstd) {
    }

    /** Sizes the staging buffers for {@code shape} and uploads the given inputs into their slots. */
    private Staged stage(Shape shape, float[] x, float[] dy, float[] gamma, float[] beta, float[] mean,
                         float[] varOrInvstd) {
        DeviceStream s = device.defaultStream();
        staging.ensure(shape);
        return new Staged(s, upload(x, staging.tensor(X), s), upload(dy, staging.tensor(DY), s),
                upload(gamma, staging.slot(GAMMA), s), upload(beta, staging.slot(BETA), s),
                upload(mean, staging.slot(MEAN), s),
                upload(varOrInvstd, staging.slot(VAR_OR_INVSTD), s));
    }

    /** Copies {@code host} to {@code dst} and returns dst, or returns null for a null host array. */
    private DevicePointer upload(float[] host, DevicePointer dst, DeviceStream s) {
        if (host == null) return null;
        device.copyToDevice(host, 0, dst, host.length, s);
        return dst;
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

    /** The staging tensors: x, dy, and out (y of the forward operations, dx of the backward ones). */
    enum Tensor { X, DY, OUT }

    /**
     * The per-channel staging slots, named by what the operations put there: inputs gamma, beta, a mean (running,
     * given or saved) and its partner (the running variance in eval, a given or the saved invstd); outputs the saved
     * mean or dgamma, the saved invstd or dbeta. An operation uses those it needs.
     */
    enum Slot { GAMMA, BETA, MEAN, VAR_OR_INVSTD, SAVE_MEAN_OR_DGAMMA, SAVE_INVSTD_OR_DBETA }

    /**
     * Host-API staging buffers, grown to the largest shape seen: the {@link Tensor}s, one buffer of the {@link Slot}s
     * (each 256-byte aligned) and one record buffer (the split operations).
     */
    private static final class Staging implements AutoCloseable {
        private final Device device;
        private final DeviceBuffer[] tensors = new DeviceBuffer[Tensor.values().length];
        private DeviceBuffer channels;
        private DeviceBuffer record;   // one statistics or gradient record (the split operations)
        private DeviceBuffer mask;     // the fused ReLU operations' mask words
        private long maskCap;
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
                for (int t = 0; t < tensors.length; t++) tensors[t] = device.allocate(n * 4);
                elementCap = n;
            }
            if (c > channelCap) {
                if (channels != null) channels.close();
                channels = null;
                if (record != null) record.close();
                record = null;
                channels = device.allocate(slotBytes(c) * Slot.values().length);
                record = device.allocate(4L * DeviceResidentBatchNorm.statisticsRecordFloats(c));
                channelCap = c;
            }
        }

        DevicePointer tensor(Tensor t) {
            return tensors[t.ordinal()].pointer();
        }

        DevicePointer slot(Slot slot) {
            return channels.at(slot.ordinal() * slotBytes(channelCap));
        }

        DevicePointer record() {
            return record.pointer();
        }

        /** A mask buffer of at least ReluMask.words(elements) words for {@code shape} (grown on demand). */
        DevicePointer mask(Shape shape) {
            long words = io.github.batchnorm4j.ReluMask.words(shape.elementCount());
            if (words > maskCap) {
                if (mask != null) mask.close();
                mask = null;
                maskCap = 0;
                mask = device.allocate(4 * words);
                maskCap = words;
            }
            return mask.pointer();
        }

        DevicePointer maskPointer() {
            return mask.pointer();
        }

        private static long slotBytes(int c) {
            return ((c * 4L) + 255) & ~255L;
        }

        private void closeTensors() {
            for (int t = 0; t < tensors.length; t++) {
                if (tensors[t] != null) tensors[t].close();
                tensors[t] = null;
            }
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
            if (mask != null) mask.close();
            mask = null;
            maskCap = 0;
        }
    }
}
