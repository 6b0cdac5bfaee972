package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.AbstractBatchNormOps;
import io.github.batchnorm4j.ChannelStatistics;
import io.github.batchnorm4j.Shape;

/**
 * Our CUDA kernels behind {@link io.github.batchnorm4j.BatchNormOps}, over any {@link Device} (JCuda or the PTX
 * emulator). PLACEHOLDER SIGNATURE ONLY: the kernels branch replaces this class body; the constructor signature is the
 * contract other packages compile against.
 */
public final class GpuBatchNormOps extends AbstractBatchNormOps {
    private final Device device;
    private final boolean ownsDevice;
    private final String name;

    /**
     * @param name       backend name reported by {@link #name()} ("cuda" or "emulator")
     * @param device     the device to run on
     * @param ownsDevice whether {@link #close()} also closes the device
     */
    public GpuBatchNormOps(String name, Device device, boolean ownsDevice) {
        this.name = name;
        this.device = device;
        this.ownsDevice = ownsDevice;
    }

    @Override
    public String name() {
        return name;
    }

    private static UnsupportedOperationException todo() {
        return new UnsupportedOperationException("GpuBatchNormOps is not implemented on this branch");
    }

    @Override
    protected ChannelStatistics doStatistics(Shape shape, float[] x) {
        throw todo();
    }

    @Override
    protected void doForwardTraining(Shape shape, float[] x, float[] gamma, float[] beta, double eps,
                                     float[] runningMean, float[] runningVar, double momentum, float[] y,
                                     float[] saveMean, float[] saveInvstd) {
        throw todo();
    }

    @Override
    protected void doForwardInference(Shape shape, float[] x, float[] gamma, float[] beta, float[] runningMean,
                                      float[] runningVar, double eps, float[] y) {
        throw todo();
    }

    @Override
    protected void doNormalize(Shape shape, float[] x, float[] gamma, float[] beta, float[] mean, float[] invstd,
                               float[] y) {
        throw todo();
    }

    @Override
    protected void doBackwardTraining(Shape shape, float[] x, float[] dy, float[] gamma, float[] saveMean,
                                      float[] saveInvstd, float[] dx, float[] dgamma, float[] dbeta) {
        throw todo();
    }

    @Override
    protected void doBackwardInference(Shape shape, float[] x, float[] dy, float[] gamma, float[] runningMean,
                                       float[] runningVar, double eps, float[] dx, float[] dgamma, float[] dbeta) {
        throw todo();
    }

    @Override
    protected void doClose() {
        if (ownsDevice) device.close();
    }
}
