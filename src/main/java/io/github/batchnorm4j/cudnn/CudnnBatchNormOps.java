package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.AbstractBatchNormOps;
import io.github.batchnorm4j.ArgumentChecks;
import io.github.batchnorm4j.BatchNormOptions;
import io.github.batchnorm4j.ChannelStatistics;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.DeviceResidentTiming;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.gpu.Device;
import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.gpu.DeviceResidentOperations;
import io.github.batchnorm4j.gpu.DeviceStream;
import io.github.batchnorm4j.gpu.DeviceTiming;
import jcuda.jcudnn.JCudnn;
import jcuda.jcudnn.cudnnBatchNormMode;

import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Deque;
import java.util.HashMap;
import java.util.Map;
import java.util.function.UnaryOperator;

/**
 * Batch norm through cuDNN ({@code cudnnBatchNormalizationForwardTraining / ForwardInference / Backward} in
 * {@code CUDNN_BATCHNORM_SPATIAL} mode), on the buffers of a {@link Device} (a
 * {@link io.github.batchnorm4j.cuda.CudaDevice} in production), to cross-check our kernels. Both memory views are
 * described with explicit strides ({@link TensorLayout4d}): channels-first as NCHW, channels-last as NHWC.
 *
 * <p>Semantics, mapped exactly onto {@link io.github.batchnorm4j.BatchNormOps}:
 * <ul>
 *   <li>{@code exponentialAverageFactor = momentum}: cuDNN's running update is
 *       {@code running = (1 − factor)·running + factor·batch}, PyTorch's momentum; the caller has already resolved
 *       cumulative momentum to 1/num_batches_tracked.</li>
 *   <li>cuDNN stores the <em>unbiased</em> batch variance (·M/(M−1)) in the running variance, as PyTorch and we do:
 *       PyTorch's cuDNN path (aten/src/ATen/native/cudnn/BatchNorm.cpp) passes running_var to cuDNN with no
 *       correction of its own, and MXNet measured the cuDNN moving variance to be the unbiased one
 *       (github.com/apache/mxnet/issues/21111).</li>
 *   <li>{@code resultSaveMean / resultSaveInvVariance} are our saveMean / saveInvstd (cuDNN's "inverse variance" is
 *       1/sqrt(var + eps)); backward passes them back, so cuDNN does not recompute them, and the epsilon it is given
 *       there is then unused (we pass the default 1e-5).</li>
 *   <li>eps below {@code CUDNN_BN_MIN_EPSILON} is <em>rejected</em> (IllegalArgumentException naming both values),
 *       never clamped: a clamped eps would be a silent wrong answer. The constant is the one of the cuDNN headers
 *       the bindings were generated from ({@link JCudnn#CUDNN_BN_MIN_EPSILON}, 0.0 since cuDNN 8; it was 1e-5 in
 *       cuDNN 7); our own validation already requires eps &gt; 0.</li>
 *   <li>Affine off (gamma/beta null): cuDNN always scales, so it gets gamma = 1 and beta = 0 buffers, and the
 *       gradients it writes for them are discarded when dgamma/dbeta are null.</li>
 *   <li>Without running statistics, cuDNN gets scratch running buffers whose update is discarded.</li>
 * </ul>
 * Not supported, each with an {@link UnsupportedOperationException} that says why: {@code statistics} and
 * {@code normalize} (cuDNN has no statistics-only or apply-given-statistics batch-norm call; emulating them through
 * 1/invstd² − eps would lose digits and check nothing), and {@code backwardInference} (cuDNN has no frozen-statistics
 * backward: its backward always differentiates through the batch statistics).
 *
 * <p>Two ways in, as for our kernels: the host API ({@code float[]}) allocates device buffers per call, frees them
 * before returning and writes its outputs only after every call succeeded; the device-resident methods
 * ({@link #forwardTrainingOnDevice} and friends) take buffers of the same {@link Device} (e.g. those a GPU training
 * loop already holds) and queue the cuDNN call on the device's default stream. The gamma = 1 / beta = 0 buffers and
 * the sinks for unwanted outputs are allocated once per channel count and freed on {@link #close()}.
 *
 * <p>For {@code bench}, {@link #prepareTiming} uploads an operation's inputs once and times the device-resident call
 * (to completion of the default stream), so GPU figures exclude host copies.
 */
