package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.ArgumentChecks;
import io.github.batchnorm4j.ChannelStatistics;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.SplitBatchNormOps;

import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.UnaryOperator;

import static io.github.batchnorm4j.gpu.KernelConstants.COEF_CENTER;
import static io.github.batchnorm4j.gpu.KernelConstants.HAS_BETA;
import static io.github.batchnorm4j.gpu.KernelConstants.HAS_GAMMA;
import static io.github.batchnorm4j.gpu.KernelConstants.HAS_RUNNING;
import static io.github.batchnorm4j.gpu.KernelConstants.PERSIST_ONE_LAUNCH;
import static io.github.batchnorm4j.gpu.KernelConstants.PERSIST_OUTPUTS;
import static io.github.batchnorm4j.gpu.KernelConstants.PERSIST_PARTIALS;
import static io.github.batchnorm4j.gpu.KernelConstants.PREP_EVAL_BACKWARD;
import static io.github.batchnorm4j.gpu.KernelConstants.PREP_EVAL_FORWARD;
import static io.github.batchnorm4j.gpu.KernelConstants.PREP_NORMALIZE;
import static io.github.batchnorm4j.gpu.KernelConstants.STATS_ONLY;
import static io.github.batchnorm4j.gpu.KernelConstants.TRAIN_DX;
import static io.github.batchnorm4j.gpu.KernelConstants.WANT_DBETA;
import static io.github.batchnorm4j.gpu.KernelConstants.WANT_DGAMMA;

/**
 * The device-resident batch-norm API: the operations of {@link io.github.batchnorm4j.BatchNormOps} on device memory,
 * queued on a {@link DeviceStream}, for GPU training loops. No allocation and no copy per call once a shape has been
 * seen: the kernels' workspace (counters, coefficients, block partials) grows to the largest shape and is reused.
 *
 * <p>Conventions (docs/design.md §1): tensors are {@code shape.elementCount()} floats in the layout's memory order,
 * per-channel vectors C floats. A {@code null} gamma means 1 and a {@code null} beta means 0; {@code null} running
 * statistics are not tracked. Every pointer must be 4-byte aligned, lie on this device and leave enough room in its
 * buffer; tensors that are also 16-byte aligned, in a shape {@link LaunchGeometry#vectorizable} accepts, take the
 * float4 path, others (e.g. misaligned sub-buffers) the scalar path; the two paths may differ in the last bits of
 * reductions. Arguments are validated before anything is launched; a call that throws has written nothing, except that
 * a failed launch may leave outputs partly written. In place: y may be exactly x and dx exactly dy (same buffer and
 * offset), with the same bits as out of place; any other overlap between an output and another argument is refused
 * with an IllegalArgumentException naming both.
 *
 * <p><b>Storage types.</b> The operations also exist with a {@link DType}: x, y, dy and dx are then tensors of
 * float16 or bfloat16 elements (2-byte aligned, {@code elementCount} of them), per-channel vectors stay float32; the
 * kernels widen on load, compute in float32 and round y and dx once when they store (PyTorch's mixed-type batch norm).
 * The 16-byte vector path moves 8 halves per load ({@link LaunchGeometry#vectorizable(Shape, DType)}). The
 * data-parallel record methods are float32 only.
 *
 * <p>Streams: every stream this object is called with gets its own workspace (allocated at the first call on it,
 * freed once that stream is closed or by {@link #close()}), so calls on different streams never share scratch memory
 * and may run concurrently; ordering the tensors two streams share is the caller's job (events). Within one stream
 * the reductions' arrival counters are zero whenever no launch runs: the last block of each channel resets them, and
 * after a failed call they are zeroed again on the stream (the emulator checks both after every launch). Not
 * thread-safe: call it from one thread at a time. Owns the loaded modules and the workspaces; {@link #close()} frees
 * them (not the device).
 */
public final class DeviceResidentBatchNorm implements DeviceResidentOperations, AutoCloseable {
    private final Device device;
    private final DeviceModule forward;
    private final DeviceModule backward;
    private final Map<String, Kernel> kernels = new HashMap<>();
    /** Blocks per SM of each kernel at {@link LaunchGeometry#BLOCK} threads, asked of the device once. */
    private final Map<String, Integer> blocksPerSm = new HashMap<>();
    private final List<Launched> launches = new ArrayList<>();
    /** One workspace per stream used: work on two streams may overlap, so they must not share counters or partials. */
    private final Map<DeviceStream, Workspace> workspaces = new IdentityHashMap<>();
    /** The workspace of the stream of the call running now (set by {@link #begin}). */
    private Workspace workspace;
    private final ArgumentChecks<DevicePointer> checks = new ArgumentChecks<>(this::checkPointer);
    /** Per storage type: tensors of that type, per-channel vectors of float32. */
    private final Map<DType, ArgumentChecks<DevicePointer>> typedChecks = new EnumMap<>(DType.class);
    private boolean closed;
    private TrainingPath trainingPath = TrainingPath.TWO_PASS;

    /**
     * Which kernels the training-mode forward and backward run.
     *
     * <p>{@link #AUTO}: the persistent single-pass kernels (every storage type) when the device launches cooperatively,
     * a channel needs at most {@link LaunchGeometry#MAX_PERSIST_SPLITS} blocks, and the whole grid, sized from the
     * tensor at a fixed number of values per thread, can be resident at once with the kernel's occupancy as
     * compiled ({@link Device#maxActiveBlocksPerMultiprocessor} × SMs); each block keeps its tile in registers between
     * the statistics and the output, so x (and dy) are read once: forward 2 S, backward 3 S, plus partials. Otherwise
     * the two-pass kernels (forward 3 S, backward 5 S). {@link #TWO_PASS} (the default): always the two-pass kernels.
     * {@link #lastOperationLaunches()} names the kernels that ran.
     *
     * <p>The default is TWO_PASS because AUTO gives up one guarantee: the two paths round differently (both within
     * the same tolerances of float64), and which one runs depends on the device's capacity, so under AUTO the same
     * input may give different bits on GPUs of different sizes (each path alone is bitwise reproducible under any
     * block schedule, and its merge order depends on the shape only).
     */
    public enum TrainingPath {
        /** Persistent when the tensor fits on chip, else two-pass. */
        AUTO,
        /** Always the two-pass kernels. */
        TWO_PASS,
        /**
         * The persistent kernels' decomposition whenever a channel needs at most
         * {@link LaunchGeometry#MAX_PERSIST_SPLITS} blocks (a function of the shape alone), else two-pass: one
         * cooperative launch where the grid fits the device at once (forward 2 S, backward 3 S), otherwise the same
         * kernels in two ordinary launches of the same grid (partials, then outputs: forward 3 S, backward 5 S). The
         * arithmetic and its order are the same either way, so the results are the same bits on every device, whatever
         * its number of SMs.
         */
        PERSISTENT
    }

    /** Sets which kernels the training-mode forward and backward run (default {@link TrainingPath#TWO_PASS}). */
    public void setTrainingPath(TrainingPath path) {
        if (path == null) throw new IllegalArgumentException("path must not be null");
        this.trainingPath = path;
    }

    /** Which kernels the training-mode forward and backward run. */
    public TrainingPath trainingPath() {
        return trainingPath;
    }

    /**
     * Loads the kernel modules ({@link PtxModules}) onto {@code device}.
     *
     * @throws DeviceException when a module cannot be found, read or loaded, or lacks a kernel
     */
    public DeviceResidentBatchNorm(Device device) {
        this(device, PtxModules::read);
    }

