package io.github.batchnorm4j.train;

import io.github.batchnorm4j.distributed.Collective;

import io.github.batchnorm4j.DType;
import java.util.List;

import io.github.batchnorm4j.gpu.Device;
import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.gpu.DeviceStream;
import io.github.batchnorm4j.gpu.DeviceResidentBatchNorm;

import java.util.HashMap;
import java.util.Map;

/**
 * {@link TrainBackend} on a {@link Device}: tensors in device memory, the GEMM of {@code train_sgemm}, the small
 * kernels of {@code cuda/train_kernels.cu} ({@link TrainKernels}) and the library's device-resident batch norm
 * ({@link DeviceResidentBatchNorm}), all queued on one stream. The same code runs on a real GPU (a JCuda device) and on
 * the PTX emulator, which is how CI tests the GPU training step.
 *
 * <p>Per step, only the labels go to the device ({@code rows} ints) and the per-row losses and hits come back
 * ({@code 2·rows} numbers, for the metrics); parameters, activations and gradients stay on the device. The GEMM is a
 * {@link DeviceGemm}: our PTX kernel by default, cuBLAS ({@link CublasGemm}) on a real GPU.
 *
 * <p>Mixed precision: activations may be float16 or bfloat16 tensors (2 bytes per element on the device), with the
 * 16-bit kernels of {@link TrainKernels} and the 16-bit device-resident batch norm; a GEMM on 16-bit A and B goes to
 * {@link DeviceGemm#gemm} ({@link CublasGemm}: cublasGemmEx with CUBLAS_COMPUTE_32F) or, when the GEMM in use has no
 * 16-bit form, to our PTX kernel of the same storage type. Upload and download convert on the host (one rounding to
 * nearest even going up, exact coming down).
 *
 * <p>Owns the kernels, the batch-norm workspace and its scratch buffers, and the device only when opened with
 * {@code ownsDevice} (as {@link TrainBackends} does). Not thread-safe.
 */
public final class DeviceTrainBackend implements TrainBackend {
    private final Device device;
    private final String name;
    private final TrainKernels kernels;
    private final DeviceGemm gemm;
    private final AutoCloseable gemmOwned;
    private final boolean ownsDevice;
    private final DeviceResidentBatchNorm batchNorm;
    private final Map<Long, Scratch> scratch = new HashMap<>();
    /** The non-finite flag of {@link #unscale} (one int), allocated on first use. */
    private DeviceBuffer nonfinite;
    /** sumAcrossRanks' gathered copies, by element count. */
    private final Map<Long, DeviceBuffer> gathered = new HashMap<>();
    private boolean closed;

    /**
     * Per-shape buffers of the softmax kernel: labels, per-row losses and hits, and a throw-away gradient (4 bytes
     * per element: room for any storage type).
     */
    private record Scratch(DeviceBuffer labels, DeviceBuffer loss, DeviceBuffer correct, DeviceBuffer grad) {
        void close() {
            labels.close();
            loss.close();
            correct.close();
            grad.close();
        }
    }

    /**
     * With our PTX GEMM ({@link TrainKernels#sgemm}).
     *
     * @param name what {@link #name()} reports ("cuda", "emulator")
     */
    public DeviceTrainBackend(Device device, String name) {
        this(device, name, null);
    }

    /**
     * @param name what {@link #name()} reports ("cuda", "emulator")
     * @param gemm the GEMM to use (e.g. {@link CublasGemm}), or null for {@link TrainKernels#sgemm}; when it is
     *             AutoCloseable this backend closes it
     */
    public DeviceTrainBackend(Device device, String name, DeviceGemm gemm) {
        this(device, name, gemm, false);
    }

