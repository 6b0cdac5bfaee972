package io.github.batchnorm4j.train;

import io.github.batchnorm4j.gpu.Device;

/**
 * A {@link DeviceTrainBackend} together with the {@link Device} it was opened on, closing both (backend first) — for
 * backends that {@link TrainBackends} opens on a device of their own.
 */
final class OwningDeviceBackend implements TrainBackend {
    private final DeviceTrainBackend backend;
    private final Device device;

    OwningDeviceBackend(DeviceTrainBackend backend, Device device) {
        this.backend = backend;
        this.device = device;
    }

    @Override
    public String name() {
        return backend.name();
    }

    @Override
    public Tensor allocate(int rows, int cols) {
        return backend.allocate(rows, cols);
    }

    @Override
    public void upload(float[] src, Tensor dst) {
        backend.upload(src, dst);
    }

    @Override
    public void download(Tensor src, float[] dst) {
        backend.download(src, dst);
    }

    @Override
    public void gemm(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        backend.gemm(transA, transB, alpha, a, b, beta, c);
    }

    @Override
    public void addBias(Tensor x, Tensor bias) {
        backend.addBias(x, bias);
    }

    @Override
    public void sumRows(Tensor x, Tensor out) {
        backend.sumRows(x, out);
    }

    @Override
    public void reluForward(Tensor x, Tensor y) {
        backend.reluForward(x, y);
    }

    @Override
    public void reluBackward(Tensor y, Tensor dy, Tensor dx) {
        backend.reluBackward(y, dy, dx);
    }

    @Override
    public double softmaxCrossEntropy(Tensor logits, int[] labels, Tensor dlogits) {
        return backend.softmaxCrossEntropy(logits, labels, dlogits);
    }

    @Override
    public int countCorrect(Tensor logits, int[] labels) {
        return backend.countCorrect(logits, labels);
    }

    @Override
    public void sgdUpdate(Tensor param, Tensor grad, Tensor velocity, float lr, float momentum, float weightDecay) {
        backend.sgdUpdate(param, grad, velocity, lr, momentum, weightDecay);
    }

    @Override
    public BatchNormUnit batchNorm(int channels, double eps, double momentum) {
        return backend.batchNorm(channels, eps, momentum);
    }

    /** Closes the backend, then the device. Idempotent. */
    @Override
    public void close() {
        try {
            backend.close();
        } finally {
            device.close();
        }
    }
}
