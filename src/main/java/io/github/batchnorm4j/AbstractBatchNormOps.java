package io.github.batchnorm4j;

import static io.github.batchnorm4j.ArgumentChecks.HOST;
import static io.github.batchnorm4j.ArgumentChecks.HOST_ANY;

/**
 * Validates every argument of {@link BatchNormOps} once, the same way for every backend, before delegating to the
 * backend's implementation. Backends extend this and implement the {@code do…} methods, which may assume valid input.
 *
 * <p>The 16-bit operations ({@code short[]} x, y, dy, dx) are validated here too and go to {@code do…} methods
 * whose default is the interface's (widen exactly, compute in float32, round y or dx once); a backend with native
 * 16-bit kernels overrides them.
 */
public abstract class AbstractBatchNormOps implements BatchNormOps {
    private volatile boolean closed;

    @Override
    public final ChannelStatistics statistics(Shape shape, float[] x) {
        checkOpen();
        HOST.statistics(shape, x);
        return doStatistics(shape, x);
    }

    @Override
    public final void forwardTraining(Shape shape, float[] x, float[] gamma, float[] beta, double eps,
                                      float[] runningMean, float[] runningVar, double momentum,
                                      float[] y, float[] saveMean, float[] saveInvstd) {
        checkOpen();
        HOST.forwardTraining(shape, x, gamma, beta, eps, runningMean, runningVar, momentum, y, saveMean, saveInvstd);
        doForwardTraining(shape, x, gamma, beta, eps, runningMean, runningVar, momentum, y, saveMean, saveInvstd);
    }

    @Override
    public final void forwardInference(Shape shape, float[] x, float[] gamma, float[] beta,
                                       float[] runningMean, float[] runningVar, double eps, float[] y) {
        checkOpen();
        HOST.forwardInference(shape, x, gamma, beta, runningMean, runningVar, eps, y);
        doForwardInference(shape, x, gamma, beta, runningMean, runningVar, eps, y);
    }

    @Override
    public final void normalize(Shape shape, float[] x, float[] gamma, float[] beta, float[] mean, float[] invstd,
                                float[] y) {
        checkOpen();
        HOST.normalize(shape, x, gamma, beta, mean, invstd, y);
        doNormalize(shape, x, gamma, beta, mean, invstd, y);
    }

