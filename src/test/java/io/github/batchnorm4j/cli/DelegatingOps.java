package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.ChannelStatistics;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.cpu.CpuBatchNormOps;

/** The CPU backend under the name "planted", with methods to override for planting bugs. */
class DelegatingOps implements BatchNormOps {
    final CpuBatchNormOps cpu = new CpuBatchNormOps();

    @Override
    public String name() {
        return "planted";
    }

    @Override
    public ChannelStatistics statistics(Shape shape, float[] x) {
        return cpu.statistics(shape, x);
    }

    @Override
    public void forwardTraining(Shape shape, float[] x, float[] gamma, float[] beta, double eps,
                                float[] runningMean, float[] runningVar, double momentum, float[] y,
                                float[] saveMean, float[] saveInvstd) {
        cpu.forwardTraining(shape, x, gamma, beta, eps, runningMean, runningVar, momentum, y, saveMean,
                saveInvstd);
    }

    @Override
    public void forwardInference(Shape shape, float[] x, float[] gamma, float[] beta, float[] runningMean,
                                 float[] runningVar, double eps, float[] y) {
        cpu.forwardInference(shape, x, gamma, beta, runningMean, runningVar, eps, y);
    }

    @Override
    public void normalize(Shape shape, float[] x, float[] gamma, float[] beta, float[] mean, float[] invstd,
                          float[] y) {
        cpu.normalize(shape, x, gamma, beta, mean, invstd, y);
    }

    @Override
    public void backwardTraining(Shape shape, float[] x, float[] dy, float[] gamma, float[] saveMean,
                                 float[] saveInvstd, float[] dx, float[] dgamma, float[] dbeta) {
        cpu.backwardTraining(shape, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
    }

    @Override
    public void backwardInference(Shape shape, float[] x, float[] dy, float[] gamma, float[] runningMean,
                                  float[] runningVar, double eps, float[] dx, float[] dgamma, float[] dbeta) {
        cpu.backwardInference(shape, x, dy, gamma, runningMean, runningVar, eps, dx, dgamma, dbeta);
    }

    @Override
    public void close() {
        cpu.close();
    }

    // The fused operations go to the CPU's own, so a bug planted in an unfused method stays in its own rows.

    @Override
    public void forwardTrainingRelu(Shape shape, float[] x, float[] z, float[] gamma, float[] beta, double eps,
                                    float[] runningMean, float[] runningVar, double momentum, float[] y, int[] mask,
                                    float[] saveMean, float[] saveInvstd) {
        cpu.forwardTrainingRelu(shape, x, z, gamma, beta, eps, runningMean, runningVar, momentum, y, mask, saveMean,
                saveInvstd);
    }

    @Override
    public void forwardInferenceRelu(Shape shape, float[] x, float[] z, float[] gamma, float[] beta,
                                     float[] runningMean, float[] runningVar, double eps, float[] y, int[] mask) {
        cpu.forwardInferenceRelu(shape, x, z, gamma, beta, runningMean, runningVar, eps, y, mask);
    }

    @Override
    public void backwardTrainingRelu(Shape shape, float[] x, float[] dy, int[] mask, float[] gamma, float[] saveMean,
                                     float[] saveInvstd, float[] dx, float[] dz, float[] dgamma, float[] dbeta) {
        cpu.backwardTrainingRelu(shape, x, dy, mask, gamma, saveMean, saveInvstd, dx, dz, dgamma, dbeta);
    }

    @Override
    public void backwardInferenceRelu(Shape shape, float[] x, float[] dy, int[] mask, float[] gamma,
                                      float[] runningMean, float[] runningVar, double eps, float[] dx, float[] dz,
                                      float[] dgamma, float[] dbeta) {
        cpu.backwardInferenceRelu(shape, x, dy, mask, gamma, runningMean, runningVar, eps, dx, dz, dgamma, dbeta);
    }
}
