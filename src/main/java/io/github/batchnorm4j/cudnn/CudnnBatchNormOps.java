package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.AbstractBatchNormOps;
import io.github.batchnorm4j.BatchNormOptions;
import io.github.batchnorm4j.ChannelStatistics;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.gpu.Device;
import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.gpu.DeviceStream;
import jcuda.jcudnn.JCudnn;
import jcuda.jcudnn.cudnnBatchNormMode;

import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Deque;

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
 * <p>The host API allocates device buffers per call and frees them before returning (this is a cross-check path,
 * not a training path); outputs are written only after every cuDNN call succeeded.
 */
public final class CudnnBatchNormOps extends AbstractBatchNormOps {
    private static final int MODE = cudnnBatchNormMode.CUDNN_BATCHNORM_SPATIAL;

    private final CudnnApi api;
    private final Device device;
    private final boolean ownsDevice;
    private final double minEpsilon;
    private final CudnnHandleOwner handle;

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

    @Override
    protected void doForwardTraining(Shape shape, float[] x, float[] gamma, float[] beta, double eps,
                                     float[] runningMean, float[] runningVar, double momentum, float[] y,
                                     float[] saveMean, float[] saveInvstd) {
        checkEpsilon(eps);
        TensorLayout4d layout = TensorLayout4d.of(shape);
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        boolean running = runningMean != null;
        float[] yOut = new float[n];
        float[] meanOut = new float[c];
        float[] invstdOut = new float[c];
        float[] rmOut = new float[c];
        float[] rvOut = new float[c];
        try (Scope s = new Scope()) {
            DevicePointer dx = s.upload(x);
            DevicePointer dy = s.alloc(n);
            DevicePointer dGamma = s.upload(gamma != null ? gamma : filled(c, 1f));
            DevicePointer dBeta = s.upload(beta != null ? beta : filled(c, 0f));
            DevicePointer dRm = s.upload(running ? runningMean : filled(c, 0f));
            DevicePointer dRv = s.upload(running ? runningVar : filled(c, 1f));
            DevicePointer dMean = s.alloc(c);
            DevicePointer dInvstd = s.alloc(c);
            TensorDescriptor xd = s.add(TensorDescriptor.of(api, layout));
            TensorDescriptor bn = s.add(TensorDescriptor.spatialParametersOf(api, xd));
            CudnnErrors.check(api, api.batchNormalizationForwardTraining(handle.get(), MODE, 1f, 0f,
                    xd.get(), dx, xd.get(), dy, bn.get(), dGamma, dBeta, running ? momentum : 0.0, dRm, dRv, eps,
                    dMean, dInvstd), "cudnnBatchNormalizationForwardTraining(shape=" + shape + ")");
            s.download(dy, yOut);
            s.download(dMean, meanOut);
            s.download(dInvstd, invstdOut);
            if (running) {
                s.download(dRm, rmOut);
                s.download(dRv, rvOut);
            }
        }
        // Every call succeeded: only now touch the caller's arrays (a failing call changes no state).
        System.arraycopy(yOut, 0, y, 0, n);
        System.arraycopy(meanOut, 0, saveMean, 0, c);
        System.arraycopy(invstdOut, 0, saveInvstd, 0, c);
        if (running) {
            System.arraycopy(rmOut, 0, runningMean, 0, c);
            System.arraycopy(rvOut, 0, runningVar, 0, c);
        }
    }