public final class CudnnBatchNormOps extends AbstractBatchNormOps implements DeviceResidentTiming {
    private static final int MODE = cudnnBatchNormMode.CUDNN_BATCHNORM_SPATIAL;

    private final CudnnApi api;
    private final Device device;
    private final boolean ownsDevice;
    private final double minEpsilon;
    private final CudnnHandleOwner handle;
    /** Channel count → its ParameterScratch; guarded by this. */
    private final Map<Integer, ParameterScratch> scratch = new HashMap<>();

    /**
     * cuDNN on a {@link io.github.batchnorm4j.cuda.CudaDevice}.
     *
     * @param ownsDevice whether {@link #close()} also closes the device
     * @throws UnsatisfiedLinkError when the JCudnn native library or libcudnn.so.9 cannot load (ask
     *                              {@link CudnnProbe#probe()} first)
     */
    public CudnnBatchNormOps(Device device, boolean ownsDevice) {
        this(new JCudnnApi(), device, ownsDevice, JCudnn.CUDNN_BN_MIN_EPSILON);
    }

    CudnnBatchNormOps(CudnnApi api, Device device, boolean ownsDevice, double minEpsilon) {
        this.api = api;
        this.device = device;
        this.ownsDevice = ownsDevice;
        this.minEpsilon = minEpsilon;
        // cudnnCreate binds the handle to the thread's current context: make it this device's (another CudaDevice
        // may have been used last on this thread). Each operation later starts with this device's own calls
        // (uploads), which make its context current again before cuDNN runs.
        if (device instanceof io.github.batchnorm4j.cuda.CudaDevice cuda) cuda.makeCurrent();
        this.handle = new CudnnHandleOwner(api, device.defaultStream());
    }

    @Override
    public String name() {
        return "cudnn";
    }

    /** The cuDNN version as "9.1.0". */
    public String cudnnVersion() {
        return CudnnProbe.versionString(api.getVersion());
    }

    private void checkEpsilon(double eps) {
        if (eps < minEpsilon) {
            throw new IllegalArgumentException("eps must be >= CUDNN_BN_MIN_EPSILON (" + minEpsilon
                    + ") for the cuDNN backend, got " + eps);
        }
    }

    @Override
    protected ChannelStatistics doStatistics(Shape shape, float[] x) {
        throw new UnsupportedOperationException("cudnn backend: statistics() is not supported: cuDNN has no "
                + "statistics-only batch-norm call (use forwardTraining's saveMean/saveInvstd)");
    }

    @Override
    protected void doNormalize(Shape shape, float[] x, float[] gamma, float[] beta, float[] mean, float[] invstd,
                               float[] y) {
        throw new UnsupportedOperationException("cudnn backend: normalize() is not supported: cuDNN has no "
                + "apply-given-mean-and-invstd batch-norm call");
    }

    @Override
    protected void doBackwardInference(Shape shape, float[] x, float[] dy, float[] gamma, float[] runningMean,
                                       float[] runningVar, double eps, float[] dx, float[] dgamma, float[] dbeta) {
        throw new UnsupportedOperationException("cudnn backend: backwardInference() (frozen running statistics) is "
                + "not supported: cuDNN's batch-norm backward always differentiates through the batch statistics");
    }

    // ---- host API: upload, run the device-resident op, download; outputs written only after everything succeeded ----

    @Override
    protected void doForwardTraining(Shape shape, float[] x, float[] gamma, float[] beta, double eps,
                                     float[] runningMean, float[] runningVar, double momentum, float[] y,
                                     float[] saveMean, float[] saveInvstd) {
        forwardTrainingStaged(Elements.FLOAT32, shape, x, gamma, beta, eps, runningMean, runningVar, y, saveMean,
                saveInvstd, (dx, dg, db, dRm, dRv, dy, dMean, dInvstd) -> forwardTrainingOnDevice(shape, dx, dg, db,
                        eps, dRm, dRv, momentum, dy, dMean, dInvstd));
    }

    @Override
    protected void doForwardInference(Shape shape, float[] x, float[] gamma, float[] beta, float[] runningMean,
                                      float[] runningVar, double eps, float[] y) {
        forwardInferenceStaged(Elements.FLOAT32, shape, x, gamma, beta, runningMean, runningVar, eps, y,
                (dx, dg, db, dRm, dRv, dy) -> forwardInferenceOnDevice(shape, dx, dg, db, dRm, dRv, eps, dy));
    }

