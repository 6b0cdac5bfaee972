package io.github.batchnorm4j.train;

/**
 * What every {@link BatchNormUnit} holds the same way: its four live parameter tensors ({@code [1, C]} each) of the
 * backend's tensor type.
 */
abstract class AbstractBatchNormUnit<T extends Tensor> implements BatchNormUnit {
    protected final T gamma;
    protected final T beta;
    protected final T gammaGrad;
    protected final T betaGrad;

    AbstractBatchNormUnit(T gamma, T beta, T gammaGrad, T betaGrad) {
        this.gamma = gamma;
        this.beta = beta;
        this.gammaGrad = gammaGrad;
        this.betaGrad = betaGrad;
    }

    @Override
    public int channels() {
        return gamma.cols();
    }

    @Override
    public Tensor gamma() {
        return gamma;
    }

    @Override
    public Tensor beta() {
        return beta;
    }

    @Override
    public Tensor gammaGrad() {
        return gammaGrad;
    }

    @Override
    public Tensor betaGrad() {
        return betaGrad;
    }
}
