package io.github.batchnorm4j.train;

import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.gpu.Device;
import io.github.batchnorm4j.gpu.DeviceChecks;
import io.github.batchnorm4j.gpu.DeviceModule;
import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.gpu.DeviceStream;
import io.github.batchnorm4j.gpu.Dim3;
import io.github.batchnorm4j.gpu.Kernel;
import io.github.batchnorm4j.gpu.KernelArgs;
import io.github.batchnorm4j.gpu.PtxModules;

/**
 * Host side of {@code cuda/train_kernels.cu}: launches the small kernels of a GPU training step on any
 * {@link Device} (a real GPU through JCuda, or the PTX emulator in tests). Each method validates its arguments on
 * the host (sizes ≥ 1, every buffer large enough from its pointer on) before it launches, and names the argument in
 * the exception. Each kernel computes what the same-named operation of {@link CpuTrainBackend} computes; see the
 * {@code .cu} header for the launch geometry and determinism of each.
 *
 * <p>The activation kernels (bias add and gradient, ReLU, softmax, GEMM) come in three storage types, chosen by a
 * {@link DType} argument: float32 (the plain names), float16 and bfloat16 ({@code _f16}, {@code _bf16}: widened
 * exactly on load, float arithmetic, one rounding to nearest even on store). Per-column and parameter tensors (bias,
 * its gradient, the SGD state, the unscaled gradients) are always float32.
 *
 * <p>Owns the loaded module (closed by {@link #close()}), not the device.
 */
public final class TrainKernels implements AutoCloseable {
    /** Threads per block of every kernel (TRAIN_BLOCK in the .cu). */
    public static final int BLOCK = 256;
    /** Grid cap of the grid-stride kernels: enough blocks to fill any GPU; larger tensors are strided over. */
    static final int MAX_BLOCKS = 65535 * 4;

    private final Device device;
    private final int maxBlocks;
    private final DeviceModule module;
    private final Kernel biasAdd;
    private final Kernel biasGrad;
    private final Kernel reluForward;
    private final Kernel reluBackward;
    private final Kernel softmaxXent;
    private final Kernel sgdMomentum;
    private final Kernel sgemm;
    /** The 16-bit twins, indexed by {@link #index(DType)}: 0 float16, 1 bfloat16. */
    private final Kernel[] biasAdd16 = new Kernel[2];
    private final Kernel[] biasGrad16 = new Kernel[2];
    private final Kernel[] reluForward16 = new Kernel[2];
    private final Kernel[] reluBackward16 = new Kernel[2];
    private final Kernel[] softmaxXent16 = new Kernel[2];
    private final Kernel[] cast16 = new Kernel[2];
    /** GEMM with C in the 16-bit type, and with C float32. */
    private final Kernel[] gemm16 = new Kernel[2];
    private final Kernel[] gemm16f32 = new Kernel[2];
    private final Kernel unscale;

    /** Loads {@value PtxModules#TRAIN} (from the classpath, or from {@code BATCHNORM4J_PTX_DIR} when set). */
    public TrainKernels(Device device) {
        this(device, MAX_BLOCKS);
    }

    /** With a smaller grid cap, so that tests exercise the grid-stride loops on small tensors. */
    TrainKernels(Device device, int maxBlocks) {
        if (device == null) throw new IllegalArgumentException("device must not be null");
        if (maxBlocks < 1) throw new IllegalArgumentException("maxBlocks: expected >= 1, got " + maxBlocks);
        this.device = device;
        this.maxBlocks = maxBlocks;
        this.module = device.loadModule(PtxModules.TRAIN, PtxModules.read(PtxModules.TRAIN));
        try {
            biasAdd = module.kernel("train_bias_add");
            biasGrad = module.kernel("train_bias_grad");
            reluForward = module.kernel("train_relu_forward");
            reluBackward = module.kernel("train_relu_backward");
            softmaxXent = module.kernel("train_softmax_xent");
            sgdMomentum = module.kernel("train_sgd_momentum");
            sgemm = module.kernel("train_sgemm");
            unscale = module.kernel("train_unscale");
            for (DType t : new DType[] {DType.FLOAT16, DType.BFLOAT16}) {
                int i = index(t);
                String sfx = t == DType.FLOAT16 ? "_f16" : "_bf16";
                biasAdd16[i] = module.kernel("train_bias_add" + sfx);
                biasGrad16[i] = module.kernel("train_bias_grad" + sfx);
                reluForward16[i] = module.kernel("train_relu_forward" + sfx);
                reluBackward16[i] = module.kernel("train_relu_backward" + sfx);
                softmaxXent16[i] = module.kernel("train_softmax_xent" + sfx);
                cast16[i] = module.kernel("train_cast" + sfx);
                gemm16[i] = module.kernel("train_gemm" + sfx);
                gemm16f32[i] = module.kernel("train_gemm" + sfx + "_f32");
            }
        } catch (RuntimeException e) {
            module.close();
            throw e;
        }
    }

