package io.github.batchnorm4j.train;

/**
 * A batch-norm layer followed by a ReLU, over the columns of a {@code [rows, channels]} activation matrix, living on
 * a {@link TrainBackend}: learnable gamma/beta with their gradients, running statistics for evaluation, and the ReLU
 * mask of the last forward (the MLP's hidden layers are h = relu(bn(x·W)), computed as one fused operation).
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
     * h = relu(BN(x)), batch norm and the ReLU after it in one fused call (the library's
     * {@link io.github.batchnorm4j.BatchNormOps#forwardTrainingRelu}). Training mode normalizes with the batch
     * statistics (x needs at least 2 rows), saves them and the ReLU mask for {@link #backwardRelu} and updates the
     * running statistics; eval mode uses the running statistics.
     *
     * @param h output, same shape as x
     */
    void forwardRelu(Tensor x, Tensor h, boolean training);

    /**
     * Training-mode backward of the last training {@link #forwardRelu} (same x): dh, the gradient of h, is gated by
     * that forward's ReLU mask (h itself is not needed), then batch norm's backward writes dx and overwrites
     * {@link #gammaGrad()} and {@link #betaGrad()}.
     *
     * @param dx output, same shape as x
     */
    void backwardRelu(Tensor x, Tensor dh, Tensor dx);

    /** Releases backend resources; idempotent. */
    @Override
    void close();
}