    /** Loads the modules whose PTX text {@code ptxOf} gives for each module name (tests load mutated PTX). */
    DeviceResidentBatchNorm(Device device, UnaryOperator<String> ptxOf) {
        if (device == null) throw new IllegalArgumentException("device must not be null");
        this.device = device;
        DeviceModule f = null;
        DeviceModule b = null;
        try {
            f = device.loadModule(PtxModules.FORWARD, ptxOf.apply(PtxModules.FORWARD));
            b = device.loadModule(PtxModules.BACKWARD, ptxOf.apply(PtxModules.BACKWARD));
            for (DType t : DType.values()) {
                for (String k : new String[]{"bn_stats_cf", "bn_stats_cl", "bn_apply_cf", "bn_apply_cl"}) {
                    for (boolean vec : new boolean[]{false, true}) {
                        kernels.put(name(k, t, vec), f.kernel(name(k, t, vec)));
                    }
                }
                for (String k : new String[]{"bn_backward_reduce_cf", "bn_backward_reduce_cl", "bn_dx_cf",
                        "bn_dx_cl"}) {
                    for (boolean vec : new boolean[]{false, true}) {
                        kernels.put(name(k, t, vec), b.kernel(name(k, t, vec)));
                    }
                }
                for (boolean vec : new boolean[]{false, true}) {
                    for (String k : new String[]{"bn_persist_fwd_cf", "bn_persist_fwd_cl"}) {
                        kernels.put(name(k, t, vec), f.kernel(name(k, t, vec)));
                    }
                    for (String k : new String[]{"bn_persist_bwd_cf", "bn_persist_bwd_cl"}) {
                        kernels.put(name(k, t, vec), b.kernel(name(k, t, vec)));
                    }
                }
            }
            for (DType t : DType.values()) {   // the fused backward of BN + ReLU (/ + add)
                for (String k : FUSED_BACKWARD_FAMILIES) {
                    for (boolean vec : new boolean[]{false, true}) {
                        kernels.put(name(k, t, vec), b.kernel(name(k, t, vec)));
                    }
                }
            }
            for (DType t : DType.values()) {   // the fused apply + ReLU: one kernel for both layouts
                for (boolean vec : new boolean[]{false, true}) {
                    kernels.put(name("bn_apply_relu", t, vec), f.kernel(name("bn_apply_relu", t, vec)));
                }
            }
            kernels.put("bn_prepare", f.kernel("bn_prepare"));
            kernels.put("bn_stats_merge", f.kernel("bn_stats_merge"));
            kernels.put("bn_backward_merge", b.kernel("bn_backward_merge"));
        } catch (RuntimeException e) {
            if (b != null) b.close();
            if (f != null) f.close();
            throw e;
        }
        this.forward = f;
        this.backward = b;
        typedChecks.put(DType.FLOAT32, checks);
        for (DType t : new DType[]{DType.FLOAT16, DType.BFLOAT16}) {
            typedChecks.put(t, new ArgumentChecks<>((name, p, n, why) -> checkPointer(name, p, n, t, why),
                    this::checkPointer, null));
        }
    }

    /** The device this runs on. */
    public Device device() {
        return device;
    }

    // ---- operations ----------------------------------------------------------------------------------------------

    /**
     * Per-channel partial statistics of x (count M, mean, M2), for merging micro-batches or devices. Copies 3·C floats
     * to the host (and waits for the stream).
     */
    public ChannelStatistics statistics(Shape shape, DevicePointer x, DeviceStream stream) {
        return statistics(shape, DType.FLOAT32, x, stream);
    }

    /** {@link #statistics(Shape, DevicePointer, DeviceStream)} of x stored in {@code dtype}. */
    public ChannelStatistics statistics(Shape shape, DType dtype, DevicePointer x, DeviceStream stream) {
        DeviceStream s = begin(stream);
        checks(dtype).statistics(shape, x);
        int c = shape.channels();
        DevicePointer dummy = prepareWorkspace(shape, dtype, true, s);
        guarded(s, () -> launchStats(shape, dtype, x, STATS_ONLY, 0, 0, null, null, null, null, null, null, dummy,
                workspace.coef(), s));
        float[] out = new float[3 * c];
        device.copyToHost(workspace.coef(), out, 0, 3 * c, s);
        double[] mean = new double[c];
        double[] m2 = new double[c];
        for (int i = 0; i < c; i++) {
            mean[i] = (double) out[i] + out[c + i];   // center + mean of deviations: keeps digits at |mean| >> std
            m2[i] = Math.max(0, out[2 * c + i]);
        }
        return new ChannelStatistics(shape.reductionSize(), mean, m2);
    }

    /**
     * Training-mode forward (see {@link io.github.batchnorm4j.BatchNormOps#forwardTraining}).
     *
     * @param runningMean in/out or null (then runningVar must be null too)
     * @param momentum    weight of this batch in [0, 1] (resolve cumulative momentum first)
     * @param y           output tensor; saveMean, saveInvstd: outputs, C floats each
     */
    @Override
    public void forwardTraining(Shape shape, DevicePointer x, DevicePointer gamma, DevicePointer beta, double eps,
                                DevicePointer runningMean, DevicePointer runningVar, double momentum,
                                DevicePointer y, DevicePointer saveMean, DevicePointer saveInvstd,
                                DeviceStream stream) {
        forwardTraining(shape, DType.FLOAT32, x, gamma, beta, eps, runningMean, runningVar, momentum, y, saveMean,
                saveInvstd, stream);
    }

    /** Training-mode forward with x and y stored in {@code dtype} (y rounded once); statistics float32. */
    public void forwardTraining(Shape shape, DType dtype, DevicePointer x, DevicePointer gamma, DevicePointer beta,
                                double eps, DevicePointer runningMean, DevicePointer runningVar, double momentum,
                                DevicePointer y, DevicePointer saveMean, DevicePointer saveInvstd,
                                DeviceStream stream) {
        DeviceStream s = begin(stream);
        checks(dtype).forwardTraining(shape, x, gamma, beta, eps, runningMean, runningVar, momentum, y, saveMean,
                saveInvstd);
        long t = tensorBytes(shape, dtype), c = 4L * shape.channels();
        new Aliasing().input("x", x, t).input("gamma", gamma, c).input("beta", beta, c)
                .output("runningMean", runningMean, c, null).output("runningVar", runningVar, c, null)
                .output("y", y, t, "x").output("saveMean", saveMean, c, null).output("saveInvstd", saveInvstd, c, null)
                .check();
        // The apply reads each channel's center (its first value) from x itself, unless y is written over x (row 0 may
        // already hold y when a block reads it): then the statistics kernel stores the centers in the coefficients.
        boolean inPlace = y.buffer() == x.buffer();
        int flags = (gamma != null ? HAS_GAMMA : 0) | (beta != null ? HAS_BETA : 0)
                | (runningMean != null ? HAS_RUNNING : 0) | (inPlace ? COEF_CENTER : 0);
        DevicePointer dummy = prepareWorkspace(shape, dtype, true, s);
        boolean vec = vectorizable(shape, dtype, x, y);
        Optional<Plan> p = persistent(shape, dtype, vec, false);
        if (p.isPresent()) {
            // Every block reads its centers before any block writes y (one launch), or from coef row 0, where the
            // partials launch kept them (two launches).
            int pflags = flags & ~COEF_CENTER;
            guarded(s, () -> {
                for (int phase : p.get().phases()) {
                    launchPersistentForward(shape, dtype, p.get(), vec, x, y, pflags, (float) eps,
                            runningMean != null ? (float) momentum : 0f, gamma, beta, runningMean, runningVar,
                            saveMean, saveInvstd, dummy, phase, s);
                }
            });
            return;
        }
        guarded(s, () -> {
            launchStats(shape, dtype, x, flags, (float) eps, runningMean != null ? (float) momentum : 0f,
                    gamma, beta, runningMean, runningVar, saveMean, saveInvstd, dummy, workspace.coef(), s);
            launchApply(shape, dtype, vec, x, y, inPlace ? null : x, s);
        });
    }

    /** Eval-mode forward with running statistics: y = (x − runningMean)/sqrt(runningVar + eps)·gamma + beta. */
    @Override
    public void forwardInference(Shape shape, DevicePointer x, DevicePointer gamma, DevicePointer beta,
                                 DevicePointer runningMean, DevicePointer runningVar, double eps, DevicePointer y,
                                 DeviceStream stream) {
        forwardInference(shape, DType.FLOAT32, x, gamma, beta, runningMean, runningVar, eps, y, stream);
    }

    /** Eval-mode forward with x and y stored in {@code dtype}. */
    public void forwardInference(Shape shape, DType dtype, DevicePointer x, DevicePointer gamma, DevicePointer beta,
                                 DevicePointer runningMean, DevicePointer runningVar, double eps, DevicePointer y,
                                 DeviceStream stream) {
        DeviceStream s = begin(stream);
        checks(dtype).forwardInference(shape, x, gamma, beta, runningMean, runningVar, eps, y);
        long t = tensorBytes(shape, dtype), c = 4L * shape.channels();
        new Aliasing().input("x", x, t).input("gamma", gamma, c).input("beta", beta, c)
                .input("runningMean", runningMean, c).input("runningVar", runningVar, c).output("y", y, t, "x").check();
        DevicePointer dummy = prepareWorkspace(shape, dtype, false, s);
        boolean vec = vectorizable(shape, dtype, x, y);
        guarded(s, () -> {
            launchPrepare(shape, PREP_EVAL_FORWARD, (float) eps, gamma, beta, runningMean, runningVar, dummy, s);
            launchApply(shape, dtype, vec, x, y, null, s);
        });
    }

