package io.github.batchnorm4j.train;

/**
 * The handful of operations one training step of {@link Mlp} needs, so that the model is written once and runs on
 * the CPU ({@link CpuTrainBackend}) or on a device ({@link DeviceTrainBackend}: a GPU through JCuda or the PTX
 * emulator, with cuBLAS or our PTX GEMM, the library's device-resident batch norm and the small kernels of
 * {@code cuda/train_kernels.cu}) without host copies inside a step.
 *
 * <p>All matrices are row-major float32 {@link Tensor}s allocated by this backend. Output tensors are overwritten
 * (except {@link #gemm} with beta ≠ 0, which accumulates as BLAS does). Shapes are checked: a mismatch is an
 * {@link IllegalArgumentException} naming the argument with expected and actual shape, before anything is written.
 */
public interface TrainBackend extends AutoCloseable {
    /** The backend's name in {@link io.github.batchnorm4j.Backends}: "cpu", "cuda" or "emulator". */
    String name();

    /** A zero-filled {@code [rows, cols]} tensor. */
    Tensor allocate(int rows, int cols);

    /** Copies {@code src} (rows·cols floats, row-major) into {@code dst}. */
    void upload(float[] src, Tensor dst);

    /** Copies {@code src} into {@code dst} (rows·cols floats, row-major). */
    void download(Tensor src, float[] dst);

    /**
     * C = alpha·op(A)·op(B) + beta·C, op(X) = Xᵀ when the flag is set (BLAS sgemm on row-major matrices).
     * With beta = 0, C's previous contents are ignored (NaN in C does not propagate).
     *
     * @param c in/out, {@code [m, n]} where op(A) is {@code [m, k]} and op(B) is {@code [k, n]}
     */
    void gemm(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c);

    /** x[r][j] += bias[j] for every row r; {@code bias} is {@code [1, cols]}. Modifies x. */
    void addBias(Tensor x, Tensor bias);

    /** out[j] = Σ_r x[r][j] (the bias gradient); {@code out} is {@code [1, cols]}. */
    void sumRows(Tensor x, Tensor out);

    /** y = max(x, 0) elementwise; y may be x. */
    void reluForward(Tensor x, Tensor y);

    /** dx = dy where y &gt; 0, else 0 (y is the ReLU's output); dx may be dy. */
    void reluBackward(Tensor y, Tensor dy, Tensor dx);

    /**
     * Softmax cross-entropy of each row of {@code logits} against its label, and its gradient for the mean loss:
     * loss_r = log Σ_j exp(z_rj) − z_r,label; dlogits = (softmax(z) − onehot(label)) / rows.
     *
     * @param labels  one class index in [0, cols) per row
     * @param dlogits output, same shape as logits
     * @return Σ_r loss_r (the sum, in double; divide by rows for the mean)
     */
    double softmaxCrossEntropy(Tensor logits, int[] labels, Tensor dlogits);

    /** Number of rows whose arg-max column equals the label (ties and NaN resolve to the lowest index). */
    int countCorrect(Tensor logits, int[] labels);

    /**
     * SGD with momentum and (coupled, L2) weight decay, PyTorch's convention:
     * g = grad + weightDecay·param; velocity = momentum·velocity + g; param −= lr·velocity.
     * Modifies param and velocity.
     */
    void sgdUpdate(Tensor param, Tensor grad, Tensor velocity, float lr, float momentum, float weightDecay);

    /**
     * A batch-norm layer over {@code channels} columns on this backend (gamma = 1, beta = 0, running mean 0 and
     * variance 1).
     *
     * @param momentum PyTorch's running-statistics momentum (weight of the new batch)
     */
    BatchNormUnit batchNorm(int channels, double eps, double momentum);

    /** Releases backend resources; idempotent. */
    @Override
    void close();
}
