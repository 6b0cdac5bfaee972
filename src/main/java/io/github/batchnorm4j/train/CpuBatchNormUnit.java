package io.github.batchnorm4j.train;

import io.github.batchnorm4j.Activation;
import io.github.batchnorm4j.BatchNorm;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.Shape;

/**
 * {@link BatchNormUnit} on the host: the library's stateful {@link BatchNorm} layer with a fused ReLU
 * ({@link Activation#RELU}) over a CPU {@link BatchNormOps}, on a channels-last {@code [rows, C]} shape; the layer
 * keeps the ReLU mask between forward and backward. gamma, beta and their gradients are the layer's live arrays wrapped as
 * tensors, so SGD updates the layer's parameters in place.
 */
final class CpuBatchNormUnit extends AbstractBatchNormUnit<CpuTensor> {
    private final BatchNorm layer;
    private final DType dtype;

    /**
     * @param dtype the storage type of x, y, dy, dx: the layer computes on their (exact) float values and y and dx
     *              are rounded once to it, which is the library's 16-bit batch norm
     */
    CpuBatchNormUnit(BatchNormOps ops, int channels, double eps, double momentum, DType dtype) {
        this(BatchNorm.builder(channels).eps(eps).momentum(momentum).activation(Activation.RELU).build(ops), dtype);
    }

    private CpuBatchNormUnit(BatchNorm layer, DType dtype) {
        super(new Parameters<>(new CpuTensor(1, layer.channels(), layer.gamma()),
                new CpuTensor(1, layer.channels(), layer.beta()), new CpuTensor(1, layer.channels(), layer.gammaGrad()),
                new CpuTensor(1, layer.channels(), layer.betaGrad())));
        this.layer = layer;
        this.dtype = dtype;
    }

    /** The underlying library layer (running statistics, num_batches_tracked). */
    BatchNorm layer() {
        return layer;
    }

    @Override
    public void forwardRelu(Tensor x, Tensor y, boolean training) {
        TensorChecks.sameShape("y", y, x);
        if (training) layer.train();
        else layer.eval();
        checkType("x", x);
        checkType("y", y);
        layer.forward(shape(x), CpuTrainBackend.data("x", x), CpuTrainBackend.data("y", y));
        CpuTrainBackend.cpu(y).storeRange(0, y.size());
    }

    @Override
    public void backwardRelu(Tensor x, Tensor dy, Tensor dx) {
        TensorChecks.sameShape("dy", dy, x);
        TensorChecks.sameShape("dx", dx, x);
        layer.train();
        checkType("x", x);
        checkType("dy", dy);
        checkType("dx", dx);
        layer.backward(shape(x), CpuTrainBackend.data("x", x), CpuTrainBackend.data("dy", dy),
                CpuTrainBackend.data("dx", dx));
        CpuTrainBackend.cpu(dx).storeRange(0, dx.size());
    }

    private void checkType(String name, Tensor t) {
        if (t.dtype() != dtype) {
            throw new IllegalArgumentException(name + ": expected a " + dtype + " tensor (the layer's storage type), got "
                    + t.dtype());
        }
    }

    private Shape shape(Tensor x) {
        return TensorChecks.batchNormInput(x, layer.channels());
    }

    /** The layer holds no resources of its own; the backend owns the ops. */
    @Override
    public void close() {
    }
}