    /** x[r][j] += bias[j] over a {@code [rows, cols]} matrix. Modifies x. */
    public void biasAdd(DevicePointer x, DevicePointer bias, int rows, int cols, DeviceStream stream) {
        biasAdd(DType.FLOAT32, x, bias, rows, cols, stream);
    }

    /** x[r][j] += bias[j] over a {@code [rows, cols]} matrix stored in {@code dtype} (float32 bias). Modifies x. */
    public void biasAdd(DType dtype, DevicePointer x, DevicePointer bias, int rows, int cols, DeviceStream stream) {
        long n = matrix(rows, cols);
        elements("x", x, n, dtype);
        floats("bias", bias, cols);
        device.launch(pick(dtype, biasAdd, biasAdd16), elementwiseGrid(n), Dim3.of(BLOCK), 0, stream,
                new KernelArgs().ptr(x).ptr(bias).i64(n).i32(cols));
    }

    /** out[j] = Σ_r dy[r][j]; writes {@code cols} floats at out. */
    public void biasGrad(DevicePointer dy, DevicePointer out, int rows, int cols, DeviceStream stream) {
        biasGrad(DType.FLOAT32, dy, out, rows, cols, stream);
    }

    /** out[j] = Σ_r dy[r][j] over dy stored in {@code dtype}; writes {@code cols} floats at out. */
    public void biasGrad(DType dtype, DevicePointer dy, DevicePointer out, int rows, int cols, DeviceStream stream) {
        long n = matrix(rows, cols);
        elements("dy", dy, n, dtype);
        floats("out", out, cols);
        device.launch(pick(dtype, biasGrad, biasGrad16), Dim3.of(blocks(cols)), Dim3.of(BLOCK), 0, stream,
                new KernelArgs().ptr(dy).ptr(out).i32(rows).i32(cols));
    }

    /** y = max(x, 0) over n floats (NaN propagates); y may be x. */
    public void reluForward(DevicePointer x, DevicePointer y, long n, DeviceStream stream) {
        reluForward(DType.FLOAT32, x, y, n, stream);
    }

    /** y = max(x, 0) over n elements of {@code dtype} (exact; NaN propagates); y may be x. */
    public void reluForward(DType dtype, DevicePointer x, DevicePointer y, long n, DeviceStream stream) {
        count("n", n);
        elements("x", x, n, dtype);
        elements("y", y, n, dtype);
        device.launch(pick(dtype, reluForward, reluForward16), elementwiseGrid(n), Dim3.of(BLOCK), 0, stream,
                new KernelArgs().ptr(x).ptr(y).i64(n));
    }

    /** dx = dy where y &gt; 0, else 0, over n floats; dx may be dy. */
    public void reluBackward(DevicePointer y, DevicePointer dy, DevicePointer dx, long n, DeviceStream stream) {
        reluBackward(DType.FLOAT32, y, dy, dx, n, stream);
    }

    /** dx = dy where y &gt; 0, else 0, over n elements of {@code dtype}; dx may be dy. */
    public void reluBackward(DType dtype, DevicePointer y, DevicePointer dy, DevicePointer dx, long n,
                             DeviceStream stream) {
        count("n", n);
        elements("y", y, n, dtype);
        elements("dy", dy, n, dtype);
        elements("dx", dx, n, dtype);
        device.launch(pick(dtype, reluBackward, reluBackward16), elementwiseGrid(n), Dim3.of(BLOCK), 0, stream,
                new KernelArgs().ptr(y).ptr(dy).ptr(dx).i64(n));
    }

    /** dst = src rounded once (to nearest even) to the 16-bit {@code dtype}, over n elements (src float32). */
    public void cast(DType dtype, DevicePointer src, DevicePointer dst, long n, DeviceStream stream) {
        if (dtype == null || !dtype.is16Bit()) {
            throw new IllegalArgumentException("dtype: expected float16 or bfloat16, got " + dtype);
        }
        count("n", n);
        floats("src", src, n);
        elements("dst", dst, n, dtype);
        device.launch(cast16[index(dtype)], elementwiseGrid(n), Dim3.of(BLOCK), 0, stream,
                new KernelArgs().ptr(src).ptr(dst).i64(n));
    }