    // ---- fused batch norm + (add) + ReLU, forward ------------------------------------------------------------------

    /**
     * Fused training-mode forward (see {@link io.github.batchnorm4j.BatchNormOps#forwardTrainingRelu}): the statistics
     * kernel as {@link #forwardTraining}, then one pass that computes v = bn(x) (+ z), writes y = relu(v) (v where
     * !(v &le; 0), else +0; NaN passes) rounded once to {@code dtype}, and the ReLU mask (one bit per element, {@link
     * io.github.batchnorm4j.ReluMask#words} 32-bit words). Always the two-pass statistics: the persistent path has no
     * fused variant yet. Traffic (emulator): 1 S (statistics) + 2 S (x, y) + S with z + 4 bytes per mask word.
     *
     * @param z    residual tensor (same shape and type as x) or null
     * @param y    output; may be exactly x (in place), no other overlap
     * @param mask output (ReluMask.words(elements) ints) or null when not wanted
     */
    public void forwardTrainingRelu(Shape shape, DType dtype, DevicePointer x, DevicePointer z, DevicePointer gamma,
                                    DevicePointer beta, double eps, DevicePointer runningMean,
                                    DevicePointer runningVar, double momentum, DevicePointer y, DevicePointer mask,
                                    DevicePointer saveMean, DevicePointer saveInvstd, DeviceStream stream) {
        DeviceStream s = begin(stream);
        checks(dtype).forwardTrainingRelu(shape, x, z, gamma, beta, eps, runningMean, runningVar, momentum, y, mask,
                saveMean, saveInvstd);
        long t = tensorBytes(shape, dtype), c = 4L * shape.channels();
        new Aliasing().input("x", x, t).input("z", z, t).input("gamma", gamma, c).input("beta", beta, c)
                .output("runningMean", runningMean, c, null).output("runningVar", runningVar, c, null)
                .output("y", y, t, "x").output("mask", mask, maskBytes(shape), null)
                .output("saveMean", saveMean, c, null).output("saveInvstd", saveInvstd, c, null).check();
        boolean inPlace = y.buffer() == x.buffer();
        int flags = (gamma != null ? HAS_GAMMA : 0) | (beta != null ? HAS_BETA : 0)
                | (runningMean != null ? HAS_RUNNING : 0) | (inPlace ? COEF_CENTER : 0);
        DevicePointer dummy = prepareWorkspace(shape, dtype, true, s);
        boolean vec = vectorizable(shape, dtype, z == null ? new DevicePointer[]{x, y} : new DevicePointer[]{x, z, y});
        guarded(s, () -> {
            launchStats(shape, dtype, x, flags, (float) eps, runningMean != null ? (float) momentum : 0f,
                    gamma, beta, runningMean, runningVar, saveMean, saveInvstd, dummy, workspace.coef(), s);
            launchApplyRelu(shape, dtype, vec, x, z, y, mask, inPlace ? null : x, s);
        });
    }

    /**
     * Fused eval-mode forward: y = relu((x − runningMean)/sqrt(runningVar + eps)·gamma + beta (+ z)) and the mask, in
     * one pass after the per-channel coefficients. Traffic: 2 S (x, y) + S with z + 4 bytes per mask word.
     */
    public void forwardInferenceRelu(Shape shape, DType dtype, DevicePointer x, DevicePointer z, DevicePointer gamma,
                                     DevicePointer beta, DevicePointer runningMean, DevicePointer runningVar,
                                     double eps, DevicePointer y, DevicePointer mask, DeviceStream stream) {
        DeviceStream s = begin(stream);
        checks(dtype).forwardInferenceRelu(shape, x, z, gamma, beta, runningMean, runningVar, eps, y, mask);
        long t = tensorBytes(shape, dtype), c = 4L * shape.channels();
        new Aliasing().input("x", x, t).input("z", z, t).input("gamma", gamma, c).input("beta", beta, c)
                .input("runningMean", runningMean, c).input("runningVar", runningVar, c).output("y", y, t, "x")
                .output("mask", mask, maskBytes(shape), null).check();
        DevicePointer dummy = prepareWorkspace(shape, dtype, false, s);
        boolean vec = vectorizable(shape, dtype, z == null ? new DevicePointer[]{x, y} : new DevicePointer[]{x, z, y});
        guarded(s, () -> {
            launchPrepare(shape, PREP_EVAL_FORWARD, (float) eps, gamma, beta, runningMean, runningVar, dummy, s);
            launchApplyRelu(shape, dtype, vec, x, z, y, mask, null, s);
        });
    }

    /** {@link #forwardTrainingRelu(Shape, DType, DevicePointer, DevicePointer, DevicePointer, DevicePointer, double,
     * DevicePointer, DevicePointer, double, DevicePointer, DevicePointer, DevicePointer, DevicePointer, DeviceStream)}
     * with float32 tensors. */
    public void forwardTrainingRelu(Shape shape, DevicePointer x, DevicePointer z, DevicePointer gamma,
                                    DevicePointer beta, double eps, DevicePointer runningMean,
                                    DevicePointer runningVar, double momentum, DevicePointer y, DevicePointer mask,
                                    DevicePointer saveMean, DevicePointer saveInvstd, DeviceStream stream) {
        forwardTrainingRelu(shape, DType.FLOAT32, x, z, gamma, beta, eps, runningMean, runningVar, momentum, y, mask,
                saveMean, saveInvstd, stream);
    }

    /** {@link #forwardInferenceRelu(Shape, DType, DevicePointer, DevicePointer, DevicePointer, DevicePointer,
     * DevicePointer, DevicePointer, double, DevicePointer, DevicePointer, DeviceStream)} with float32 tensors. */
    public void forwardInferenceRelu(Shape shape, DevicePointer x, DevicePointer z, DevicePointer gamma,
                                     DevicePointer beta, DevicePointer runningMean, DevicePointer runningVar,
                                     double eps, DevicePointer y, DevicePointer mask, DeviceStream stream) {
        forwardInferenceRelu(shape, DType.FLOAT32, x, z, gamma, beta, runningMean, runningVar, eps, y, mask, stream);
    }

    private static long maskBytes(Shape shape) {
        return 4L * io.github.batchnorm4j.ReluMask.words(shape.elementCount());
    }

    /** Applies given statistics: y = (x − mean)·invstd·gamma + beta. */
    public void normalize(Shape shape, DevicePointer x, DevicePointer gamma, DevicePointer beta, DevicePointer mean,
                          DevicePointer invstd, DevicePointer y, DeviceStream stream) {
        normalize(shape, DType.FLOAT32, x, gamma, beta, mean, invstd, y, stream);
    }

    /** Applies given statistics to x stored in {@code dtype}; y in {@code dtype}. */
    public void normalize(Shape shape, DType dtype, DevicePointer x, DevicePointer gamma, DevicePointer beta,
                          DevicePointer mean, DevicePointer invstd, DevicePointer y, DeviceStream stream) {
        DeviceStream s = begin(stream);
        checks(dtype).normalize(shape, x, gamma, beta, mean, invstd, y);
        long t = tensorBytes(shape, dtype), c = 4L * shape.channels();
        new Aliasing().input("x", x, t).input("gamma", gamma, c).input("beta", beta, c).input("mean", mean, c)
                .input("invstd", invstd, c).output("y", y, t, "x").check();
        DevicePointer dummy = prepareWorkspace(shape, dtype, false, s);
        boolean vec = vectorizable(shape, dtype, x, y);
        guarded(s, () -> {
            launchPrepare(shape, PREP_NORMALIZE, 1f, gamma, beta, mean, invstd, dummy, s);
            launchApply(shape, dtype, vec, x, y, null, s);
        });
    }

    /**
     * Training-mode backward with the saved statistics: dbeta = Σdy, dgamma = Σdy·xhat,
     * dx = gamma·invstd/M·(M·dy − dbeta − xhat·dgamma).
     *
     * @param dx     output tensor
     * @param dgamma output or null; dbeta: output or null
     */
    @Override
    public void backwardTraining(Shape shape, DevicePointer x, DevicePointer dy, DevicePointer gamma,
                                 DevicePointer saveMean, DevicePointer saveInvstd, DevicePointer dx,
                                 DevicePointer dgamma, DevicePointer dbeta, DeviceStream stream) {
        backwardTraining(shape, DType.FLOAT32, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta, stream);
    }

