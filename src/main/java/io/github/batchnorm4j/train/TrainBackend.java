package io.github.batchnorm4j.train;

import io.github.batchnorm4j.distributed.Collective;

import io.github.batchnorm4j.DType;
import java.util.List;

/**
 * The handful of operations one training step of {@link Mlp} needs, so that the model is written once and runs on
 * the CPU ({@link CpuTrainBackend}) or on a device ({@link DeviceTrainBackend}: a GPU through JCuda or the PTX
 * emulator, with cuBLAS or our PTX GEMM, the library's device-resident batch norm and the small kernels of
 * {@code cuda/train_kernels.cu}) without host copies inside a step.
 *
 * <p>All matrices are row-major {@link Tensor}s allocated by this backend, float32 or (mixed precision) float16 /
 * bfloat16. Arithmetic is float32 (or wider) whatever the storage; an operation writing a 16-bit tensor rounds each
 * result once, to nearest even: GEMM accumulates in float32 and rounds its output (cuBLAS GemmEx with
 * CUBLAS_COMPUTE_32F), bias add, softmax gradient and casts round, ReLU is exact. Output tensors are overwritten
 * (except {@link #gemm} with beta ≠ 0, which accumulates as BLAS does). Shapes are checked: a mismatch is an
 * {@link IllegalArgumentException} naming the argument with expected and actual shape, before anything is written.
 */
public interface TrainBackend extends AutoCloseable {
    /** The backend's name in {@link io.github.batchnorm4j.Backends}: "cpu", "cuda" or "emulator". */
    String name();

    /** A zero-filled float32 {@code [rows, cols]} tensor. */
    default Tensor allocate(int rows, int cols) {
        return allocate(rows, cols, DType.FLOAT32);
    }

    /** A zero-filled {@code [rows, cols]} tensor stored in {@code dtype}. */
    Tensor allocate(int rows, int cols, DType dtype);

    /** Copies {@code src} (rows·cols floats, row-major) into {@code dst}, rounded to dst's type. */
    void upload(float[] src, Tensor dst);

    /** Copies {@code src} into {@code dst} (rows·cols floats, row-major; 16-bit values widen exactly). */
    void download(Tensor src, float[] dst);

    /**
     * C = alpha·op(A)·op(B) + beta·C, op(X) = Xᵀ when the flag is set (BLAS sgemm on row-major matrices), accumulated
     * in float32 and rounded once to C's type. A and B must have the same type; C may be that type or float32 (a
     * float32 weight gradient from 16-bit activations). With beta = 0, C's previous contents are ignored (NaN in C
     * does not propagate).
     *
     * @param c in/out, {@code [m, n]} where op(A) is {@code [m, k]} and op(B) is {@code [k, n]}
     */
    void gemm(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c);

    /** x[r][j] += bias[j] for every row r, rounded to x's type; {@code bias} is float32 {@code [1, cols]}. */
    void addBias(Tensor x, Tensor bias);

    /** out[j] = Σ_r x[r][j] (the bias gradient); {@code out} is float32 {@code [1, cols]}. */
    void sumRows(Tensor x, Tensor out);

    /** y = max(x, 0) elementwise (exact; x and y of one type); y may be x. */
    void reluForward(Tensor x, Tensor y);

    /** dx = dy where y &gt; 0, else 0 (y is the ReLU's output; dy and dx of one type); dx may be dy. */
    void reluBackward(Tensor y, Tensor dy, Tensor dx);

    /** dst = src rounded to dst's type (e.g. the 16-bit copy of a float32 master weight); same shape. */
    void cast(Tensor src, Tensor dst);

    /**
     * Softmax cross-entropy of each row of {@code logits} against its label, and its gradient for the mean loss:
     * loss_r = log Σ_j exp(z_rj) − z_r,label; dlogits = (softmax(z) − onehot(label)) / rows.
     *
     * @param labels  one class index in [0, cols) per row
     * @param dlogits output, same shape as logits
     * @return Σ_r loss_r (the sum, in double; divide by rows for the mean)
     */
    default double softmaxCrossEntropy(Tensor logits, int[] labels, Tensor dlogits) {
        return softmaxCrossEntropy(logits, labels, dlogits, 1f);
    }

    /**
     * {@link #softmaxCrossEntropy(Tensor, int[], Tensor)} with the gradient multiplied by {@code gradScale} before it
     * is rounded to dlogits' type: the loss scaling of mixed-precision training (PyTorch's GradScaler multiplies the
     * loss; the gradient of the scaled loss is the scaled gradient). The returned loss is not scaled.
     */
    default double softmaxCrossEntropy(Tensor logits, int[] labels, Tensor dlogits, float gradScale) {
        return softmaxCrossEntropy(logits, labels, dlogits, gradScale, logits.rows());
    }

    /**
     * {@link #softmaxCrossEntropy(Tensor, int[], Tensor, float)} whose gradient is that of the mean over
     * {@code meanOver} rows, of which these are a part: dlogits = (softmax(z) − onehot(label))·gradScale / meanOver.
     * In data-parallel training each rank passes the global batch size, so that its rows' gradients are exactly
     * their share of the global mean loss and the ranks' weight gradients add up to the single-device gradient.
     *
     * @param meanOver ≥ rows
     */
    double softmaxCrossEntropy(Tensor logits, int[] labels, Tensor dlogits, float gradScale, int meanOver);

    /**
     * Data-parallel reduction: replaces {@code t} (float32) on every rank by the sum of every rank's {@code t}, added in
     * rank order in double and rounded once, so every rank holds the same bits. Every rank of {@code collective} calls
     * it with a tensor of the same shape.
     */
    void sumAcrossRanks(Tensor t, Collective collective);

    /**
     * A batch-norm layer synchronized over the ranks of {@code collective} (data-parallel training): training mode
     * normalizes each rank's rows with the statistics of every rank's rows, and its gamma and beta gradients are
     * those of the whole batch, the same on every rank (no {@link #sumAcrossRanks} for them). Float32 activations.
     */
    BatchNormUnit syncBatchNorm(int channels, double eps, double momentum, Collective collective);

    /** Number of rows whose arg-max column equals the label (ties and NaN resolve to the lowest index). */
    int countCorrect(Tensor logits, int[] labels);

    /**
     * SGD with momentum and (coupled, L2) weight decay, PyTorch's convention:
     * g = grad + weightDecay·param; velocity = momentum·velocity + g; param −= lr·velocity.
     * Modifies param and velocity.
     */
    void sgdUpdate(Tensor param, Tensor grad, Tensor velocity, float lr, float momentum, float weightDecay);

    /**
     * Multiplies every element of every (float32) gradient by {@code invScale} in place and tells whether all of them
     * are finite afterwards: GradScaler's unscale with its inf/NaN check, one answer for all tensors.
     */
    boolean unscale(List<Tensor> grads, float invScale);

    /**
     * A batch-norm layer over {@code channels} columns on this backend (gamma = 1, beta = 0, running mean 0 and
     * variance 1).
     *
     * @param momentum PyTorch's running-statistics momentum (weight of the new batch)
     */
    default BatchNormUnit batchNorm(int channels, double eps, double momentum) {
        return batchNorm(channels, eps, momentum, DType.FLOAT32);
    }

    /**
     * A batch-norm layer whose activations (x, y, dy, dx) are stored in {@code dtype}; gamma, beta, their gradients
     * and the running statistics are float32 (PyTorch's mixed-type batch norm).
     */
    BatchNormUnit batchNorm(int channels, double eps, double momentum, DType dtype);

    /** Releases backend resources; idempotent. */
    @Override
    void close();
}