    /**
     * @param name       what {@link #name()} reports ("cuda", "emulator")
     * @param gemm       the GEMM to use (e.g. {@link CublasGemm}), or null for {@link TrainKernels#sgemm}; when it is
     *                   AutoCloseable this backend closes it (also when this constructor throws)
     * @param ownsDevice whether {@link #close()} also closes the device (last); when true, a constructor that throws
     *                   has closed it already
     */
    public DeviceTrainBackend(Device device, String name, DeviceGemm gemm, boolean ownsDevice) {
        if (device == null) throw new IllegalArgumentException("device must not be null");
        this.device = device;
        this.name = name;
        this.ownsDevice = ownsDevice;
        TrainKernels k = null;
        try {
            k = new TrainKernels(device);
            this.batchNorm = new DeviceResidentBatchNorm(device);
        } catch (RuntimeException e) {
            if (k != null) k.close();
            if (gemm instanceof AutoCloseable ac) closeAfterFailure(ac, e);
            if (ownsDevice) device.close();
            throw e;
        }
        this.kernels = k;
        this.gemm = gemm != null ? gemm : new KernelGemm(k);
        this.gemmOwned = gemm instanceof AutoCloseable ac ? ac : null;
    }

    @Override
    public String name() {
        return name;
    }

    DeviceStream stream() {
        return device.defaultStream();
    }

    @Override
    public DeviceTensor allocate(int rows, int cols) {
        return allocate(rows, cols, DType.FLOAT32);
    }

    @Override
    public DeviceTensor allocate(int rows, int cols, DType dtype) {
        checkOpen();
        if (dtype == null) throw new IllegalArgumentException("dtype must not be null");
        long bytes = (long) dtype.bytes() * TensorChecks.elementCount(rows, cols);
        DeviceBuffer b = device.allocate(bytes);
        device.memset(b.pointer(), (byte) 0, bytes, stream());
        return new DeviceTensor(rows, cols, dtype, b);
    }

    @Override
    public void upload(float[] src, Tensor dst) {
        DevicePointer p = pointer("dst", dst);
        TensorChecks.hostArray("src", src, dst);
        if (dst.dtype() == DType.FLOAT32) {
            device.copyToDevice(src, 0, p, src.length, stream());
        } else {
            device.copyToDevice(dst.dtype().encode(src), 0, p, src.length, stream());
        }
    }

    @Override
    public void download(Tensor src, float[] dst) {
        DevicePointer p = pointer("src", src);
        TensorChecks.hostArray("dst", dst, src);
        if (src.dtype() == DType.FLOAT32) {
            device.copyToHost(p, dst, 0, dst.length, stream());
        } else {
            short[] bits = new short[dst.length];
            device.copyToHost(p, bits, 0, bits.length, stream());
            src.dtype().decode(bits, dst);
        }
    }

    @Override
    public void gemm(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        TensorChecks.GemmDims d = TensorChecks.gemm(transA, transB, a, b, c);
        TensorChecks.sameType("b", b, a);
        DType ab = a.dtype(), ct = c.dtype();
        if (!TrainKernels.hasGemm(ab, ct)) {
            throw new IllegalArgumentException("c: expected a " + ab + " or float32 tensor for " + ab
                    + " A and B, got " + ct + " " + c);
        }
        DeviceGemm g = gemm.supports(ab, ct) ? gemm : kernelGemm();
        g.gemm(ab, ct, transA, transB, d.m(), d.n(), d.k(), alpha, pointer("a", a), pointer("b", b), beta,
                pointer("c", c), stream());
    }

    /** Our PTX GEMM, for the types a caller-supplied GEMM lacks. */
    private DeviceGemm kernelGemm() {
        return gemm instanceof KernelGemm ? gemm : new KernelGemm(kernels);
    }

    /** {@link TrainKernels#gemm} as a {@link DeviceGemm} (every type pair it has a kernel for). */
    private record KernelGemm(TrainKernels kernels) implements DeviceGemm {
        @Override
        public void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha, DevicePointer a,
                          DevicePointer b, float beta, DevicePointer c, DeviceStream stream) {
            kernels.sgemm(transA, transB, m, n, k, alpha, a, b, beta, c, stream);
        }

        @Override
        public boolean supports(DType abType, DType cType) {
            return TrainKernels.hasGemm(abType, cType);
        }