    /** Training-mode backward with x, dy and dx stored in {@code dtype} (dx rounded once); dgamma, dbeta float32. */
    public void backwardTraining(Shape shape, DType dtype, DevicePointer x, DevicePointer dy, DevicePointer gamma,
                                 DevicePointer saveMean, DevicePointer saveInvstd, DevicePointer dx,
                                 DevicePointer dgamma, DevicePointer dbeta, DeviceStream stream) {
        DeviceStream s = begin(stream);
        checks(dtype).backwardTraining(shape, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
        long t = tensorBytes(shape, dtype), c = 4L * shape.channels();
        new Aliasing().input("x", x, t).input("dy", dy, t).input("gamma", gamma, c).input("saveMean", saveMean, c)
                .input("saveInvstd", saveInvstd, c).output("dx", dx, t, "dy").output("dgamma", dgamma, c, null)
                .output("dbeta", dbeta, c, null).check();
        int flags = TRAIN_DX | (gamma != null ? HAS_GAMMA : 0) | (dgamma != null ? WANT_DGAMMA : 0)
                | (dbeta != null ? WANT_DBETA : 0);
        DevicePointer dummy = prepareWorkspace(shape, dtype, true, s);
        boolean vec = vectorizable(shape, dtype, x, dy, dx);
        Optional<Plan> p = persistent(shape, dtype, vec, true);
        if (p.isPresent()) {
            guarded(s, () -> {
                for (int phase : p.get().phases()) {
                    launchPersistentBackward(shape, dtype, p.get(), vec, x, dy, dx, flags, gamma, saveMean,
                            saveInvstd, dgamma, dbeta, dummy, phase, s);
                }
            });
            return;
        }
        guarded(s, () -> {
            launchBackwardReduce(shape, dtype, x, dy, flags, gamma, saveMean, saveInvstd, dgamma, dbeta, dummy, s);
            launchDx(shape, dtype, vec, x, dy, dx, saveMean, s);
        });
    }

    /**
     * Eval-mode backward with frozen running statistics: dx = dy·gamma/sqrt(runningVar + eps),
     * dgamma = Σdy·(x − runningMean)/sqrt(runningVar + eps), dbeta = Σdy. Reads x only for dgamma/dbeta.
     */
    public void backwardInference(Shape shape, DevicePointer x, DevicePointer dy, DevicePointer gamma,
                                  DevicePointer runningMean, DevicePointer runningVar, double eps, DevicePointer dx,
                                  DevicePointer dgamma, DevicePointer dbeta, DeviceStream stream) {
        backwardInference(shape, DType.FLOAT32, x, dy, gamma, runningMean, runningVar, eps, dx, dgamma, dbeta,
                stream);
    }

    /** Eval-mode backward with x, dy and dx stored in {@code dtype}. */
    public void backwardInference(Shape shape, DType dtype, DevicePointer x, DevicePointer dy, DevicePointer gamma,
                                  DevicePointer runningMean, DevicePointer runningVar, double eps, DevicePointer dx,
                                  DevicePointer dgamma, DevicePointer dbeta, DeviceStream stream) {
        DeviceStream s = begin(stream);
        checks(dtype).backwardInference(shape, x, dy, gamma, runningMean, runningVar, eps, dx, dgamma, dbeta);
        long t = tensorBytes(shape, dtype), c = 4L * shape.channels();
        new Aliasing().input("x", x, t).input("dy", dy, t).input("gamma", gamma, c)
                .input("runningMean", runningMean, c).input("runningVar", runningVar, c).output("dx", dx, t, "dy")
                .output("dgamma", dgamma, c, null).output("dbeta", dbeta, c, null).check();
        boolean sums = dgamma != null || dbeta != null;
        int flags = (dgamma != null ? WANT_DGAMMA : 0) | (dbeta != null ? WANT_DBETA : 0);
        DevicePointer dummy = prepareWorkspace(shape, dtype, sums, s);
        boolean vec = vectorizable(shape, dtype, dy, dx);
        guarded(s, () -> {
            launchPrepare(shape, PREP_EVAL_BACKWARD, (float) eps, gamma, null, runningMean, runningVar, dummy, s);
            if (sums) {
                launchBackwardReduce(shape, dtype, x, dy, flags, null, runningMean, workspace.aux(), dgamma, dbeta,
                        dummy, s);
            }
            launchApply(shape, dtype, vec, dy, dx, null, s);
        });
    }

    // ---- fused backward of BN + ReLU and BN + add + ReLU (the ReLU mask, never y) -----------------------------------

    /** The fused backward's kernel families (each for both views, every storage type, scalar and vector). */
    private static final String[] FUSED_BACKWARD_FAMILIES = {"bn_backward_reduce_relu_cf", "bn_backward_reduce_relu_cl",
            "bn_dx_relu_cf", "bn_dx_relu_cl", "bn_dx_eval_relu_cf", "bn_dx_eval_relu_cl"};

    /**
     * Fused training-mode backward of BN + ReLU (z absent in the forward) or BN + add + ReLU: the gradient reaching
     * the batch norm is g = dy where the forward's ReLU mask bit is 1, else +0 ({@link io.github.batchnorm4j.ReluMask});
     * dbeta = Σg, dgamma = Σg·xhat, dx = gamma·invstd/M·(M·g − dbeta − xhat·dgamma), and the residual's gradient
     * dz = g. The same bits as {@link #backwardTraining} on the gated gradient; y is not an argument: the kernels read
     * the mask (one bit per element) instead. Two-pass kernels always (the persistent path is not fused): the sums read
     * x, dy and the mask; the elementwise pass reads them again and writes dx and dz, 6 S + S/16 in float32 with dz
     * (docs/design.md §3).
     *
     * @param mask {@link io.github.batchnorm4j.ReluMask#words} 32-bit words (4-byte aligned), an input
     * @param dx   output; may be exactly dy (in place)
     * @param dz   output or null (not written); may be exactly dy when dx is not
     */
    public void backwardTrainingRelu(Shape shape, DevicePointer x, DevicePointer dy, DevicePointer mask,
                                     DevicePointer gamma, DevicePointer saveMean, DevicePointer saveInvstd,
                                     DevicePointer dx, DevicePointer dz, DevicePointer dgamma, DevicePointer dbeta,
                                     DeviceStream stream) {
        backwardTrainingRelu(shape, DType.FLOAT32, x, dy, mask, gamma, saveMean, saveInvstd, dx, dz, dgamma, dbeta,
                stream);
    }

    /** {@link #backwardTrainingRelu} with x, dy, dx and dz stored in {@code dtype} (dx rounded once, dz exact). */
    public void backwardTrainingRelu(Shape shape, DType dtype, DevicePointer x, DevicePointer dy, DevicePointer mask,
                                     DevicePointer gamma, DevicePointer saveMean, DevicePointer saveInvstd,
                                     DevicePointer dx, DevicePointer dz, DevicePointer dgamma, DevicePointer dbeta,
                                     DeviceStream stream) {
        DeviceStream s = begin(stream);
        checks(dtype).backwardTrainingRelu(shape, x, dy, mask, gamma, saveMean, saveInvstd, dx, dz, dgamma, dbeta);
        long t = tensorBytes(shape, dtype), c = 4L * shape.channels();
        new Aliasing().input("x", x, t).input("dy", dy, t).input("mask", mask, maskBytes(shape))
                .input("gamma", gamma, c).input("saveMean", saveMean, c).input("saveInvstd", saveInvstd, c)
                .output("dx", dx, t, "dy").output("dz", dz, t, "dy").output("dgamma", dgamma, c, null)
                .output("dbeta", dbeta, c, null).check();
        int flags = TRAIN_DX | (gamma != null ? HAS_GAMMA : 0) | (dgamma != null ? WANT_DGAMMA : 0)
                | (dbeta != null ? WANT_DBETA : 0);
        DevicePointer dummy = prepareWorkspace(shape, dtype, true, s);
        boolean vec = dz != null ? vectorizable(shape, dtype, x, dy, dx, dz) : vectorizable(shape, dtype, x, dy, dx);
        guarded(s, () -> {
            launchBackwardReduceRelu(shape, dtype, x, dy, mask, flags, gamma, saveMean, saveInvstd, dgamma, dbeta,
                    dummy, s);
            launchDxRelu(shape, dtype, vec, x, dy, mask, dx, dz, saveMean, s);
        });
    }

    /**
     * Fused eval-mode backward of BN + (add +) ReLU with frozen running statistics: g = dy gated by the mask,
     * dx = g·gamma/sqrt(runningVar + eps), dz = g, dgamma = Σg·(x − runningMean)/sqrt(runningVar + eps), dbeta = Σg
     * ({@link #backwardInference} on g, bit for bit). Reads x only for dgamma/dbeta.
     *
     * @param mask the forward's ReLU mask (input); dx: output, may be exactly dy; dz: output or null, may be exactly dy
     *             when dx is not
     */
    public void backwardInferenceRelu(Shape shape, DevicePointer x, DevicePointer dy, DevicePointer mask,
                                      DevicePointer gamma, DevicePointer runningMean, DevicePointer runningVar,
                                      double eps, DevicePointer dx, DevicePointer dz, DevicePointer dgamma,
                                      DevicePointer dbeta, DeviceStream stream) {
        backwardInferenceRelu(shape, DType.FLOAT32, x, dy, mask, gamma, runningMean, runningVar, eps, dx, dz, dgamma,
                dbeta, stream);
    }

    /** {@link #backwardInferenceRelu} with x, dy, dx and dz stored in {@code dtype}. */
    public void backwardInferenceRelu(Shape shape, DType dtype, DevicePointer x, DevicePointer dy, DevicePointer mask,
                                      DevicePointer gamma, DevicePointer runningMean, DevicePointer runningVar,
                                      double eps, DevicePointer dx, DevicePointer dz, DevicePointer dgamma,
                                      DevicePointer dbeta, DeviceStream stream) {
        DeviceStream s = begin(stream);
        checks(dtype).backwardInferenceRelu(shape, x, dy, mask, gamma, runningMean, runningVar, eps, dx, dz, dgamma,
                dbeta);
        long t = tensorBytes(shape, dtype), c = 4L * shape.channels();
        new Aliasing().input("x", x, t).input("dy", dy, t).input("mask", mask, maskBytes(shape))
                .input("gamma", gamma, c).input("runningMean", runningMean, c).input("runningVar", runningVar, c)
                .output("dx", dx, t, "dy").output("dz", dz, t, "dy").output("dgamma", dgamma, c, null)
                .output("dbeta", dbeta, c, null).check();
        boolean sums = dgamma != null || dbeta != null;
        int flags = (dgamma != null ? WANT_DGAMMA : 0) | (dbeta != null ? WANT_DBETA : 0);
        DevicePointer dummy = prepareWorkspace(shape, dtype, sums, s);
        boolean vec = dz != null ? vectorizable(shape, dtype, dy, dx, dz) : vectorizable(shape, dtype, dy, dx);
        guarded(s, () -> {
            launchPrepare(shape, PREP_EVAL_BACKWARD, (float) eps, gamma, null, runningMean, runningVar, dummy, s);
            if (sums) {
                launchBackwardReduceRelu(shape, dtype, x, dy, mask, flags, null, runningMean, workspace.aux(), dgamma,
                        dbeta, dummy, s);
            }
            launchDxEvalRelu(shape, dtype, vec, dy, mask, dx, dz, s);
        });
    }

    private void launchBackwardReduceRelu(Shape shape, DType dtype, DevicePointer x, DevicePointer dy,
                                          DevicePointer mask, int flags, DevicePointer gamma, DevicePointer mean,
                                          DevicePointer invstd, DevicePointer dgamma, DevicePointer dbeta,
                                          DevicePointer dummy, DeviceStream s) {
        boolean vec = vectorizable(shape, dtype, x, dy);
        LaunchGeometry.Reduction g = LaunchGeometry.reduction(shape, vec, dtype);
        KernelArgs a = new KernelArgs().ptr(x).ptr(dy).ptr(mask);
        reductionShapeArgs(a, shape, g);
        a.ptr(workspace.partials()).ptr(workspace.counters())
                .i64(shape.reductionSize()).i32(flags)
                .ptr(or(gamma, dummy)).ptr(mean).ptr(invstd).ptr(or(dgamma, dummy)).ptr(or(dbeta, dummy))
                .ptr(workspace.coef());
        launch(name("bn_backward_reduce_relu", g.view(), dtype, vec), g.grid(), g.block(), a, s);
    }

    private void launchDxRelu(Shape shape, DType dtype, boolean vec, DevicePointer x, DevicePointer dy,
                              DevicePointer mask, DevicePointer dx, DevicePointer dz, DevicePointer mean,
                              DeviceStream s) {
        String kernel = name("bn_dx_relu", LaunchGeometry.view(shape), dtype, vec);
        LaunchGeometry.Elementwise g = LaunchGeometry.elementwise(shape, vec, device.properties().multiprocessorCount(),
                blocksPerSm(kernel), dtype);
        KernelArgs a = new KernelArgs().ptr(x).ptr(dy).ptr(mask).ptr(dx);
        if (dz != null) a.ptr(dz); else a.i64(0);   // a null pointer: dz is not written
        elementwiseShapeArgs(a, shape, g);
        a.ptr(workspace.coef()).ptr(mean);
        launch(kernel, g.grid(), g.block(), a, s);
    }

    private void launchDxEvalRelu(Shape shape, DType dtype, boolean vec, DevicePointer dy, DevicePointer mask,
                                  DevicePointer dx, DevicePointer dz, DeviceStream s) {
        String kernel = name("bn_dx_eval_relu", LaunchGeometry.view(shape), dtype, vec);
        LaunchGeometry.Elementwise g = LaunchGeometry.elementwise(shape, vec, device.properties().multiprocessorCount(),
                blocksPerSm(kernel), dtype);
        KernelArgs a = new KernelArgs().ptr(dy).ptr(mask).ptr(dx);
        if (dz != null) a.ptr(dz); else a.i64(0);
        elementwiseShapeArgs(a, shape, g);
        a.ptr(workspace.coef());
        launch(kernel, g.grid(), g.block(), a, s);
    }

    /**
     * The kernels the last operation launched, with grid, block, registers, occupancy and waves (a copy; empty before
     * the first operation).
     */
    public List<KernelLaunch> lastOperationLaunches() {
        List<KernelLaunch> out = new ArrayList<>(launches.size());
        for (Launched l : launches) {
            out.add(KernelLaunch.of(device, kernels.get(l.kernel()), l.grid(), l.block(), blocksPerSm(l.kernel())));
        }
        return out;
    }

    /** A launch as made; its occupancy is asked of the device only when someone wants the record. */
    private record Launched(String kernel, Dim3 grid, Dim3 block) {
    }

    // ---- the split operations: one piece of a batch whose statistics and sums are merged elsewhere ----------------
    // Data-parallel batch norm (distributed.DeviceResidentSyncBatchNorm) writes each rank's record, all-gathers the
    // records and merges them on every rank in rank order; the host API runs the same kernels with one record. A
    // record is a run of floats, so any all-gather of floats carries it: counts are split into two floats exact up to
    // 2^24 each (count = hi·2^24 + lo, exact for counts below 2^48).

    /** Floats of one statistics record: 2 + 3·C ([count_hi, count_lo, center[C], mean − center[C], M2[C]]). */
    public static int statisticsRecordFloats(int channels) {
        return 2 + 3 * channels;
    }

    /** Floats of one gradient record: 2 + 2·C ([count_hi, count_lo, Σdy[C], Σdy·xhat[C]]). */
    public static int gradientRecordFloats(int channels) {
        return 2 + 2 * channels;
    }

    /** The two floats of a record's count: hi·2^24 + lo, each exact in float. */
    public static float[] countWords(long count) {
        if (count < 0 || count >= 1L << 48) {
            throw new IllegalArgumentException("count: expected [0, 2^48), got " + count);
        }
        return new float[] {(float) (count >>> 24), (float) (count & 0xFF_FFFFL)};
    }

    /** The count of a record from its two first floats (see {@link #countWords}). */
    public static long countOf(float hi, float lo) {
        return (long) hi * (1L << 24) + (long) lo;
    }

    /**
     * The argument checks of this device's API (each pointer on this device, 4-byte aligned, with room enough), for a
     * caller that must validate a whole operation before its first step (see {@code DeviceResidentSyncBatchNorm}).
     */
    public ArgumentChecks<DevicePointer> checks() {
        return checks;
    }

    /**
     * Writes this piece's statistics record ({@link #statisticsRecordFloats} floats) to {@code record}: its count M,
     * and per channel its center (the first value), mean − center and M2, as the statistics kernel computes them.
     * Ordered on the stream; copies the two count floats from the host.
     */
    public void statisticsRecord(Shape shape, DevicePointer x, DevicePointer record, DeviceStream stream) {
        DeviceStream s = begin(stream);
        checks.statistics(shape, x);
        checkPointer("record", record, statisticsRecordFloats(shape.channels()), "(2 + 3·C for " + shape + ")");
        DevicePointer dummy = prepareWorkspace(shape, DType.FLOAT32, true, s);
        float[] count = countWords(shape.reductionSize());
        device.copyToDevice(count, 0, record, 2, s);
        guarded(s, () -> launchStats(shape, DType.FLOAT32, x, STATS_ONLY, 0, 0, null, null, null, null, null, null,
                dummy, record.plus(8), s));
    }

    /**
     * Training forward of this piece with the statistics of the whole batch, merged from {@code ranks} consecutive
     * statistics records with Chan's formula in record order (see {@link SplitBatchNormOps#forwardWithStatistics} for
     * the outputs; the running variance uses the merged count). The records' merged count must exceed 1 (not checked
     * here: it is on the device).
     *
     * @param records ranks·{@link #statisticsRecordFloats} floats
     */
    public void forwardWithRecords(Shape shape, DevicePointer x, DevicePointer records, int ranks,
                                   DevicePointer gamma, DevicePointer beta, double eps, DevicePointer runningMean,
                                   DevicePointer runningVar, double momentum, DevicePointer y, DevicePointer saveMean,
                                   DevicePointer saveInvstd, DeviceStream stream) {
        DeviceStream s = begin(stream);
        checks.forwardTrainingPiece(shape, x, gamma, beta, eps, runningMean, runningVar, momentum, y, saveMean,
                saveInvstd);
        checkRecords(shape, records, ranks, statisticsRecordFloats(shape.channels()));
        // the merge kernel writes the merged center (the first record's, another rank's x) into coef: no center_x
        int flags = (gamma != null ? HAS_GAMMA : 0) | (beta != null ? HAS_BETA : 0)
                | (runningMean != null ? HAS_RUNNING : 0);
        DevicePointer dummy = prepareWorkspace(shape, DType.FLOAT32, false, s);
        boolean vec = vectorizable(shape, DType.FLOAT32, x, y);
        guarded(s, () -> {
            KernelArgs a = new KernelArgs().i32(ranks).i32(shape.channels()).ptr(records).f32((float) eps)
                    .f32(runningMean != null ? (float) momentum : 0f).i32(flags)
                    .ptr(or(gamma, dummy)).ptr(or(beta, dummy)).ptr(or(runningMean, dummy))
                    .ptr(or(runningVar, dummy)).ptr(saveMean).ptr(saveInvstd).ptr(workspace.coef());
            launch("bn_stats_merge", LaunchGeometry.prepareGrid(shape.channels()), Dim3.of(LaunchGeometry.BLOCK), a, s);
            launchApply(shape, DType.FLOAT32, vec, x, y, null, s);
        });
    }

    /**
     * Writes this piece's gradient record ({@link #gradientRecordFloats} floats) to {@code record}: its count M, Σdy
     * and Σdy·xhat per channel with xhat = (x − saveMean)·saveInvstd (the shared statistics). Ordered on the stream;
     * copies the two count floats from the host.
     */
    public void gradientRecord(Shape shape, DevicePointer x, DevicePointer dy, DevicePointer saveMean,
                               DevicePointer saveInvstd, DevicePointer record, DeviceStream stream) {
        DeviceStream s = begin(stream);
        checks.gradientSums(shape, x, dy, saveMean, saveInvstd);
        int c = shape.channels();
        checkPointer("record", record, gradientRecordFloats(c), "(2 + 2·C for " + shape + ")");
        DevicePointer dummy = prepareWorkspace(shape, DType.FLOAT32, true, s);
        device.copyToDevice(countWords(shape.reductionSize()), 0, record, 2, s);
        DevicePointer dbeta = record.plus(8);
        DevicePointer dgamma = record.plus(8 + 4L * c);
        guarded(s, () -> launchBackwardReduce(shape, DType.FLOAT32, x, dy, WANT_DGAMMA | WANT_DBETA, null, saveMean,
                saveInvstd,
                dgamma, dbeta, dummy, s));
    }

    /**
     * Training-mode dx of this piece from the sums of the whole batch, added from {@code ranks} consecutive gradient
     * records in record order: dx = gamma·invstd/M·(M·dy − Σdy − xhat·Σdy·xhat) with M the summed count; dgamma and
     * dbeta (each optional) receive the totals.
     *
     * @param records ranks·{@link #gradientRecordFloats} floats
     */
    public void backwardWithRecords(Shape shape, DevicePointer x, DevicePointer dy, DevicePointer gamma,
                                    DevicePointer saveMean, DevicePointer saveInvstd, DevicePointer records, int ranks,
                                    DevicePointer dx, DevicePointer dgamma, DevicePointer dbeta, DeviceStream stream) {
        DeviceStream s = begin(stream);
        checks.backwardTrainingPiece(shape, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
        checkRecords(shape, records, ranks, gradientRecordFloats(shape.channels()));
        int flags = TRAIN_DX | (gamma != null ? HAS_GAMMA : 0) | (dgamma != null ? WANT_DGAMMA : 0)
                | (dbeta != null ? WANT_DBETA : 0);
        DevicePointer dummy = prepareWorkspace(shape, DType.FLOAT32, false, s);
        boolean vec = vectorizable(shape, DType.FLOAT32, x, dy, dx);
        guarded(s, () -> {
            KernelArgs a = new KernelArgs().i32(ranks).i32(shape.channels()).ptr(records).i32(flags)
                    .ptr(or(gamma, dummy)).ptr(saveMean).ptr(saveInvstd).ptr(or(dgamma, dummy))
                    .ptr(or(dbeta, dummy)).ptr(workspace.coef());
            launch("bn_backward_merge", LaunchGeometry.prepareGrid(shape.channels()), Dim3.of(LaunchGeometry.BLOCK),
                    a, s);
            launchDx(shape, DType.FLOAT32, vec, x, dy, dx, saveMean, s);
        });
    }

    private void checkRecords(Shape shape, DevicePointer records, int ranks, int recordFloats) {
        if (ranks < 1) throw new IllegalArgumentException("ranks: expected >= 1, got " + ranks);
        if (records == null) throw new IllegalArgumentException("records must not be null");
        checkPointer("records", records, (long) ranks * recordFloats,
                "(" + ranks + " records of " + recordFloats + " floats for " + shape + ")");
    }

    /** Bytes of workspace held now, over all streams (each grows to the largest shape seen on its stream). */
    public long workspaceBytes() {
        long bytes = 0;
        for (Workspace w : workspaces.values()) bytes += w.bytes();
        return bytes;
    }

    /** Frees the workspace and unloads the modules. Idempotent; later calls throw IllegalStateException. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        for (Workspace w : workspaces.values()) w.close();
        workspaces.clear();
        backward.close();
        forward.close();
    }

    // ---- launches ------------------------------------------------------------------------------------------------

    private void launchStats(Shape shape, DType dtype, DevicePointer x, int flags, float eps, float momentum,
                             DevicePointer gamma, DevicePointer beta, DevicePointer runningMean,
                             DevicePointer runningVar, DevicePointer saveMean, DevicePointer saveInvstd,
                             DevicePointer dummy, DevicePointer coef, DeviceStream s) {
        boolean vec = vectorizable(shape, dtype, x);
        LaunchGeometry.Reduction g = LaunchGeometry.reduction(shape, vec, dtype);
        KernelArgs a = new KernelArgs().ptr(x);
        reductionShapeArgs(a, shape, g);
        a.ptr(workspace.partials()).ptr(workspace.counters())
                .i64(shape.reductionSize()).f32(eps).f32(momentum).i32(flags)
                .ptr(or(gamma, dummy)).ptr(or(beta, dummy)).ptr(or(runningMean, dummy)).ptr(or(runningVar, dummy))
                .ptr(or(saveMean, dummy)).ptr(or(saveInvstd, dummy)).ptr(coef);
        launch(name("bn_stats", g.view(), dtype, vec), g.grid(), g.block(), a, s);
    }

    private void launchPrepare(Shape shape, int mode, float eps, DevicePointer gamma, DevicePointer beta,
                               DevicePointer mean, DevicePointer varOrInvstd, DevicePointer dummy, DeviceStream s) {
        int flags = (gamma != null ? HAS_GAMMA : 0) | (beta != null ? HAS_BETA : 0);
        KernelArgs a = new KernelArgs().i32(mode).i32(shape.channels()).f32(eps).i32(flags)
                .ptr(or(gamma, dummy)).ptr(or(beta, dummy)).ptr(mean).ptr(varOrInvstd)
                .ptr(workspace.coef()).ptr(workspace.aux());
        launch("bn_prepare", LaunchGeometry.prepareGrid(shape.channels()), Dim3.of(LaunchGeometry.BLOCK), a, s);
    }

    /** @param centerX the tensor whose row 0 holds the centers (forward training, not in place), or null: coef row 0 */
    private void launchApply(Shape shape, DType dtype, boolean vec, DevicePointer in, DevicePointer out,
                             DevicePointer centerX, DeviceStream s) {
        String kernel = name("bn_apply", LaunchGeometry.view(shape), dtype, vec);
        LaunchGeometry.Elementwise g = LaunchGeometry.elementwise(shape, vec, device.properties().multiprocessorCount(),
                blocksPerSm(kernel), dtype);
        KernelArgs a = new KernelArgs().ptr(in).ptr(out);
        elementwiseShapeArgs(a, shape, g);
        a.ptr(workspace.coef());
        if (centerX != null) a.ptr(centerX); else a.i64(0);   // a null pointer: the kernel reads coef row 0
        launch(kernel, g.grid(), g.block(), a, s);
    }

    /** bn_apply_relu*: z and mask may be null; centerX as for {@link #launchApply}. */
    private void launchApplyRelu(Shape shape, DType dtype, boolean vec, DevicePointer x, DevicePointer z,
                                 DevicePointer y, DevicePointer mask, DevicePointer centerX, DeviceStream s) {
        String kernel = name("bn_apply_relu", dtype, vec);
        LaunchGeometry.Relu g = LaunchGeometry.relu(shape, vec, device.properties().multiprocessorCount(),
                blocksPerSm(kernel), dtype);
        KernelArgs a = new KernelArgs().ptr(x);
        if (z != null) a.ptr(z); else a.i64(0);   // null pointers: no residual, no mask
        a.ptr(y);
        if (mask != null) a.ptr(mask); else a.i64(0);
        a.i64(shape.elementCount()).i32(shape.channels()).i64(shape.inner()).i64(g.period()).i32(g.tiles())
                .i64(g.periods()).i64(g.chunk()).i32(g.items()).ptr(workspace.coef());
        if (centerX != null) a.ptr(centerX); else a.i64(0);
        launch(kernel, g.grid(), g.block(), a, s);
    }

    private void launchBackwardReduce(Shape shape, DType dtype, DevicePointer x, DevicePointer dy, int flags,
                                      DevicePointer gamma, DevicePointer mean, DevicePointer invstd,
                                      DevicePointer dgamma, DevicePointer dbeta, DevicePointer dummy, DeviceStream s) {
        boolean vec = vectorizable(shape, dtype, x, dy);
        LaunchGeometry.Reduction g = LaunchGeometry.reduction(shape, vec, dtype);
        KernelArgs a = new KernelArgs().ptr(x).ptr(dy);
        reductionShapeArgs(a, shape, g);
        a.ptr(workspace.partials()).ptr(workspace.counters())
                .i64(shape.reductionSize()).i32(flags)
                .ptr(or(gamma, dummy)).ptr(mean).ptr(invstd).ptr(or(dgamma, dummy)).ptr(or(dbeta, dummy))
                .ptr(workspace.coef());
        launch(name("bn_backward_reduce", g.view(), dtype, vec), g.grid(), g.block(), a, s);
    }

    private void launchDx(Shape shape, DType dtype, boolean vec, DevicePointer x, DevicePointer dy, DevicePointer dx,
                          DevicePointer mean, DeviceStream s) {
        String kernel = name("bn_dx", LaunchGeometry.view(shape), dtype, vec);
        LaunchGeometry.Elementwise g = LaunchGeometry.elementwise(shape, vec, device.properties().multiprocessorCount(),
                blocksPerSm(kernel), dtype);
        KernelArgs a = new KernelArgs().ptr(x).ptr(dy).ptr(dx);
        elementwiseShapeArgs(a, shape, g);
        a.ptr(workspace.coef()).ptr(mean);
        launch(kernel, g.grid(), g.block(), a, s);
    }

    // ---- the persistent path ------------------------------------------------------------------------------------

    /**
     * The persistent geometry of a training-mode forward (or backward) when this call may take that path: AUTO,
     * a device that launches cooperatively, at most {@link LaunchGeometry#MAX_PERSIST_SPLITS} blocks per
     * channel, and a grid that fits the device at once with the kernel's occupancy; else empty (two-pass).
     */
    private Optional<Plan> persistent(Shape shape, DType dtype, boolean vec, boolean backward) {
        if (trainingPath == TrainingPath.TWO_PASS) return Optional.empty();
        int units = backward ? LaunchGeometry.persistBackwardUnits(vec, dtype)
                : LaunchGeometry.persistForwardUnits(vec, dtype);
        Optional<LaunchGeometry.Persistent> g = LaunchGeometry.persistent(shape, vec, dtype, units);
        if (g.isEmpty()) return Optional.empty();
        boolean fits = false;
        if (device.supportsCooperativeLaunch()) {
            String kernel = name(backward ? "bn_persist_bwd" : "bn_persist_fwd", g.get().view(), dtype, vec);
            int threads = (int) g.get().block().volume();
            int perSm = blocksPerSm.computeIfAbsent(kernel + "/" + threads,
                    k -> device.maxActiveBlocksPerMultiprocessor(kernels.get(kernel), threads, 0));
            fits = g.get().grid().volume() <= (long) perSm * device.properties().multiprocessorCount();
        }
        if (fits) return Optional.of(new Plan(g.get(), true, new int[]{PERSIST_ONE_LAUNCH}));
        if (trainingPath == TrainingPath.AUTO) return Optional.empty();
        // Without an exchange no block waits for another: one ordinary launch whatever the device holds at once.
        int[] phases = g.get().partials() == 0 ? new int[]{PERSIST_ONE_LAUNCH}
                : new int[]{PERSIST_PARTIALS, PERSIST_OUTPUTS};
        return Optional.of(new Plan(g.get(), false, phases));
    }

    /** A persistent geometry and how it runs: one cooperative launch, or ordinary launches of these phases. */
    private record Plan(LaunchGeometry.Persistent g, boolean cooperative, int[] phases) {
    }

    private void launchPersistentForward(Shape shape, DType dtype, Plan p, boolean vec, DevicePointer x,
                                         DevicePointer y, int flags, float eps, float momentum, DevicePointer gamma,
                                         DevicePointer beta, DevicePointer runningMean, DevicePointer runningVar,
                                         DevicePointer saveMean, DevicePointer saveInvstd, DevicePointer dummy,
                                         int phase, DeviceStream s) {
        LaunchGeometry.Persistent g = p.g();
        KernelArgs a = new KernelArgs().ptr(x).ptr(y);
        persistentShapeArgs(a, shape, g);
        a.i64(shape.reductionSize()).f32(eps).f32(momentum).i32(flags)
                .ptr(or(gamma, dummy)).ptr(or(beta, dummy)).ptr(or(runningMean, dummy)).ptr(or(runningVar, dummy))
                .ptr(or(saveMean, dummy)).ptr(or(saveInvstd, dummy)).ptr(workspace.coef()).i32(phase);
        launchPersistent(p, name("bn_persist_fwd", g.view(), dtype, vec), a, s);
    }

    private void launchPersistent(Plan p, String kernel, KernelArgs a, DeviceStream s) {
        if (p.cooperative()) launchCooperative(kernel, p.g().grid(), p.g().block(), a, s);
        else launch(kernel, p.g().grid(), p.g().block(), a, s);
    }

    private void launchPersistentBackward(Shape shape, DType dtype, Plan p, boolean vec, DevicePointer x,
                                          DevicePointer dy, DevicePointer dx, int flags, DevicePointer gamma,
                                          DevicePointer mean, DevicePointer invstd, DevicePointer dgamma,
                                          DevicePointer dbeta, DevicePointer dummy, int phase, DeviceStream s) {
        LaunchGeometry.Persistent g = p.g();
        KernelArgs a = new KernelArgs().ptr(x).ptr(dy).ptr(dx);
        persistentShapeArgs(a, shape, g);
        a.i64(shape.reductionSize()).i32(flags)
                .ptr(or(gamma, dummy)).ptr(mean).ptr(invstd).ptr(or(dgamma, dummy)).ptr(or(dbeta, dummy))
                .ptr(workspace.coef()).i32(phase);
        launchPersistent(p, name("bn_persist_bwd", g.view(), dtype, vec), a, s);
    }

    /** (C, N, inner, splits, chunk) or (rows, C, inner, chunk), then the partials and the barrier's two words. */
    private void persistentShapeArgs(KernelArgs a, Shape shape, LaunchGeometry.Persistent g) {
        if (g.view() == LaunchGeometry.View.CHANNELS_FIRST) {
            a.i32(shape.channels()).i64(shape.batch()).i64(shape.inner()).i32(g.splits()).i64(g.chunk());
        } else {
            a.i64(g.rows()).i32(shape.channels()).i32(g.inner()).i64(g.chunk());
        }
        a.ptr(workspace.partials()).ptr(workspace.counters());
    }

    private void launchCooperative(String kernel, Dim3 grid, Dim3 block, KernelArgs args, DeviceStream s) {
        Kernel k = kernels.get(kernel);
        device.launchCooperative(k, grid, block, 0, s, args);
        launches.add(new Launched(kernel, grid, block));
    }

    private void launch(String kernel, Dim3 grid, Dim3 block, KernelArgs args, DeviceStream s) {
        Kernel k = kernels.get(kernel);
        device.launch(k, grid, block, 0, s, args);
        launches.add(new Launched(kernel, grid, block));
    }

    /** Resident blocks per SM of a kernel with {@link LaunchGeometry#BLOCK} threads (every kernel here uses that many). */
    private int blocksPerSm(String kernel) {
        return blocksPerSm.computeIfAbsent(kernel,
                k -> device.maxActiveBlocksPerMultiprocessor(kernels.get(k), LaunchGeometry.BLOCK, 0));
    }

    private static String name(String base, LaunchGeometry.View view, DType dtype, boolean vec) {
        return name(base + (view == LaunchGeometry.View.CHANNELS_FIRST ? "_cf" : "_cl"), dtype, vec);
    }

    /**
     * The entry point of a kernel family ("bn_stats_cf", ...) for a storage type and path: float32 keeps the plain
     * names ("bn_stats_cf", "bn_stats_cf_vec4"), the 16-bit types add "_f16" / "_bf16" and, for their 16-byte vector
     * path of 8 halves, "_vec8".
     */
    static String name(String family, DType dtype, boolean vec) {
        String type = switch (dtype) {
            case FLOAT32 -> "";
            case FLOAT16 -> "_f16";
            case BFLOAT16 -> "_bf16";
        };
        return family + type + (vec ? "_vec" + LaunchGeometry.unit(true, dtype) : "");
    }

    /** The shape parameters of bn_stats_* / bn_backward_reduce_*: (C, N, inner, splits, chunk) or (rows, C, inner, chunk). */
    private static void reductionShapeArgs(KernelArgs a, Shape shape, LaunchGeometry.Reduction g) {
        if (g.view() == LaunchGeometry.View.CHANNELS_FIRST) {
            a.i32(shape.channels()).i64(shape.batch()).i64(shape.inner()).i32(g.splits()).i64(g.chunk());
        } else {
            a.i64(g.rows()).i32(shape.channels()).i32(g.inner()).i64(g.chunk());
        }
    }

    /** The shape parameters of bn_apply_* / bn_dx_*: (C, units, pieces, inner, chunk) or (rows, C, inner). */
    private static void elementwiseShapeArgs(KernelArgs a, Shape shape, LaunchGeometry.Elementwise g) {
        if (g.view() == LaunchGeometry.View.CHANNELS_FIRST) {
            a.i32(shape.channels()).i32(g.units()).i32(g.pieces()).i64(shape.inner()).i32(g.chunk());
        } else {
            a.i64(g.rows()).i32(shape.channels()).i32(g.inner());
        }
    }

    // ---- helpers -------------------------------------------------------------------------------------------------

    /** Checks the state, picks the stream (null: the default stream) and makes its workspace the current one. */
    private DeviceStream begin(DeviceStream stream) {
        if (closed) throw new IllegalStateException("DeviceResidentBatchNorm is closed");
        launches.clear();
        DeviceStream s = stream != null ? stream : device.defaultStream();
        if (s.isClosed()) throw new IllegalStateException("stream: " + s + " is closed");
        for (Iterator<Map.Entry<DeviceStream, Workspace>> it = workspaces.entrySet().iterator(); it.hasNext(); ) {
            Map.Entry<DeviceStream, Workspace> e = it.next();
            if (e.getKey().isClosed()) {   // its work has been queued; freeing waits for it (cuMemFree synchronizes)
                e.getValue().close();
                it.remove();
            }
        }
        workspace = workspaces.computeIfAbsent(s, k -> new Workspace(device));
        return s;
    }

    /** Grows the workspace for {@code shape} (both vector and scalar geometries) and returns a pointer for unused args. */
    private DevicePointer prepareWorkspace(Shape shape, DType dtype, boolean reduction, DeviceStream stream) {
        long partials = 0;
        long counters = 0;
        if (reduction) {
            for (boolean vec : new boolean[]{false, true}) {
                if (vec && !LaunchGeometry.vectorizable(shape, dtype)) continue;
                LaunchGeometry.Reduction g = LaunchGeometry.reduction(shape, vec, dtype);
                partials = Math.max(partials, g.partials());
                counters = Math.max(counters, g.counters());
                // The persistent kernels: their partials and the barrier's 2 words.
                for (int units : new int[]{LaunchGeometry.persistForwardUnits(vec, dtype),
                        LaunchGeometry.persistBackwardUnits(vec, dtype)}) {
                    Optional<LaunchGeometry.Persistent> p = LaunchGeometry.persistent(shape, vec, dtype, units);
                    if (p.isPresent()) partials = Math.max(partials, p.get().partials());
                }
                counters = Math.max(counters, 2);
            }
        }
        workspace.ensure(shape.channels(), partials, counters, stream);   // counters zeroed on the op's stream
        // Never dereferenced: kernels read a flag before any optional pointer.
        return workspace.coef();
    }

    private interface Launches {
        void run();
    }

    /** Runs launches; on failure re-zeroes the arrival counters so that the next call starts clean. */
    private void guarded(DeviceStream s, Launches launches) {
        try {
            launches.run();
        } catch (RuntimeException e) {
            try {
                workspace.resetCounters(s);
            } catch (RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    private static long tensorBytes(Shape shape, DType dtype) {
        return (long) dtype.bytes() * shape.elementCount();
    }

    /** Whether every tensor (of {@code dtype}) allows the 16-byte vector path for this shape. */
    static boolean vectorizable(Shape shape, DType dtype, DevicePointer... tensors) {
        if (!LaunchGeometry.vectorizable(shape, dtype)) return false;
        for (DevicePointer p : tensors) {
            if (!p.isAligned(16)) return false;
        }
        return true;
    }

    private static DevicePointer or(DevicePointer p, DevicePointer fallback) {
        return p != null ? p : fallback;
    }

    private ArgumentChecks<DevicePointer> checks(DType dtype) {
        if (dtype == null) throw new IllegalArgumentException("dtype must not be null");
        return typedChecks.get(dtype);
    }

    /** One device pointer holds {@code floats} floats: open, on this device, 4-byte aligned, with room enough. */
    private void checkPointer(String name, DevicePointer p, long floats, String why) {
        checkPointer(name, p, floats, DType.FLOAT32, why);
    }

    /**
     * One device pointer holds {@code elements} elements of {@code dtype}: open, on this device, aligned to the element
     * (4 bytes for float32), with room enough.
     */
    private void checkPointer(String name, DevicePointer p, long elements, DType dtype, String why) {
        if (p.buffer().isClosed()) throw new IllegalStateException(name + ": its device buffer is closed");
        if (p.buffer().device() != device) {
            throw new IllegalArgumentException(name + ": buffer belongs to device '" + p.buffer().device().name()
                    + "', expected '" + device.name() + "'");
        }
        DeviceChecks.aligned(name, p, dtype.bytes());
        DeviceChecks.room(name, p, elements, dtype, why);
    }
}