    @Override
    protected void doBackwardTraining(Shape shape, float[] x, float[] dy, float[] gamma, float[] saveMean,
                                      float[] saveInvstd, float[] dx, float[] dgamma, float[] dbeta) {
        backwardTrainingStaged(Elements.FLOAT32, shape, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta,
                (dX, dDy, dg, dMean, dInvstd, dDx, dDg, dDb) -> backwardTrainingOnDevice(shape, dX, dDy, dg, dMean,
                        dInvstd, dDx, dDg, dDb));
    }

    // ---- 16-bit host API: cuDNN's half and bfloat16 data types; what cuDNN lacks for float32 it lacks here too ----

    @Override
    protected ChannelStatistics doStatistics(Shape shape, DType dtype, short[] x) {
        return doStatistics(shape, (float[]) null);
    }

    @Override
    protected void doNormalize(Shape shape, DType dtype, short[] x, float[] gamma, float[] beta, float[] mean,
                               float[] invstd, short[] y) {
        doNormalize(shape, null, gamma, beta, mean, invstd, null);
    }

    @Override
    protected void doBackwardInference(Shape shape, DType dtype, short[] x, short[] dy, float[] gamma,
                                       float[] runningMean, float[] runningVar, double eps, short[] dx,
                                       float[] dgamma, float[] dbeta) {
        doBackwardInference(shape, null, null, gamma, runningMean, runningVar, eps, null, dgamma, dbeta);
    }

    @Override
    protected void doForwardTraining(Shape shape, DType dtype, short[] x, float[] gamma, float[] beta, double eps,
                                     float[] runningMean, float[] runningVar, double momentum, short[] y,
                                     float[] saveMean, float[] saveInvstd) {
        forwardTrainingStaged(Elements.BITS16, shape, x, gamma, beta, eps, runningMean, runningVar, y, saveMean,
                saveInvstd, (dx, dg, db, dRm, dRv, dy, dMean, dInvstd) -> forwardTrainingOnDevice(shape, dtype, dx,
                        dg, db, eps, dRm, dRv, momentum, dy, dMean, dInvstd));
    }

    @Override
    protected void doForwardInference(Shape shape, DType dtype, short[] x, float[] gamma, float[] beta,
                                      float[] runningMean, float[] runningVar, double eps, short[] y) {
        forwardInferenceStaged(Elements.BITS16, shape, x, gamma, beta, runningMean, runningVar, eps, y,
                (dx, dg, db, dRm, dRv, dy) -> forwardInferenceOnDevice(shape, dtype, dx, dg, db, dRm, dRv, eps, dy));
    }

    @Override
    protected void doBackwardTraining(Shape shape, DType dtype, short[] x, short[] dy, float[] gamma,
                                      float[] saveMean, float[] saveInvstd, short[] dx, float[] dgamma,
                                      float[] dbeta) {
        backwardTrainingStaged(Elements.BITS16, shape, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta,
                (dX, dDy, dg, dMean, dInvstd, dDx, dDg, dDb) -> backwardTrainingOnDevice(shape, dtype, dX, dDy, dg,
                        dMean, dInvstd, dDx, dDg, dDb));
    }

    // ---- the staging shared by the float32 and 16-bit host calls: only the element array and its width differ ----

    /** The device call of a training forward, its buffers already staged (running pointers null when off). */
    @FunctionalInterface
    private interface ForwardTrainingCall {
        void run(DevicePointer x, DevicePointer gamma, DevicePointer beta, DevicePointer runningMean,
                 DevicePointer runningVar, DevicePointer y, DevicePointer saveMean, DevicePointer saveInvstd);
    }

    /** The device call of an inference forward, its buffers already staged. */
    @FunctionalInterface
    private interface ForwardInferenceCall {
        void run(DevicePointer x, DevicePointer gamma, DevicePointer beta, DevicePointer runningMean,
                 DevicePointer runningVar, DevicePointer y);
    }

    /** The device call of a training backward, its buffers already staged (dgamma/dbeta null when not wanted). */
    @FunctionalInterface
    private interface BackwardTrainingCall {
        void run(DevicePointer x, DevicePointer dy, DevicePointer gamma, DevicePointer saveMean,
                 DevicePointer saveInvstd, DevicePointer dx, DevicePointer dgamma, DevicePointer dbeta);
    }

