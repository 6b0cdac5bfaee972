package io.github.batchnorm4j.train;

/**
 * A batch-norm layer over the columns of a {@code [rows, channels]} activation matrix, living on a
 * {@link TrainBackend}: learnable gamma/beta with their gradients, and running statistics for evaluation.
 * Semantics are the library's ({@link io.github.batchnorm4j.BatchNorm}, PyTorch's {@code BatchNorm1d}).
 */
public interface BatchNormUnit extends AutoCloseable {
    /** Number of channels C (columns of x). */
    int channels();

    /** Live gamma, {@code [1, C]}; an optimizer updates it in place. */
    Tensor gamma();

    /** Live beta, {@code [1, C]}. */
    Tensor beta();

    /** dL/dgamma from the last {@link #backward}, {@code [1, C]}. */
    Tensor gammaGrad();

    /** dL/dbeta from the last {@link #backward}, {@code [1, C]}. */
    Tensor betaGrad();

    /**
     * y = BN(x). Training mode normalizes with the batch statistics (x needs at least 2 rows), saves them for
     * {@link #backward} and updates the running statistics; eval mode uses the running statistics.
     *
     * @param y output, same shape as x
     */
    void forward(Tensor x, Tensor y, boolean training);

    /**
     * Training-mode backward of the last training {@link #forward} (same x): writes dx and overwrites
     * {@link #gammaGrad()} and {@link #betaGrad()}.
     *
     * @param dx output, same shape as x
     */
    void backward(Tensor x, Tensor dy, Tensor dx);

    /** Releases backend resources; idempotent. */
    @Override
    void close();
}