    /**
     * g *= invScale over n floats in place, and sets the int at {@code nonfinite} to 1 when a product is Inf or NaN
     * (it is left alone otherwise: the caller zeroes it once for a group of tensors).
     */
    public void unscale(DevicePointer g, long n, float invScale, DevicePointer nonfinite, DeviceStream stream) {
        count("n", n);
        floats("g", g, n);
        floats("nonfinite", nonfinite, 1); // one int
        device.launch(unscale, elementwiseGrid(n), Dim3.of(BLOCK), 0, stream,
                new KernelArgs().ptr(g).i64(n).f32(invScale).ptr(nonfinite));
    }

    /**
     * Softmax cross-entropy per row of {@code [rows, classes]} logits: writes dlogits (the gradient of the mean loss),
     * loss (rows floats, per-row loss) and correct (rows ints, 1 where the arg-max is the label). Labels must be in
     * [0, classes): the kernel does not check them (the host data set does).
     */
    public void softmaxCrossEntropy(DevicePointer logits, DevicePointer labels, DevicePointer dlogits,
                                    DevicePointer loss, DevicePointer correct, int rows, int classes,
                                    DeviceStream stream) {
        softmaxCrossEntropy(logits, labels, dlogits, loss, correct, rows, classes, rows, stream);
    }

    /** The same with the gradient of the mean over {@code meanOver} ≥ rows rows (a rank's share of a global batch). */
    public void softmaxCrossEntropy(DevicePointer logits, DevicePointer labels, DevicePointer dlogits,
                                    DevicePointer loss, DevicePointer correct, int rows, int classes, int meanOver,
                                    DeviceStream stream) {
        softmaxCrossEntropy(DType.FLOAT32, logits, labels, dlogits, loss, correct, rows, classes, meanOver, 1f, stream);
    }

    /**
     * The same with logits and dlogits stored in {@code dtype}, and the gradient multiplied by {@code gradScale}
     * (the loss scale of float16 training) before it is rounded to dtype; loss stays float32. The float32 kernel
     * takes no scale: {@code gradScale} must be 1 for float32.
     */
    public void softmaxCrossEntropy(DType dtype, DevicePointer logits, DevicePointer labels, DevicePointer dlogits,
                                    DevicePointer loss, DevicePointer correct, int rows, int classes, int meanOver,
                                    float gradScale, DeviceStream stream) {
        if (meanOver < rows) {
            throw new IllegalArgumentException("meanOver: expected at least rows = " + rows + ", got " + meanOver);
        }
        if (dtype == DType.FLOAT32 && gradScale != 1f) {
            throw new IllegalArgumentException("gradScale: the float32 softmax takes no loss scale (expected 1), got "
                    + gradScale);
        }
        long n = matrix(rows, classes);
        elements("logits", logits, n, dtype);
        elements("dlogits", dlogits, n, dtype);
        floats("labels", labels, rows); // ints: 4 bytes each, like floats
        floats("loss", loss, rows);
        floats("correct", correct, rows);
        KernelArgs args = new KernelArgs().ptr(logits).ptr(labels).ptr(dlogits).ptr(loss).ptr(correct).i32(rows)
                .i32(classes).f64(1.0 / meanOver);
        if (dtype != DType.FLOAT32) args.f32(gradScale);
        device.launch(pick(dtype, softmaxXent, softmaxXent16), Dim3.of(blocks(rows)), Dim3.of(BLOCK), 0, stream, args);
    }

    /** SGD with momentum over n parameters: g = grad + wd·p; v = m·v + g; p −= lr·v. Modifies p and v. */
    public void sgdMomentum(DevicePointer p, DevicePointer grad, DevicePointer velocity, long n, float lr,
                            float momentum, float weightDecay, DeviceStream stream) {
        count("n", n);
        floats("p", p, n);
        floats("grad", grad, n);
        floats("velocity", velocity, n);
        device.launch(sgdMomentum, elementwiseGrid(n), Dim3.of(BLOCK), 0, stream,
                new KernelArgs().ptr(p).ptr(grad).ptr(velocity).i64(n).f32(lr).f32(momentum).f32(weightDecay));
    }

    /** Tile edge of {@code train_sgemm} (GEMM_TILE in the .cu): 16x16 threads per block. */
    public static final int GEMM_TILE = 16;

