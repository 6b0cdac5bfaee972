package io.github.batchnorm4j;

import static io.github.batchnorm4j.ArgumentChecks.HOST;

/**
 * {@link AbstractBatchNormOps} for backends that also implement {@link SplitBatchNormOps}: validates the split
 * operations' arguments once, the same way for every backend, before delegating to the {@code do…} methods.
 */
public abstract class AbstractSplitBatchNormOps extends AbstractBatchNormOps implements SplitBatchNormOps {

    @Override
    public final void forwardWithStatistics(Shape shape, float[] x, ChannelStatistics statistics, float[] gamma,
                                            float[] beta, double eps, float[] runningMean, float[] runningVar,
                                            double momentum, float[] y, float[] saveMean, float[] saveInvstd) {
        checkOpen();
        HOST.forwardTrainingPiece(shape, x, gamma, beta, eps, runningMean, runningVar, momentum, y, saveMean,
                saveInvstd);
        ArgumentChecks.statistics("statistics", shape, statistics);
        if (y == x) {
            throw new IllegalArgumentException("y must not be the same array as x (in-place operation is not supported)");
        }
        doForwardWithStatistics(shape, x, statistics, gamma, beta, eps, runningMean, runningVar, momentum, y, saveMean,
                saveInvstd);
    }

    @Override
    public final GradientSums gradientSums(Shape shape, float[] x, float[] dy, float[] saveMean, float[] saveInvstd) {
        checkOpen();
        HOST.gradientSums(shape, x, dy, saveMean, saveInvstd);
        return doGradientSums(shape, x, dy, saveMean, saveInvstd);
    }

    @Override
    public final void backwardWithSums(Shape shape, float[] x, float[] dy, float[] gamma, float[] saveMean,
                                       float[] saveInvstd, GradientSums sums, float[] dx) {
        checkOpen();
        HOST.backwardTrainingPiece(shape, x, dy, gamma, saveMean, saveInvstd, dx, null, null);
        ArgumentChecks.sums("sums", shape, sums);
        if (dx == x || dx == dy) {
            throw new IllegalArgumentException("dx must not be the same array as " + (dx == x ? "x" : "dy")
                    + " (in-place operation is not supported)");
        }
        doBackwardWithSums(shape, x, dy, gamma, saveMean, saveInvstd, sums, dx);
    }

    protected abstract void doForwardWithStatistics(Shape shape, float[] x, ChannelStatistics statistics,
                                                    float[] gamma, float[] beta, double eps, float[] runningMean,
                                                    float[] runningVar, double momentum, float[] y, float[] saveMean,
                                                    float[] saveInvstd);

    protected abstract GradientSums doGradientSums(Shape shape, float[] x, float[] dy, float[] saveMean,
                                                   float[] saveInvstd);

    protected abstract void doBackwardWithSums(Shape shape, float[] x, float[] dy, float[] gamma, float[] saveMean,
                                               float[] saveInvstd, GradientSums sums, float[] dx);
}
