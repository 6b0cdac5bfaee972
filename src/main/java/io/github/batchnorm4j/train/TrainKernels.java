package io.github.batchnorm4j.train;

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
        } catch (RuntimeException e) {
            module.close();
            throw e;
        }
    }

    /** x[r][j] += bias[j] over a {@code [rows, cols]} matrix. Modifies x. */
    public void biasAdd(DevicePointer x, DevicePointer bias, int rows, int cols, DeviceStream stream) {
        long n = matrix(rows, cols);
        floats("x", x, n);
        floats("bias", bias, cols);
        device.launch(biasAdd, elementwiseGrid(n), Dim3.of(BLOCK), 0, stream,
                new KernelArgs().ptr(x).ptr(bias).i64(n).i32(cols));
    }

    /** out[j] = Σ_r dy[r][j]; writes {@code cols} floats at out. */
    public void biasGrad(DevicePointer dy, DevicePointer out, int rows, int cols, DeviceStream stream) {
        long n = matrix(rows, cols);
        floats("dy", dy, n);
        floats("out", out, cols);
        device.launch(biasGrad, Dim3.of(blocks(cols)), Dim3.of(BLOCK), 0, stream,
                new KernelArgs().ptr(dy).ptr(out).i32(rows).i32(cols));
    }

    /** y = max(x, 0) over n floats (NaN propagates); y may be x. */
    public void reluForward(DevicePointer x, DevicePointer y, long n, DeviceStream stream) {
        count("n", n);
        floats("x", x, n);
        floats("y", y, n);
        device.launch(reluForward, elementwiseGrid(n), Dim3.of(BLOCK), 0, stream,
                new KernelArgs().ptr(x).ptr(y).i64(n));
    }

    /** dx = dy where y &gt; 0, else 0, over n floats; dx may be dy. */
    public void reluBackward(DevicePointer y, DevicePointer dy, DevicePointer dx, long n, DeviceStream stream) {
        count("n", n);
        floats("y", y, n);
        floats("dy", dy, n);
        floats("dx", dx, n);
        device.launch(reluBackward, elementwiseGrid(n), Dim3.of(BLOCK), 0, stream,
                new KernelArgs().ptr(y).ptr(dy).ptr(dx).i64(n));
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
        if (meanOver < rows) {
            throw new IllegalArgumentException("meanOver: expected at least rows = " + rows + ", got " + meanOver);
        }
        long n = matrix(rows, classes);
        floats("logits", logits, n);
        floats("dlogits", dlogits, n);
        floats("labels", labels, rows); // ints: 4 bytes each, like floats
        floats("loss", loss, rows);
        floats("correct", correct, rows);
        device.launch(softmaxXent, Dim3.of(blocks(rows)), Dim3.of(BLOCK), 0, stream,
                new KernelArgs().ptr(logits).ptr(labels).ptr(dlogits).ptr(loss).ptr(correct).i32(rows).i32(classes)
                        .f64(1.0 / meanOver));
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
        long mk = matrix(m, k);
        long kn = matrix(k, n);
        long mn = matrix(m, n);
        floats("a", a, mk);
        floats("b", b, kn);
        floats("c", c, mn);
        Dim3 grid = Dim3.of(blocks(n, GEMM_TILE), blocks(m, GEMM_TILE));
        device.launch(sgemm, grid, Dim3.of(GEMM_TILE, GEMM_TILE), 0, stream,
                new KernelArgs().i32(transA ? 1 : 0).i32(transB ? 1 : 0).i32(m).i32(n).i32(k).f32(alpha).ptr(a)
                        .ptr(b).f32(beta).ptr(c));
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

    /** Unloads the module. Idempotent. */
    @Override
    public void close() {
        module.close();
    }
}