    /**
     * The data tensors' host array type and device width: float[] of 4-byte floats or short[] of 16-bit values
     * (half or bfloat16; the dtype travels in the device call). Parameters and statistics are float32 either way.
     */
    private interface Elements<A> {
        Elements<float[]> FLOAT32 = new Elements<>() {
            public float[] newArray(int n) { return new float[n]; }
            public DevicePointer alloc(Scope s, int n) { return s.alloc(n); }
            public DevicePointer upload(Scope s, float[] host) { return s.upload(host); }
            public void download(Scope s, DevicePointer p, float[] host) { s.download(p, host); }
        };
        Elements<short[]> BITS16 = new Elements<>() {
            public short[] newArray(int n) { return new short[n]; }
            public DevicePointer alloc(Scope s, int n) { return s.alloc16(n); }
            public DevicePointer upload(Scope s, short[] host) { return s.upload(host); }
            public void download(Scope s, DevicePointer p, short[] host) { s.download(p, host); }
        };

        A newArray(int n);

        DevicePointer alloc(Scope s, int n);

        DevicePointer upload(Scope s, A host);

        void download(Scope s, DevicePointer p, A host);
    }

    private <A> void forwardTrainingStaged(Elements<A> e, Shape shape, A x, float[] gamma, float[] beta, double eps,
                                           float[] runningMean, float[] runningVar, A y, float[] saveMean,
                                           float[] saveInvstd, ForwardTrainingCall call) {
        checkEpsilon(eps);
        TensorLayout4d.of(shape); // reject shapes cuDNN cannot describe before allocating anything
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        boolean running = runningMean != null;
        A yOut = e.newArray(n);
        float[] meanOut = new float[c];
        float[] invstdOut = new float[c];
        float[] rmOut = new float[c];
        float[] rvOut = new float[c];
        try (Scope s = new Scope()) {
            DevicePointer dRm = running ? s.upload(runningMean) : null;
            DevicePointer dRv = running ? s.upload(runningVar) : null;
            DevicePointer dy = e.alloc(s, n);
            DevicePointer dMean = s.alloc(c);
            DevicePointer dInvstd = s.alloc(c);
            call.run(e.upload(s, x), s.uploadOrNull(gamma), s.uploadOrNull(beta), dRm, dRv, dy, dMean, dInvstd);
            e.download(s, dy, yOut);
            s.download(dMean, meanOut);
            s.download(dInvstd, invstdOut);
            if (running) {
                s.download(dRm, rmOut);
                s.download(dRv, rvOut);
            }
        }
        System.arraycopy(yOut, 0, y, 0, n);
        System.arraycopy(meanOut, 0, saveMean, 0, c);
        System.arraycopy(invstdOut, 0, saveInvstd, 0, c);
        if (running) {
            System.arraycopy(rmOut, 0, runningMean, 0, c);
            System.arraycopy(rvOut, 0, runningVar, 0, c);
        }
    }

    private <A> void forwardInferenceStaged(Elements<A> e, Shape shape, A x, float[] gamma, float[] beta,
                                            float[] runningMean, float[] runningVar, double eps, A y,
                                            ForwardInferenceCall call) {
        checkEpsilon(eps);
        TensorLayout4d.of(shape);
        int n = shape.elementCountAsInt();
        A yOut = e.newArray(n);
        try (Scope s = new Scope()) {
            DevicePointer dy = e.alloc(s, n);
            call.run(e.upload(s, x), s.uploadOrNull(gamma), s.uploadOrNull(beta), s.upload(runningMean),
                    s.upload(runningVar), dy);
            e.download(s, dy, yOut);
        }
        System.arraycopy(yOut, 0, y, 0, n);
    }