    @Override
    protected void doForwardInference(Shape shape, float[] x, float[] gamma, float[] beta, float[] runningMean,
                                      float[] runningVar, double eps, float[] y) {
        checkEpsilon(eps);
        TensorLayout4d layout = TensorLayout4d.of(shape);
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        float[] yOut = new float[n];
        try (Scope s = new Scope()) {
            DevicePointer dx = s.upload(x);
            DevicePointer dy = s.alloc(n);
            DevicePointer dGamma = s.upload(gamma != null ? gamma : filled(c, 1f));
            DevicePointer dBeta = s.upload(beta != null ? beta : filled(c, 0f));
            DevicePointer dRm = s.upload(runningMean);
            DevicePointer dRv = s.upload(runningVar);
            TensorDescriptor xd = s.add(TensorDescriptor.of(api, layout));
            TensorDescriptor bn = s.add(TensorDescriptor.spatialParametersOf(api, xd));
            CudnnErrors.check(api, api.batchNormalizationForwardInference(handle.get(), MODE, 1f, 0f,
                    xd.get(), dx, xd.get(), dy, bn.get(), dGamma, dBeta, dRm, dRv, eps),
                    "cudnnBatchNormalizationForwardInference(shape=" + shape + ")");
            s.download(dy, yOut);
        }
        System.arraycopy(yOut, 0, y, 0, n);
    }

    @Override
    protected void doBackwardTraining(Shape shape, float[] x, float[] dy, float[] gamma, float[] saveMean,
                                      float[] saveInvstd, float[] dx, float[] dgamma, float[] dbeta) {
        TensorLayout4d layout = TensorLayout4d.of(shape);
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        float[] dxOut = new float[n];
        float[] dgOut = new float[c];
        float[] dbOut = new float[c];
        try (Scope s = new Scope()) {
            DevicePointer dX = s.upload(x);
            DevicePointer dDy = s.upload(dy);
            DevicePointer dDx = s.alloc(n);
            DevicePointer dGamma = s.upload(gamma != null ? gamma : filled(c, 1f));
            DevicePointer dDgamma = s.alloc(c);
            DevicePointer dDbeta = s.alloc(c);
            DevicePointer dMean = s.upload(saveMean);
            DevicePointer dInvstd = s.upload(saveInvstd);
            TensorDescriptor xd = s.add(TensorDescriptor.of(api, layout));
            TensorDescriptor bn = s.add(TensorDescriptor.spatialParametersOf(api, xd));
            CudnnErrors.check(api, api.batchNormalizationBackward(handle.get(), MODE, 1f, 0f, 1f, 0f,
                    xd.get(), dX, xd.get(), dDy, xd.get(), dDx, bn.get(), dGamma, dDgamma, dDbeta,
                    BatchNormOptions.DEFAULT_EPS, dMean, dInvstd),
                    "cudnnBatchNormalizationBackward(shape=" + shape + ")");
            s.download(dDx, dxOut);
            if (dgamma != null) s.download(dDgamma, dgOut);
            if (dbeta != null) s.download(dDbeta, dbOut);
        }
        System.arraycopy(dxOut, 0, dx, 0, n);
        if (dgamma != null) System.arraycopy(dgOut, 0, dgamma, 0, c);
        if (dbeta != null) System.arraycopy(dbOut, 0, dbeta, 0, c);
    }

    @Override
    protected void doClose() {
        try {
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

    /** Device buffers and descriptors of one call, closed in reverse order however the call ends. */
    private final class Scope implements AutoCloseable {
        private final Deque<AutoCloseable> owned = new ArrayDeque<>();
        private final DeviceStream stream = device.defaultStream();

        DevicePointer alloc(int floats) {
            DeviceBuffer b = device.allocate((long) Math.max(1, floats) * Float.BYTES);
            owned.push(b);
            return b.pointer();
        }

        DevicePointer upload(float[] host) {
            DevicePointer p = alloc(host.length);
            device.copyToDevice(host, 0, p, host.length, stream);
            return p;
        }

        void download(DevicePointer p, float[] host) {
            device.copyToHost(p, host, 0, host.length, stream);
        }

        <T extends AutoCloseable> T add(T t) {
            owned.push(t);
            return t;
        }

        @Override
        public void close() {
            RuntimeException first = null;
            while (!owned.isEmpty()) {
                try {
                    owned.pop().close();
                } catch (Exception e) {
                    if (first == null) first = e instanceof RuntimeException re ? re : new RuntimeException(e);
                }
            }
            if (first != null) throw first;
        }
    }
}