        @Override
        public void gemm(DType abType, DType cType, boolean transA, boolean transB, int m, int n, int k, float alpha,
                         DevicePointer a, DevicePointer b, float beta, DevicePointer c, DeviceStream stream) {
            kernels.gemm(abType, cType, transA, transB, m, n, k, alpha, a, b, beta, c, stream);
        }
    }

    @Override
    public void addBias(Tensor x, Tensor bias) {
        TensorChecks.rowVector("bias", bias, x.cols());
        TensorChecks.float32("bias", bias);
        kernels.biasAdd(x.dtype(), pointer("x", x), pointer("bias", bias), x.rows(), x.cols(), stream());
    }

    @Override
    public void sumRows(Tensor x, Tensor out) {
        TensorChecks.rowVector("out", out, x.cols());
        TensorChecks.float32("out", out);
        kernels.biasGrad(x.dtype(), pointer("x", x), pointer("out", out), x.rows(), x.cols(), stream());
    }

    @Override
    public void reluForward(Tensor x, Tensor y) {
        TensorChecks.sameShape("y", y, x);
        TensorChecks.sameType("y", y, x);
        kernels.reluForward(x.dtype(), pointer("x", x), pointer("y", y), x.size(), stream());
    }

    @Override
    public void reluBackward(Tensor y, Tensor dy, Tensor dx) {
        TensorChecks.sameShape("dy", dy, y);
        TensorChecks.sameShape("dx", dx, y);
        TensorChecks.sameType("dy", dy, y);
        TensorChecks.sameType("dx", dx, y);
        kernels.reluBackward(y.dtype(), pointer("y", y), pointer("dy", dy), pointer("dx", dx), y.size(), stream());
    }

    /**
     * A copy when the types agree, the 16-bit rounding kernel from float32; a 16-bit source into another type (which
     * the model never asks for) is refused.
     */
    @Override
    public void cast(Tensor src, Tensor dst) {
        TensorChecks.sameShape("dst", dst, src);
        DevicePointer s = pointer("src", src), d = pointer("dst", dst);
        if (src.dtype() == dst.dtype()) {
            device.copyDeviceToDevice(s, d, (long) src.dtype().bytes() * src.size(), stream());
        } else if (src.dtype() == DType.FLOAT32) {
            kernels.cast(dst.dtype(), s, d, src.size(), stream());
        } else {
            throw new IllegalArgumentException("dst: expected a " + src.dtype() + " tensor for a " + src.dtype()
                    + " source (a 16-bit source is only copied), got " + dst.dtype());
        }
    }

    /** One kernel launch per tensor into one device flag, one int read back. */
    @Override
    public boolean unscale(List<Tensor> grads, float invScale) {
        checkOpen();
        if (grads == null) throw new IllegalArgumentException("grads must not be null");
        for (Tensor t : grads) {
            TensorChecks.float32("grad", t);
            pointer("grad", t);
        }
        if (nonfinite == null) nonfinite = device.allocate(4);
        device.memset(nonfinite.pointer(), (byte) 0, 4, stream());
        for (Tensor t : grads) kernels.unscale(pointer("grad", t), t.size(), invScale, nonfinite.pointer(), stream());
        int[] flag = new int[1];
        device.copyToHost(nonfinite.pointer(), flag, 0, 1, stream());
        return flag[0] == 0;
    }

    @Override
    public double softmaxCrossEntropy(Tensor logits, int[] labels, Tensor dlogits, float gradScale, int meanOver) {
        TensorChecks.sameShape("dlogits", dlogits, logits);
        TensorChecks.sameType("dlogits", dlogits, logits);
        TensorChecks.meanOver(meanOver, logits);
        if (logits.dtype() == DType.FLOAT32 && gradScale != 1f) {
            throw new IllegalArgumentException("gradScale: loss scaling is for 16-bit logits (expected 1 for float32),"
                    + " got " + gradScale);
        }
        Scratch s = launchSoftmax(logits, labels, pointer("dlogits", dlogits), meanOver, gradScale);
        float[] loss = new float[labels.length];
        device.copyToHost(s.loss().pointer(), loss, 0, loss.length, stream());
        double total = 0;
        for (float l : loss) total += l;
        return total;
    }

    @Override
    public int countCorrect(Tensor logits, int[] labels) {
        // The softmax kernel computes the hits too; a scratch gradient keeps the caller's tensors untouched.
        Scratch s = launchSoftmax(logits, labels, null, logits.rows(), 1f);
        int[] hits = new int[labels.length];
        device.copyToHost(s.correct().pointer(), hits, 0, hits.length, stream());
        int n = 0;
        for (int h : hits) n += h;
        return n;
    }

    /** Launches the softmax kernel; a null dlogits writes the gradient into scratch. */
    private Scratch launchSoftmax(Tensor logits, int[] labels, DevicePointer dlogits, int meanOver, float gradScale) {
        TensorChecks.labels(labels, logits);
        int rows = logits.rows(), cols = logits.cols();
        Scratch s = scratch.computeIfAbsent(((long) rows << 32) | cols, key -> new Scratch(device.allocate(4L * rows),
                device.allocate(4L * rows), device.allocate(4L * rows), device.allocate(4L * rows * cols)));
        device.copyToDevice(labels, 0, s.labels().pointer(), labels.length, stream());
        kernels.softmaxCrossEntropy(logits.dtype(), pointer("logits", logits), s.labels().pointer(),
                dlogits != null ? dlogits : s.grad().pointer(), s.loss().pointer(), s.correct().pointer(), rows, cols,
                meanOver, gradScale, stream());
        return s;
    }

    @Override
    public void sgdUpdate(Tensor param, Tensor grad, Tensor velocity, float lr, float momentum, float weightDecay) {
        TensorChecks.sameShape("grad", grad, param);
        TensorChecks.sameShape("velocity", velocity, param);
        kernels.sgdMomentum(pointer("param", param), pointer("grad", grad), pointer("velocity", velocity),
                param.size(), lr, momentum, weightDecay, stream());
    }

    @Override
    public BatchNormUnit batchNorm(int channels, double eps, double momentum, DType dtype) {
        checkOpen();
        if (dtype == null) throw new IllegalArgumentException("dtype must not be null");
        return new DeviceBatchNormUnit(this, batchNorm, null, channels, eps, momentum, dtype);
    }

    /**
     * All-gathers {@code t} into a scratch buffer ({@code worldSize} rows of t's size) on the backend's stream, then
     * sums those rows into {@code t} with {@code train_bias_grad} (rank order, double accumulation).
     */
    @Override
    public void sumAcrossRanks(Tensor t, Collective collective) {
        checkOpen();
        if (collective == null) throw new IllegalArgumentException("collective must not be null");
        TensorChecks.float32("t", t);
        DevicePointer p = pointer("t", t);
        int n = t.size();
        int k = collective.worldSize();
        DeviceBuffer all = gathered.computeIfAbsent((long) n * k, key -> device.allocate(4L * key));
        collective.allGather(p, all.pointer(), n, stream());
        kernels.biasGrad(all.pointer(), p, k, n, stream());
    }

    @Override
    public BatchNormUnit syncBatchNorm(int channels, double eps, double momentum, Collective collective) {
        checkOpen();
        if (collective == null) throw new IllegalArgumentException("collective must not be null");
        return new DeviceBatchNormUnit(this, batchNorm, collective, channels, eps, momentum);
    }

    /**
     * Frees the scratch buffers, the batch-norm workspace and the kernel module, then the device when this backend owns
     * it. Idempotent.
     */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        try {
            for (Scratch s : scratch.values()) s.close();
            scratch.clear();
            for (DeviceBuffer b : gathered.values()) b.close();
            gathered.clear();
            if (nonfinite != null) nonfinite.close();
            batchNorm.close();
            kernels.close();
            if (gemmOwned != null) {
                try {
                    gemmOwned.close();
                } catch (Exception e) {
                    throw new IllegalStateException("closing the GEMM failed: " + e, e);
                }
            }
        } finally {
            if (ownsDevice) device.close();
        }
    }

    private static void closeAfterFailure(AutoCloseable resource, RuntimeException failure) {
        try {
            resource.close();
        } catch (Exception suppressed) {
            failure.addSuppressed(suppressed);
        }
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("training backend '" + name + "' is closed");
    }

    static DevicePointer pointer(String name, Tensor t) {
        if (t == null) throw new IllegalArgumentException(name + " must not be null");
        if (!(t instanceof DeviceTensor dt)) {
            throw new IllegalArgumentException(name + ": expected a device tensor, got " + t.getClass().getName());
        }
        return dt.pointer();
    }
}