    private <A> void backwardTrainingStaged(Elements<A> e, Shape shape, A x, A dy, float[] gamma, float[] saveMean,
                                            float[] saveInvstd, A dx, float[] dgamma, float[] dbeta,
                                            BackwardTrainingCall call) {
        TensorLayout4d.of(shape);
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        A dxOut = e.newArray(n);
        float[] dgOut = new float[c];
        float[] dbOut = new float[c];
        try (Scope s = new Scope()) {
            DevicePointer dDx = e.alloc(s, n);
            DevicePointer dDg = dgamma != null ? s.alloc(c) : null;
            DevicePointer dDb = dbeta != null ? s.alloc(c) : null;
            call.run(e.upload(s, x), e.upload(s, dy), s.uploadOrNull(gamma), s.upload(saveMean), s.upload(saveInvstd),
                    dDx, dDg, dDb);
            e.download(s, dDx, dxOut);
            if (dgamma != null) s.download(dDg, dgOut);
            if (dbeta != null) s.download(dDb, dbOut);
        }
        System.arraycopy(dxOut, 0, dx, 0, n);
        if (dgamma != null) System.arraycopy(dgOut, 0, dgamma, 0, c);
        if (dbeta != null) System.arraycopy(dbOut, 0, dbeta, 0, c);
    }

    // ---- bench: the device-resident calls on inputs uploaded once ----

    @Override
    public Timed prepareTiming(Op op, Shape shape, float[] x, float[] dy, float[] gamma, float[] beta,
                               float[] runningMean, float[] runningVar, float[] saveMean, float[] saveInvstd,
                               double eps, double momentum) {
        checkOpen();
        // The generic checks first (the bridge repeats them), then cuDNN's own, all before any allocation.
        DeviceTiming.checkArguments(op, shape, x, dy, gamma, beta, runningMean, runningVar, saveMean, saveInvstd, eps,
                momentum);
        checkEpsilon(eps);
        TensorLayout4d.of(shape); // shapes cuDNN cannot describe fail here
        return DeviceTiming.prepareTiming(device, onDefaultStream(), UnaryOperator.identity(), op, shape, x, dy,
                gamma, beta, runningMean, runningVar, saveMean, saveInvstd, eps, momentum);
    }

    @Override
    public Timed prepareTiming(Op op, Shape shape, DType dtype, short[] x, short[] dy, float[] gamma, float[] beta,
                               float[] runningMean, float[] runningVar, float[] saveMean, float[] saveInvstd,
                               double eps, double momentum) {
        checkDeviceCall(shape);
        checkEpsilon(eps);
        TensorLayout4d.of(shape);
        return DeviceTiming.prepareTiming(device, onDefaultStream(), UnaryOperator.identity(), op, shape, dtype, x,
                dy, gamma, beta, runningMean, runningVar, saveMean, saveInvstd, eps, momentum);
    }

    @Override
    public Timed prepareCopy(long bytes) {
        checkOpen();
        return DeviceTiming.deviceCopy(device, bytes);
    }

    // ---- device-resident API: buffers of this backend's device, ordered on its default stream ----

    /**
     * Training-mode forward on device buffers (same math and conventions as
     * {@link #forwardTraining(Shape, float[], float[], float[], double, float[], float[], double, float[], float[], float[])}),
     * queued on the device's default stream; read the outputs after a synchronizing copy.
     *
     * @param gamma       C floats, or null for gamma = 1 (affine off)
     * @param beta        C floats, or null for beta = 0
     * @param runningMean in/out C floats, or null together with runningVar to leave running statistics alone
     * @param y           output, the shape's element count
     * @param saveMean    output, C floats
     * @param saveInvstd  output, C floats (1/sqrt(var + eps))
     */
    public void forwardTrainingOnDevice(Shape shape, DevicePointer x, DevicePointer gamma, DevicePointer beta,
                                        double eps, DevicePointer runningMean, DevicePointer runningVar,
                                        double momentum, DevicePointer y, DevicePointer saveMean,
                                        DevicePointer saveInvstd) {
        forwardTrainingOnDevice(shape, DType.FLOAT32, x, gamma, beta, eps, runningMean, runningVar, momentum, y,
                saveMean, saveInvstd);
    }

