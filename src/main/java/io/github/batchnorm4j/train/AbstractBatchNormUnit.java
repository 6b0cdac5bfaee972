package io.github.batchnorm4j.train;

/**
 * What every {@link BatchNormUnit} holds the same way: its four live parameter tensors ({@code [1, C]} each) of the
 * backend's tensor type.
 */
abstract class AbstractBatchNormUnit<T extends Tensor> implements BatchNormUnit {

    /** gamma, beta and their gradients, {@code [1, C]} each. */
    record Parameters<T extends Tensor>(T gamma, T beta, T gammaGrad, T betaGrad) {
    }

    protected final Parameters<T> p;

    AbstractBatchNormUnit(Parameters<T> parameters) {
        this.p = parameters;
    }

    @Override
    public int channels() {
        return p.gamma().cols();
    }

    @Override
    public Tensor gamma() {
        return p.gamma();
    }

    @Override
    public Tensor beta() {
        return p.beta();
    }

    @Override
    public Tensor gammaGrad() {
        return p.gammaGrad();
    }

    @Override
    public Tensor betaGrad() {
        return p.betaGrad();
    }
}
