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

    // ---- fused batch norm + (add) + ReLU ---------------------------------------------------------------------------

    @Override
    public final void forwardTrainingRelu(Shape shape, float[] x, float[] z, float[] gamma, float[] beta, double eps,
                                          float[] runningMean, float[] runningVar, double momentum, float[] y,
                                          int[] mask, float[] saveMean, float[] saveInvstd) {
        checkOpen();
        HOST_ANY.forwardTrainingRelu(shape, x, z, gamma, beta, eps, runningMean, runningVar, momentum, y, mask,
                saveMean, saveInvstd);
        doForwardTrainingRelu(shape, x, z, gamma, beta, eps, runningMean, runningVar, momentum, y, mask, saveMean,
                saveInvstd);
    }

    @Override
    public final void forwardInferenceRelu(Shape shape, float[] x, float[] z, float[] gamma, float[] beta,
                                           float[] runningMean, float[] runningVar, double eps, float[] y,
                                           int[] mask) {
        checkOpen();
        HOST_ANY.forwardInferenceRelu(shape, x, z, gamma, beta, runningMean, runningVar, eps, y, mask);
        doForwardInferenceRelu(shape, x, z, gamma, beta, runningMean, runningVar, eps, y, mask);
    }

    @Override
    public final void backwardTrainingRelu(Shape shape, float[] x, float[] dy, int[] mask, float[] gamma,
                                           float[] saveMean, float[] saveInvstd, float[] dx, float[] dz,
                                           float[] dgamma, float[] dbeta) {
        checkOpen();
        HOST_ANY.backwardTrainingRelu(shape, x, dy, mask, gamma, saveMean, saveInvstd, dx, dz, dgamma, dbeta);
        doBackwardTrainingRelu(shape, x, dy, mask, gamma, saveMean, saveInvstd, dx, dz, dgamma, dbeta);
    }

    @Override
    public final void backwardInferenceRelu(Shape shape, float[] x, float[] dy, int[] mask, float[] gamma,
                                            float[] runningMean, float[] runningVar, double eps, float[] dx,
                                            float[] dz, float[] dgamma, float[] dbeta) {
        checkOpen();
        HOST_ANY.backwardInferenceRelu(shape, x, dy, mask, gamma, runningMean, runningVar, eps, dx, dz, dgamma, dbeta);
        doBackwardInferenceRelu(shape, x, dy, mask, gamma, runningMean, runningVar, eps, dx, dz, dgamma, dbeta);
    }

    @Override
    public final void forwardTrainingRelu(Shape shape, DType dtype, short[] x, short[] z, float[] gamma,
                                          float[] beta, double eps, float[] runningMean, float[] runningVar,
                                          double momentum, short[] y, int[] mask, float[] saveMean,
                                          float[] saveInvstd) {
        checkOpen();
        ArgumentChecks.sixteenBit(dtype);
        HOST_ANY.forwardTrainingRelu(shape, x, z, gamma, beta, eps, runningMean, runningVar, momentum, y, mask,
                saveMean, saveInvstd);
        doForwardTrainingRelu(shape, dtype, x, z, gamma, beta, eps, runningMean, runningVar, momentum, y, mask,
                saveMean, saveInvstd);
    }

    @Override
    public final void forwardInferenceRelu(Shape shape, DType dtype, short[] x, short[] z, float[] gamma,
                                           float[] beta, float[] runningMean, float[] runningVar, double eps,
                                           short[] y, int[] mask) {
        checkOpen();
        ArgumentChecks.sixteenBit(dtype);
        HOST_ANY.forwardInferenceRelu(shape, x, z, gamma, beta, runningMean, runningVar, eps, y, mask);
        doForwardInferenceRelu(shape, dtype, x, z, gamma, beta, runningMean, runningVar, eps, y, mask);
    }

    @Override
    public final void backwardTrainingRelu(Shape shape, DType dtype, short[] x, short[] dy, int[] mask,
                                           float[] gamma, float[] saveMean, float[] saveInvstd, short[] dx,
                                           short[] dz, float[] dgamma, float[] dbeta) {
        checkOpen();
        ArgumentChecks.sixteenBit(dtype);
        HOST_ANY.backwardTrainingRelu(shape, x, dy, mask, gamma, saveMean, saveInvstd, dx, dz, dgamma, dbeta);
        doBackwardTrainingRelu(shape, dtype, x, dy, mask, gamma, saveMean, saveInvstd, dx, dz, dgamma, dbeta);
    }

    @Override
    public final void backwardInferenceRelu(Shape shape, DType dtype, short[] x, short[] dy, int[] mask,
                                            float[] gamma, float[] runningMean, float[] runningVar, double eps,
                                            short[] dx, short[] dz, float[] dgamma, float[] dbeta) {
        checkOpen();
        ArgumentChecks.sixteenBit(dtype);
        HOST_ANY.backwardInferenceRelu(shape, x, dy, mask, gamma, runningMean, runningVar, eps, dx, dz, dgamma, dbeta);
        doBackwardInferenceRelu(shape, dtype, x, dy, mask, gamma, runningMean, runningVar, eps, dx, dz, dgamma,
                dbeta);
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

    // ---- fused: by default the interface's composition (the unfused op, then the ReLU epilogue) ------------------

    protected void doForwardTrainingRelu(Shape shape, float[] x, float[] z, float[] gamma, float[] beta, double eps,
                                         float[] runningMean, float[] runningVar, double momentum, float[] y,
                                         int[] mask, float[] saveMean, float[] saveInvstd) {
        BatchNormOps.super.forwardTrainingRelu(shape, x, z, gamma, beta, eps, runningMean, runningVar, momentum, y,
                mask, saveMean, saveInvstd);
    }

    protected void doForwardInferenceRelu(Shape shape, float[] x, float[] z, float[] gamma, float[] beta,
                                          float[] runningMean, float[] runningVar, double eps, float[] y,
                                          int[] mask) {
        BatchNormOps.super.forwardInferenceRelu(shape, x, z, gamma, beta, runningMean, runningVar, eps, y, mask);
    }

    protected void doBackwardTrainingRelu(Shape shape, float[] x, float[] dy, int[] mask, float[] gamma,
                                          float[] saveMean, float[] saveInvstd, float[] dx, float[] dz,
                                          float[] dgamma, float[] dbeta) {
        BatchNormOps.super.backwardTrainingRelu(shape, x, dy, mask, gamma, saveMean, saveInvstd, dx, dz, dgamma,
                dbeta);
    }

    protected void doBackwardInferenceRelu(Shape shape, float[] x, float[] dy, int[] mask, float[] gamma,
                                           float[] runningMean, float[] runningVar, double eps, float[] dx,
                                           float[] dz, float[] dgamma, float[] dbeta) {
        BatchNormOps.super.backwardInferenceRelu(shape, x, dy, mask, gamma, runningMean, runningVar, eps, dx, dz,
                dgamma, dbeta);
    }

    protected void doForwardTrainingRelu(Shape shape, DType dtype, short[] x, short[] z, float[] gamma,
                                         float[] beta, double eps, float[] runningMean, float[] runningVar,
                                         double momentum, short[] y, int[] mask, float[] saveMean,
                                         float[] saveInvstd) {
        BatchNormOps.super.forwardTrainingRelu(shape, dtype, x, z, gamma, beta, eps, runningMean, runningVar,
                momentum, y, mask, saveMean, saveInvstd);
    }

    protected void doForwardInferenceRelu(Shape shape, DType dtype, short[] x, short[] z, float[] gamma,
                                          float[] beta, float[] runningMean, float[] runningVar, double eps,
                                          short[] y, int[] mask) {
        BatchNormOps.super.forwardInferenceRelu(shape, dtype, x, z, gamma, beta, runningMean, runningVar, eps, y,
                mask);
    }

    protected void doBackwardTrainingRelu(Shape shape, DType dtype, short[] x, short[] dy, int[] mask,
                                          float[] gamma, float[] saveMean, float[] saveInvstd, short[] dx,
                                          short[] dz, float[] dgamma, float[] dbeta) {
        BatchNormOps.super.backwardTrainingRelu(shape, dtype, x, dy, mask, gamma, saveMean, saveInvstd, dx, dz,
                dgamma, dbeta);
    }

    protected void doBackwardInferenceRelu(Shape shape, DType dtype, short[] x, short[] dy, int[] mask,
                                           float[] gamma, float[] runningMean, float[] runningVar, double eps,
                                           short[] dx, short[] dz, float[] dgamma, float[] dbeta) {
        BatchNormOps.super.backwardInferenceRelu(shape, dtype, x, dy, mask, gamma, runningMean, runningVar, eps, dx,
                dz, dgamma, dbeta);
    }

    /** Releases resources; called once. */
    protected void doClose() {
    }

    /** Throws IllegalStateException naming this backend once it is closed; for a backend's own public methods. */
    protected final void checkOpen() {
        if (closed) throw new IllegalStateException("backend '" + name() + "' is closed");
    }
}