    /**
     * {@link #forwardTrainingOnDevice(Shape, DevicePointer, DevicePointer, DevicePointer, double, DevicePointer,
     * DevicePointer, double, DevicePointer, DevicePointer, DevicePointer)} with x and y of {@code dtype}
     * (CUDNN_DATA_HALF, CUDNN_DATA_BFLOAT16); the per-channel tensors stay float, as cuDNN requires.
     *
     * @throws UnsupportedOperationException for bfloat16 when cuDNN refuses it (before cuDNN 8.1, or before Ampere)
     */
    public void forwardTrainingOnDevice(Shape shape, DType dtype, DevicePointer x, DevicePointer gamma,
                                        DevicePointer beta, double eps, DevicePointer runningMean,
                                        DevicePointer runningVar, double momentum, DevicePointer y,
                                        DevicePointer saveMean, DevicePointer saveInvstd) {
        checkDeviceCall(shape);
        ArgumentChecks.training(shape);
        BatchNormOptions.checkEps(eps);
        checkEpsilon(eps);
        if ((runningMean == null) != (runningVar == null)) {
            throw new IllegalArgumentException("runningMean and runningVar must both be given or both be null");
        }
        boolean running = runningMean != null;
        if (running) BatchNormOptions.checkMomentum(momentum);
        ParameterScratch p = scratch(shape.channels());
        try (TensorDescriptor xd = TensorDescriptor.of(api, TensorLayout4d.of(shape), dtype);
             TensorDescriptor bn = TensorDescriptor.spatialParametersOf(api, xd)) {
            CudnnErrors.check(api, api.batchNormalizationForwardTraining(handle.get(), MODE, 1f, 0f,
                    xd.get(), x, xd.get(), y, bn.get(), gamma != null ? gamma : p.ones, beta != null ? beta : p.zeros,
                    running ? momentum : 0.0, running ? runningMean : p.runningMean,
                    running ? runningVar : p.runningVar, eps, saveMean, saveInvstd),
                    "cudnnBatchNormalizationForwardTraining(shape=" + shape + ")");
        } catch (CudnnErrors.StatusException e) {
            throw refusal(dtype, e);
        }
    }

    /** A cuDNN refusal of a 16-bit type as UnsupportedOperationException (check reports it so); else e itself. */
    private RuntimeException refusal(DType dtype, CudnnErrors.StatusException e) {
        if (dtype == DType.FLOAT32 || !e.refused()) return e;
        UnsupportedOperationException u = new UnsupportedOperationException("cudnn backend: cuDNN "
                + cudnnVersion() + " does not run " + dtype + " batch norm here (" + e.getMessage() + ")"
                + (dtype == DType.BFLOAT16 ? "; bfloat16 needs cuDNN 8.1 or newer and an Ampere or newer GPU" : ""));
        u.initCause(e);
        return u;
    }

    /**
     * Eval-mode forward on device buffers: y = (x − runningMean)/sqrt(runningVar + eps)·gamma + beta.
     *
     * @param gamma C floats, or null for gamma = 1
     * @param beta  C floats, or null for beta = 0
     * @param y     output
     */
    public void forwardInferenceOnDevice(Shape shape, DevicePointer x, DevicePointer gamma, DevicePointer beta,
                                         DevicePointer runningMean, DevicePointer runningVar, double eps,
                                         DevicePointer y) {
        forwardInferenceOnDevice(shape, DType.FLOAT32, x, gamma, beta, runningMean, runningVar, eps, y);
    }

    /** Eval-mode forward with x and y of {@code dtype} (see the training overload for the 16-bit types). */
    public void forwardInferenceOnDevice(Shape shape, DType dtype, DevicePointer x, DevicePointer gamma,
                                         DevicePointer beta, DevicePointer runningMean, DevicePointer runningVar,
                                         double eps, DevicePointer y) {
        checkDeviceCall(shape);
        BatchNormOptions.checkEps(eps);
        checkEpsilon(eps);
        ParameterScratch p = scratch(shape.channels());
        try (TensorDescriptor xd = TensorDescriptor.of(api, TensorLayout4d.of(shape), dtype);
             TensorDescriptor bn = TensorDescriptor.spatialParametersOf(api, xd)) {
            CudnnErrors.check(api, api.batchNormalizationForwardInference(handle.get(), MODE, 1f, 0f,
                    xd.get(), x, xd.get(), y, bn.get(), gamma != null ? gamma : p.ones, beta != null ? beta : p.zeros,
                    runningMean, runningVar, eps), "cudnnBatchNormalizationForwardInference(shape=" + shape + ")");
        } catch (CudnnErrors.StatusException e) {
            throw refusal(dtype, e);
        }
    }

