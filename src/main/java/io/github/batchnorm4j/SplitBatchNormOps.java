package io.github.batchnorm4j;

/**
 * A backend whose training-mode forward and backward can be split at their two reductions, so that partial results of
 * several pieces of one batch are merged in between: micro-batches on one device, or the ranks of a data-parallel job
 * ({@code distributed.SyncBatchNormOps}, PyTorch's {@code SyncBatchNorm}).
 * <pre>
 * forward:  statistics(x_r) per piece → merge (Chan, in a fixed order) → forwardWithStatistics(x_r, merged)
 * backward: gradientSums(x_r, dy_r) per piece → add (in a fixed order) → backwardWithSums(x_r, dy_r, total)
 * </pre>
 * With one piece this is exactly {@link #forwardTraining} and {@link #backwardTraining}. The CPU backend and our
 * kernels (CUDA, emulator) implement it; cuDNN's batch norm has no such split.
 *
 * <p>The conventions of {@link BatchNormOps} hold (validation before anything is written, outputs overwritten, gamma
 * null = 1, beta null = 0). One difference: a piece may hold a single value per channel (M = 1); only the merged count
 * must exceed 1.
 */
public interface SplitBatchNormOps extends BatchNormOps {

    /**
     * Training-mode forward of this piece {@code x} with the statistics of the whole batch (the merge of every piece's
     * {@link #statistics}):
     * <pre>
     * mean = statistics.mean, var = statistics.m2/count, invstd = 1/sqrt(var + eps)
     * y = (x − mean)·invstd·gamma + beta
     * runningMean ← (1 − m)·runningMean + m·mean
     * runningVar  ← (1 − m)·runningVar  + m·statistics.m2/(count − 1)      (count of the whole batch)
     * </pre>
     *
     * @param statistics  the whole batch's statistics, C channels, count ≥ 2
     * @param runningMean in/out, or null with runningVar null
     * @param y           output; saveMean and saveInvstd: outputs (C floats each), for {@link #gradientSums}
     * @throws IllegalArgumentException also when statistics.count() &lt; 2 (expected more than 1 value per channel)
     */
    void forwardWithStatistics(Shape shape, float[] x, ChannelStatistics statistics, float[] gamma, float[] beta,
                               double eps, float[] runningMean, float[] runningVar, double momentum,
                               float[] y, float[] saveMean, float[] saveInvstd);

    /**
     * This piece's backward sums with the shared saved statistics (xhat = (x − saveMean)·saveInvstd): count = M of
     * this piece, Σdy and Σdy·xhat per channel. Reads x and dy once; writes nothing.
     */
    GradientSums gradientSums(Shape shape, float[] x, float[] dy, float[] saveMean, float[] saveInvstd);

    /**
     * Training-mode dx of this piece from the whole batch's sums (the {@link GradientSums#add sum} of every piece's
     * {@link #gradientSums}):
     * <pre>
     * dx = gamma·invstd/M·(M·dy − Σdy − xhat·Σdy·xhat),   M = sums.count()
     * </pre>
     * dgamma and dbeta of the whole batch are {@code sums.sumDyXhat(c)} and {@code sums.sumDy(c)}.
     *
     * @param sums the whole batch's sums, C channels, count ≥ 2
     * @param dx   output
     */
    void backwardWithSums(Shape shape, float[] x, float[] dy, float[] gamma, float[] saveMean, float[] saveInvstd,
                          GradientSums sums, float[] dx);
}