    /**
     * C = alpha·op(A)·op(B) + beta·C on row-major matrices, op(X) = Xᵀ when the flag is set (BLAS sgemm semantics;
     * beta = 0 never reads C). The portable GEMM: the PTX emulator and GPUs without cuBLAS use it.
     *
     * @param a {@code [m, k]}, or {@code [k, m]} when transA; b: {@code [k, n]}, or {@code [n, k]} when transB
     * @param c {@code [m, n]}, in/out
     */
    public void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha, DevicePointer a,
                      DevicePointer b, float beta, DevicePointer c, DeviceStream stream) {
        gemm(DType.FLOAT32, DType.FLOAT32, transA, transB, m, n, k, alpha, a, b, beta, c, stream);
    }

    /**
     * {@link #sgemm} with A and B stored in {@code abType} and C in {@code cType}: the same type, or float32 C from
     * 16-bit A and B (a weight gradient). Float32 accumulation, C rounded once to its type.
     */
    public void gemm(DType abType, DType cType, boolean transA, boolean transB, int m, int n, int k, float alpha,
                     DevicePointer a, DevicePointer b, float beta, DevicePointer c, DeviceStream stream) {
        Kernel kernel = gemmKernel(abType, cType);
        long mk = matrix(m, k);
        long kn = matrix(k, n);
        long mn = matrix(m, n);
        elements("a", a, mk, abType);
        elements("b", b, kn, abType);
        elements("c", c, mn, cType);
        Dim3 grid = Dim3.of(blocks(n, GEMM_TILE), blocks(m, GEMM_TILE));
        device.launch(kernel, grid, Dim3.of(GEMM_TILE, GEMM_TILE), 0, stream,
                new KernelArgs().i32(transA ? 1 : 0).i32(transB ? 1 : 0).i32(m).i32(n).i32(k).f32(alpha).ptr(a)
                        .ptr(b).f32(beta).ptr(c));
    }

    /** Whether {@link #gemm} has a kernel for these types. */
    public static boolean hasGemm(DType abType, DType cType) {
        return abType != null && cType != null && (cType == abType || cType == DType.FLOAT32);
    }

    private Kernel gemmKernel(DType abType, DType cType) {
        if (abType == null) throw new IllegalArgumentException("abType must not be null");
        if (cType == null) throw new IllegalArgumentException("cType must not be null");
        if (!hasGemm(abType, cType)) {
            throw new IllegalArgumentException("c: expected a " + abType + " or float32 C for " + abType
                    + " A and B, got " + cType);
        }
        if (abType == DType.FLOAT32) return sgemm;
        return cType == DType.FLOAT32 ? gemm16f32[index(abType)] : gemm16[index(abType)];
    }

    private static Kernel pick(DType dtype, Kernel float32, Kernel[] sixteen) {
        if (dtype == null) throw new IllegalArgumentException("dtype must not be null");
        return dtype == DType.FLOAT32 ? float32 : sixteen[index(dtype)];
    }

    private static int index(DType t) {
        return t == DType.FLOAT16 ? 0 : 1;
    }

    /** Blocks for one thread per element, capped (the kernels stride over the rest). */
    private Dim3 elementwiseGrid(long n) {
        return Dim3.of((int) Math.min(maxBlocks, (n + BLOCK - 1) / BLOCK));
    }

    private static int blocks(int threads) {
        return blocks(threads, BLOCK);
    }

    private static int blocks(int threads, int perBlock) {
        return (threads + perBlock - 1) / perBlock;
    }

    private static long matrix(int rows, int cols) {
        if (rows < 1) throw new IllegalArgumentException("rows: expected >= 1, got " + rows);
        if (cols < 1) throw new IllegalArgumentException("cols: expected >= 1, got " + cols);
        return (long) rows * cols;
    }

    private static void count(String name, long n) {
        if (n < 1) throw new IllegalArgumentException(name + ": expected >= 1, got " + n);
    }

    private static void floats(String name, DevicePointer p, long count) {
        DeviceChecks.room(name, p, count, "");
        DeviceChecks.aligned4(name, p);
    }

    private static void elements(String name, DevicePointer p, long count, DType dtype) {
        if (dtype == null) throw new IllegalArgumentException("dtype must not be null");
        DeviceChecks.room(name, p, count, dtype, "");
        DeviceChecks.aligned(name, p, dtype.bytes());
    }

    /** Unloads the module. Idempotent. */
    @Override
    public void close() {
        module.close();
    }
}