    /**
     * Training-mode backward on device buffers, reusing the saved statistics of the forward pass.
     *
     * @param gamma  C floats, or null for gamma = 1
     * @param dx     output
     * @param dgamma output C floats, or null when not wanted
     * @param dbeta  output C floats, or null when not wanted
     */
    public void backwardTrainingOnDevice(Shape shape, DevicePointer x, DevicePointer dy, DevicePointer gamma,
                                         DevicePointer saveMean, DevicePointer saveInvstd, DevicePointer dx,
                                         DevicePointer dgamma, DevicePointer dbeta) {
        backwardTrainingOnDevice(shape, DType.FLOAT32, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
    }

    /** Training-mode backward with x, dy and dx of {@code dtype} (see the forward overload for the 16-bit types). */
    public void backwardTrainingOnDevice(Shape shape, DType dtype, DevicePointer x, DevicePointer dy,
                                         DevicePointer gamma, DevicePointer saveMean, DevicePointer saveInvstd,
                                         DevicePointer dx, DevicePointer dgamma, DevicePointer dbeta) {
        checkDeviceCall(shape);
        ArgumentChecks.training(shape);
        ParameterScratch p = scratch(shape.channels());
        try (TensorDescriptor xd = TensorDescriptor.of(api, TensorLayout4d.of(shape), dtype);
             TensorDescriptor bn = TensorDescriptor.spatialParametersOf(api, xd)) {
            // cuDNN always writes both parameter gradients: unwanted ones go to scratch and are discarded. The
            // epsilon is unused when the saved statistics are given (cuDNN recomputes only from NULL ones).
            CudnnErrors.check(api, api.batchNormalizationBackward(handle.get(), MODE, 1f, 0f, 1f, 0f,
                    xd.get(), x, xd.get(), dy, xd.get(), dx, bn.get(), gamma != null ? gamma : p.ones,
                    dgamma != null ? dgamma : p.dgamma, dbeta != null ? dbeta : p.dbeta,
                    BatchNormOptions.DEFAULT_EPS, saveMean, saveInvstd),
                    "cudnnBatchNormalizationBackward(shape=" + shape + ")");
        } catch (CudnnErrors.StatusException e) {
            throw refusal(dtype, e);
        }
    }

    /** The *OnDevice operations as {@link DeviceResidentOperations}: cuDNN's handle runs on the default stream. */
    private DeviceResidentOperations onDefaultStream() {
        return new DeviceResidentOperations() {
            @Override
            public void forwardTraining(Shape shape, DevicePointer x, DevicePointer gamma, DevicePointer beta,
                                        double eps, DevicePointer runningMean, DevicePointer runningVar,
                                        double momentum, DevicePointer y, DevicePointer saveMean,
                                        DevicePointer saveInvstd, DeviceStream stream) {
                forwardTrainingOnDevice(shape, x, gamma, beta, eps, runningMean, runningVar, momentum, y, saveMean,
                        saveInvstd);
            }

            @Override
            public void forwardInference(Shape shape, DevicePointer x, DevicePointer gamma, DevicePointer beta,
                                         DevicePointer runningMean, DevicePointer runningVar, double eps,
                                         DevicePointer y, DeviceStream stream) {
                forwardInferenceOnDevice(shape, x, gamma, beta, runningMean, runningVar, eps, y);
            }

            @Override
            public void backwardTraining(Shape shape, DevicePointer x, DevicePointer dy, DevicePointer gamma,
                                         DevicePointer saveMean, DevicePointer saveInvstd, DevicePointer dx,
                                         DevicePointer dgamma, DevicePointer dbeta, DeviceStream stream) {
                backwardTrainingOnDevice(shape, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
            }

            @Override
            public void forwardTraining(Shape shape, DType dtype, DevicePointer x, DevicePointer gamma,
                                        DevicePointer beta, double eps, DevicePointer runningMean,
                                        DevicePointer runningVar, double momentum, DevicePointer y,
                                        DevicePointer saveMean, DevicePointer saveInvstd, DeviceStream stream) {
                forwardTrainingOnDevice(shape, dtype, x, gamma, beta, eps, runningMean, runningVar, momentum, y,
                        saveMean, saveInvstd);
            }

            @Override
            public void forwardInference(Shape shape, DType dtype, DevicePointer x, DevicePointer gamma,
                                         DevicePointer beta, DevicePointer runningMean, DevicePointer runningVar,
                                         double eps, DevicePointer y, DeviceStream stream) {
                forwardInferenceOnDevice(shape, dtype, x, gamma, beta, runningMean, runningVar, eps, y);
            }

            @Override
            public void backwardTraining(Shape shape, DType dtype, DevicePointer x, DevicePointer dy,
                                         DevicePointer gamma, DevicePointer saveMean, DevicePointer saveInvstd,
                                         DevicePointer dx, DevicePointer dgamma, DevicePointer dbeta,
                                         DeviceStream stream) {
                backwardTrainingOnDevice(shape, dtype, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
            }
        };
    }

    private void checkDeviceCall(Shape shape) {
        checkOpen();
        if (shape == null) throw new IllegalArgumentException("shape must not be null");
    }

    /** Per-channel-count buffers: gamma = 1, beta = 0, and sinks for running statistics and gradients nobody wants. */
    private static final class ParameterScratch implements AutoCloseable {
        final DevicePointer ones;
        final DevicePointer zeros;
        final DevicePointer runningMean;
        final DevicePointer runningVar;
        final DevicePointer dgamma;
        final DevicePointer dbeta;
        private final DeviceBuffer buffer;

        ParameterScratch(Device device, int c) {
            buffer = device.allocate(6L * c * Float.BYTES);
            long stride = (long) c * Float.BYTES;
            ones = buffer.pointer();
            zeros = buffer.at(stride);
            runningMean = buffer.at(2 * stride);
            runningVar = buffer.at(3 * stride);
            dgamma = buffer.at(4 * stride);
            dbeta = buffer.at(5 * stride);
            try {
                device.copyToDevice(filled(c, 1f), 0, ones, c, device.defaultStream());
                // zeros, and running statistics 0 / 1 so that cuDNN reads finite values from the sinks
                device.copyToDevice(filled(c, 0f), 0, zeros, c, device.defaultStream());
                device.copyToDevice(filled(c, 0f), 0, runningMean, c, device.defaultStream());
                device.copyToDevice(filled(c, 1f), 0, runningVar, c, device.defaultStream());
            } catch (RuntimeException e) {
                buffer.close();
                throw e;
            }
        }

        @Override
        public void close() {
            buffer.close();
        }
    }

    private synchronized ParameterScratch scratch(int channels) {
        ParameterScratch p = scratch.get(channels);
        if (p == null) {
            p = new ParameterScratch(device, channels);
            scratch.put(channels, p);
        }
        return p;
    }

    @Override
    protected void doClose() {
        try {
            synchronized (this) {
                for (ParameterScratch p : scratch.values()) p.close();
                scratch.clear();
            }
            handle.close();
        } finally {
            if (ownsDevice) device.close();
        }
    }

    private static float[] filled(int n, float v) {
        float[] a = new float[n];
        Arrays.fill(a, v);
        return a;
    }

    /** Device buffers of one host call, closed in reverse order however the call ends. */
    private final class Scope implements AutoCloseable {
        private final Deque<DeviceBuffer> owned = new ArrayDeque<>();
        private final DeviceStream stream = device.defaultStream();

        DevicePointer alloc(int floats) {
            DeviceBuffer b = device.allocate((long) Math.max(1, floats) * Float.BYTES);
            owned.push(b);
            return b.pointer();
        }

        DevicePointer uploadOrNull(float[] host) {
            return host == null ? null : upload(host);
        }

        DevicePointer upload(float[] host) {
            DevicePointer p = alloc(host.length);
            device.copyToDevice(host, 0, p, host.length, stream);
            return p;
        }

        /** Room for {@code halves} 16-bit elements. */
        DevicePointer alloc16(int halves) {
            DeviceBuffer b = device.allocate(2L * Math.max(1, halves));
            owned.push(b);
            return b.pointer();
        }

        DevicePointer upload(short[] host) {
            DevicePointer p = alloc16(host.length);
            device.copyToDevice(host, 0, p, host.length, stream);
            return p;
        }

        void download(DevicePointer p, float[] host) {
            device.copyToHost(p, host, 0, host.length, stream);
        }

        void download(DevicePointer p, short[] host) {
            device.copyToHost(p, host, 0, host.length, stream);
        }

        @Override
        public void close() {
            RuntimeException first = null;
            while (!owned.isEmpty()) {
                try {
                    owned.pop().close();
                } catch (RuntimeException e) {
                    if (first == null) first = e;
                }
            }
            if (first != null) throw first;
        }
    }
}