    @Override
    public final void backwardTraining(Shape shape, float[] x, float[] dy, float[] gamma, float[] saveMean,
                                       float[] saveInvstd, float[] dx, float[] dgamma, float[] dbeta) {
        checkOpen();
        HOST.backwardTraining(shape, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
        doBackwardTraining(shape, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
    }

    @Override
    public final void backwardInference(Shape shape, float[] x, float[] dy, float[] gamma, float[] runningMean,
                                        float[] runningVar, double eps, float[] dx, float[] dgamma, float[] dbeta) {
        checkOpen();
        HOST.backwardInference(shape, x, dy, gamma, runningMean, runningVar, eps, dx, dgamma, dbeta);
        doBackwardInference(shape, x, dy, gamma, runningMean, runningVar, eps, dx, dgamma, dbeta);
    }

    // ---- 16-bit activations ----------------------------------------------------------------------------------------

    @Override
    public final ChannelStatistics statistics(Shape shape, DType dtype, short[] x) {
        checkOpen();
        ArgumentChecks.sixteenBit(dtype);
        HOST_ANY.statistics(shape, x);
        return doStatistics(shape, dtype, x);
    }

    @Override
    public final void forwardTraining(Shape shape, DType dtype, short[] x, float[] gamma, float[] beta, double eps,
                                      float[] runningMean, float[] runningVar, double momentum,
                                      short[] y, float[] saveMean, float[] saveInvstd) {
        checkOpen();
        ArgumentChecks.sixteenBit(dtype);
        HOST_ANY.forwardTraining(shape, x, gamma, beta, eps, runningMean, runningVar, momentum, y, saveMean,
                saveInvstd);
        doForwardTraining(shape, dtype, x, gamma, beta, eps, runningMean, runningVar, momentum, y, saveMean,
                saveInvstd);
    }

    @Override
    public final void forwardInference(Shape shape, DType dtype, short[] x, float[] gamma, float[] beta,
                                       float[] runningMean, float[] runningVar, double eps, short[] y) {
        checkOpen();
        ArgumentChecks.sixteenBit(dtype);
        HOST_ANY.forwardInference(shape, x, gamma, beta, runningMean, runningVar, eps, y);
        doForwardInference(shape, dtype, x, gamma, beta, runningMean, runningVar, eps, y);
    }

    @Override
    public final void normalize(Shape shape, DType dtype, short[] x, float[] gamma, float[] beta, float[] mean,
                                float[] invstd, short[] y) {
        checkOpen();
        ArgumentChecks.sixteenBit(dtype);
        HOST_ANY.normalize(shape, x, gamma, beta, mean, invstd, y);
        doNormalize(shape, dtype, x, gamma, beta, mean, invstd, y);
    }

    @Override
    public final void backwardTraining(Shape shape, DType dtype, short[] x, short[] dy, float[] gamma,
                                       float[] saveMean, float[] saveInvstd, short[] dx, float[] dgamma,
                                       float[] dbeta) {
        checkOpen();
        ArgumentChecks.sixteenBit(dtype);
        HOST_ANY.backwardTraining(shape, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
        doBackwardTraining(shape, dtype, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
    }

    @Override
    public final void backwardInference(Shape shape, DType dtype, short[] x, short[] dy, float[] gamma,
                                        float[] runningMean, float[] runningVar, double eps, short[] dx,
                                        float[] dgamma, float[] dbeta) {
        checkOpen();
        ArgumentChecks.sixteenBit(dtype);
        HOST_ANY.backwardInference(shape, x, dy, gamma, runningMean, runningVar, eps, dx, dgamma, dbeta);
        doBackwardInference(shape, dtype, x, dy, gamma, runningMean, runningVar, eps, dx, dgamma, dbeta);
    }

    @Override
    public final void close() {
        if (closed) return;
        closed = true;
        doClose();
    }

    /** True once closed. */
    public final boolean isClosed() {
        return closed;
    }

    protected abstract ChannelStatistics doStatistics(Shape shape, float[] x);

    protected abstract void doForwardTraining(Shape shape, float[] x, float[] gamma, float[] beta, double eps,
                                              float[] runningMean, float[] runningVar, double momentum,
                                              float[] y, float[] saveMean, float[] saveInvstd);

    protected abstract void doForwardInference(Shape shape, float[] x, float[] gamma, float[] beta,
                                               float[] runningMean, float[] runningVar, double eps, float[] y);

    protected abstract void doNormalize(Shape shape, float[] x, float[] gamma, float[] beta, float[] mean,
                                        float[] invstd, float[] y);

    protected abstract void doBackwardTraining(Shape shape, float[] x, float[] dy, float[] gamma, float[] saveMean,
                                               float[] saveInvstd, float[] dx, float[] dgamma, float[] dbeta);

    protected abstract void doBackwardInference(Shape shape, float[] x, float[] dy, float[] gamma,
                                                float[] runningMean, float[] runningVar, double eps,
                                                float[] dx, float[] dgamma, float[] dbeta);

    // ---- 16-bit: by default the interface's widen, compute in float32, round once -------------------------------

    protected ChannelStatistics doStatistics(Shape shape, DType dtype, short[] x) {
        return BatchNormOps.super.statistics(shape, dtype, x);
    }

    protected void doForwardTraining(Shape shape, DType dtype, short[] x, float[] gamma, float[] beta, double eps,
                                     float[] runningMean, float[] runningVar, double momentum,
                                     short[] y, float[] saveMean, float[] saveInvstd) {
        BatchNormOps.super.forwardTraining(shape, dtype, x, gamma, beta, eps, runningMean, runningVar, momentum, y,
                saveMean, saveInvstd);
    }

    protected void doForwardInference(Shape shape, DType dtype, short[] x, float[] gamma, float[] beta,
                                      float[] runningMean, float[] runningVar, double eps, short[] y) {
        BatchNormOps.super.forwardInference(shape, dtype, x, gamma, beta, runningMean, runningVar, eps, y);
    }

    protected void doNormalize(Shape shape, DType dtype, short[] x, float[] gamma, float[] beta, float[] mean,
                               float[] invstd, short[] y) {
        BatchNormOps.super.normalize(shape, dtype, x, gamma, beta, mean, invstd, y);
    }

    protected void doBackwardTraining(Shape shape, DType dtype, short[] x, short[] dy, float[] gamma,
                                      float[] saveMean, float[] saveInvstd, short[] dx, float[] dgamma,
                                      float[] dbeta) {
        BatchNormOps.super.backwardTraining(shape, dtype, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
    }

    protected void doBackwardInference(Shape shape, DType dtype, short[] x, short[] dy, float[] gamma,
                                       float[] runningMean, float[] runningVar, double eps, short[] dx,
                                       float[] dgamma, float[] dbeta) {
        BatchNormOps.super.backwardInference(shape, dtype, x, dy, gamma, runningMean, runningVar, eps, dx, dgamma,
                dbeta);
    }

    /** Releases resources; called once. */
    protected void doClose() {
    }

    /** Throws IllegalStateException naming this backend once it is closed; for a backend's own public methods. */
    protected final void checkOpen() {
        if (closed) throw new IllegalStateException("backend '" + name() + "' is closed");
    }
}
