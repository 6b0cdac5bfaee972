package io.github.batchnorm4j.train;

import io.github.batchnorm4j.distributed.Collective;
import io.github.batchnorm4j.distributed.DeviceResidentSyncBatchNorm;

import io.github.batchnorm4j.BatchNormOptions;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.ReluMask;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.gpu.DeviceResidentBatchNorm;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

import static io.github.batchnorm4j.train.DeviceTrainBackend.pointer;

/**
 * {@link BatchNormUnit} on a device: the library's device-resident {@link DeviceResidentBatchNorm} over channels-last
 * {@code [rows, C]} activations, with gamma, beta, their gradients, running statistics and the saved batch statistics
 * all in device memory (no copy per step). Semantics match {@link CpuBatchNormUnit} (PyTorch's BatchNorm1d with a
 * fixed momentum).
 *
 * <p>Mixed precision: x, its output and their gradients (and the data-parallel unit's scratch pre-activation) are stored in the unit's
 * {@code dtype}, through the 16-bit kernels of the device-resident batch norm (y and dx rounded once); gamma, beta,
 * their gradients and every statistic stay float32. Data-parallel (synchronized) units are float32.
 */
final class DeviceBatchNormUnit extends AbstractBatchNormUnit<DeviceTensor> {
    private final DeviceTrainBackend backend;
    private final DeviceResidentBatchNorm bn;
    /** Data-parallel: the training forward and backward go through it (owned: closed with this unit); else null. */
    private final DeviceResidentSyncBatchNorm sync;
    private final int channels;
    private final DType dtype;
    private final double eps;
    private final double momentum;
    private final DeviceTensor runningMean;
    private final DeviceTensor runningVar;
    private final DeviceTensor saveMean;
    private final DeviceTensor saveInvstd;
    private int savedRows = -1;
    private final Map<Integer, DeviceTensor[]> scratch = new HashMap<>();
    private final Map<Integer, DeviceTensor> masks = new HashMap<>();

    DeviceBatchNormUnit(DeviceTrainBackend backend, DeviceResidentBatchNorm bn, int channels, double eps,
                        double momentum) {
        this(backend, bn, null, channels, eps, momentum);
    }

    /** @param collective the data-parallel group to synchronize over, or null for plain batch norm */
    DeviceBatchNormUnit(DeviceTrainBackend backend, DeviceResidentBatchNorm bn, Collective collective, int channels,
                        double eps, double momentum) {
        this(backend, bn, collective, channels, eps, momentum, DType.FLOAT32);
    }

    /**
     * @param collective the data-parallel group to synchronize over (float32 only), or null for plain batch norm
     * @param dtype      the storage type of x, y, dy, dx
     */
    DeviceBatchNormUnit(DeviceTrainBackend backend, DeviceResidentBatchNorm bn, Collective collective, int channels,
                        double eps, double momentum, DType dtype) {
        super(new Parameters<>(ones(backend, checked(channels, eps, momentum, dtype, collective)), backend.allocate(1, channels),
                backend.allocate(1, channels), backend.allocate(1, channels)));
        this.backend = backend;
        this.bn = bn;
        this.sync = collective == null ? null : new DeviceResidentSyncBatchNorm(bn, collective);
        this.channels = channels;
        this.dtype = dtype;
        this.eps = eps;
        this.momentum = momentum;
        runningMean = backend.allocate(1, channels);
        runningVar = ones(backend, channels);
        saveMean = backend.allocate(1, channels);
        saveInvstd = backend.allocate(1, channels);
    }

    /** The arguments, checked before anything is allocated; returns {@code channels}. */
    private static int checked(int channels, double eps, double momentum, DType dtype, Collective collective) {
        if (dtype == null) throw new IllegalArgumentException("dtype must not be null");
        if (collective != null && dtype != DType.FLOAT32) {
            throw new IllegalArgumentException("dtype: synchronized batch norm supports float32 only, got " + dtype);
        }
        if (channels < 1) throw new IllegalArgumentException("channels: expected >= 1, got " + channels);
        BatchNormOptions.checkEps(eps);
        BatchNormOptions.checkMomentum(momentum);
        return channels;
    }

    /** A {@code [1, channels]} tensor of ones (gamma, and the running variance at start). */
    private static DeviceTensor ones(DeviceTrainBackend backend, int channels) {
        float[] ones = new float[channels];
        Arrays.fill(ones, 1f);
        DeviceTensor t = backend.allocate(1, channels);
        backend.upload(ones, t);
        return t;
    }

    // Batch norm + ReLU through the fused kernels: the forward writes h = relu(bn(x)) and the 1-bit ReLU mask (one
    // mask per row count: a run meets the batch, the last partial batch and the evaluation chunks), the backward
    // gates dh by the mask and never needs the pre-activation. The data-parallel unit has no fused variant (its
    // statistics are merged across ranks): batch norm into a scratch pre-activation v, then the training kernels'
    // ReLU, whose backward gates dh by v > 0 (the mask's rule for finite v).

    @Override
    public void forwardRelu(Tensor x, Tensor h, boolean training) {
        Shape shape = shape(x);
        TensorChecks.sameShape("h", h, x);
        checkType("x", x);
        checkType("h", h);
        if (training && sync != null) {
            DeviceTensor v = scratch(x.rows())[0];
            sync.forwardTraining(shape, pointer("x", x), p.gamma().pointer(), p.beta().pointer(), eps,
                    runningMean.pointer(), runningVar.pointer(), momentum, v.pointer(), saveMean.pointer(),
                    saveInvstd.pointer(), backend.stream());
            savedRows = x.rows();
            backend.reluForward(v, h);
        } else if (training) {
            bn.forwardTrainingRelu(shape, dtype, pointer("x", x), null, p.gamma().pointer(), p.beta().pointer(), eps,
                    runningMean.pointer(), runningVar.pointer(), momentum, pointer("h", h), mask(x.rows()).pointer(),
                    saveMean.pointer(), saveInvstd.pointer(), backend.stream());
            savedRows = x.rows();
        } else {
            bn.forwardInferenceRelu(shape, dtype, pointer("x", x), null, p.gamma().pointer(), p.beta().pointer(),
                    runningMean.pointer(), runningVar.pointer(), eps, pointer("h", h), null, backend.stream());
        }
    }

    @Override
    public void backwardRelu(Tensor x, Tensor dh, Tensor dx) {
        Shape shape = shape(x);
        TensorChecks.sameShape("dh", dh, x);
        TensorChecks.sameShape("dx", dx, x);
        checkType("x", x);
        checkType("dh", dh);
        checkType("dx", dx);
        if (savedRows != x.rows()) {
            throw new IllegalStateException("backward needs a training forward of the same shape first (saved "
                    + savedRows + " rows, got " + x.rows() + ")");
        }
        if (sync != null) {
            DeviceTensor[] s = scratch(x.rows());
            backend.reluBackward(s[0], dh, s[1]);
            sync.backwardTraining(shape, pointer("x", x), s[1].pointer(), p.gamma().pointer(), saveMean.pointer(),
                    saveInvstd.pointer(), pointer("dx", dx), p.gammaGrad().pointer(), p.betaGrad().pointer(),
                    backend.stream());
            return;
        }
        bn.backwardTrainingRelu(shape, dtype, pointer("x", x), pointer("dh", dh), mask(x.rows()).pointer(),
                p.gamma().pointer(), saveMean.pointer(), saveInvstd.pointer(), pointer("dx", dx), null,
                p.gammaGrad().pointer(), p.betaGrad().pointer(), backend.stream());
    }

    /** The ReLU mask of the training forward of {@code rows} rows ({@link ReluMask#words} 32-bit words). */
    private DeviceTensor mask(int rows) {
        return masks.computeIfAbsent(rows, r -> backend.allocate(1,
                ReluMask.wordsAsInt((long) r * channels)));
    }

    /** The pre-activation and its gradient for {@code rows} rows. */
    private DeviceTensor[] scratch(int rows) {
        return scratch.computeIfAbsent(rows, r -> new DeviceTensor[] {backend.allocate(r, channels, dtype),
                backend.allocate(r, channels, dtype)});
    }

    private void checkType(String name, Tensor t) {
        if (t != null && t.dtype() != dtype) {
            throw new IllegalArgumentException(name + ": expected a " + dtype + " tensor (the layer's storage type), got "
                    + t.dtype());
        }
    }

    private Shape shape(Tensor x) {
        return TensorChecks.batchNormInput(x, channels);
    }

    /** Frees the unit's device buffers (not the shared DeviceResidentBatchNorm). Idempotent. */
    @Override
    public void close() {
        if (sync != null) sync.close();
        for (DeviceTensor t : new DeviceTensor[] {p.gamma(), p.beta(), p.gammaGrad(), p.betaGrad(), runningMean,
                runningVar, saveMean, saveInvstd}) {
            t.close();
        }
        for (DeviceTensor[] s : scratch.values()) for (DeviceTensor t : s) t.close();
        scratch.clear();
        for (DeviceTensor t : masks.values()) t.close();
        masks.clear();
    }
}
