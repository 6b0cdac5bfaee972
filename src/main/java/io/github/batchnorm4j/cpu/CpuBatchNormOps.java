package io.github.batchnorm4j.cpu;

import io.github.batchnorm4j.AbstractBatchNormOps;
import io.github.batchnorm4j.ChannelStatistics;
import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;

/**
 * The CPU backend: float32 in and out, double accumulation, exact two-pass statistics.
 * (Baseline implementation; see the class comment of the optimized version for threading and speed.)
 */
public final class CpuBatchNormOps extends AbstractBatchNormOps {

    @Override
    public String name() {
        return "cpu";
    }

    @Override
    protected ChannelStatistics doStatistics(Shape shape, float[] x) {
        int c = shape.channels();
        double[] mean = new double[c];
        double[] m2 = new double[c];
        long m = shape.reductionSize();
        double[] sum = sums(shape, x, null, null);
        for (int k = 0; k < c; k++) mean[k] = sum[k] / m;
        double[] sq = sums(shape, x, mean, null);
        System.arraycopy(sq, 0, m2, 0, c);
        return new ChannelStatistics(m, mean, m2);
    }

    /** Σx per channel, or Σ(x − center)² when center is given, or Σ dy·(x − center) when dy is given. */
    private static double[] sums(Shape shape, float[] x, double[] center, float[] dy) {
        int c = shape.channels();
        double[] acc = new double[c];
        long outer = shape.outer(), inner = shape.inner();
        if (shape.layout() == Layout.CHANNELS_FIRST) {
            for (long n = 0; n < outer; n++) {
                for (int k = 0; k < c; k++) {
                    int base = (int) ((n * c + k) * inner);
                    double s = 0;
                    double mu = center == null ? 0 : center[k];
                    for (int i = 0; i < inner; i++) {
                        double v = x[base + i] - mu;
                        s += dy != null ? dy[base + i] * v : center != null ? v * v : v;
                    }
                    acc[k] += s;
                }
            }
        } else {
            long rows = shape.rows();
            for (long r = 0; r < rows; r++) {
                int base = (int) (r * c);
                for (int k = 0; k < c; k++) {
                    double mu = center == null ? 0 : center[k];
                    double v = x[base + k] - mu;
                    acc[k] += dy != null ? dy[base + k] * v : center != null ? v * v : v;
                }
            }
        }
        return acc;
    }

    /** y = (x − center)·scale + shift per channel. */
    private static void apply(Shape shape, float[] x, float[] center, float[] scale, float[] shift, float[] y) {
        int c = shape.channels();
        if (shape.layout() == Layout.CHANNELS_FIRST) {
            long outer = shape.outer(), inner = shape.inner();
            for (long n = 0; n < outer; n++) {
                for (int k = 0; k < c; k++) {
                    int base = (int) ((n * c + k) * inner);
                    float a = scale[k], b = shift[k], m = center[k];
                    for (int i = 0; i < inner; i++) y[base + i] = (x[base + i] - m) * a + b;
                }
            }
        } else {
            long rows = shape.rows();
            for (long r = 0; r < rows; r++) {
                int base = (int) (r * c);
                for (int k = 0; k < c; k++) y[base + k] = (x[base + k] - center[k]) * scale[k] + shift[k];
            }
        }
    }

    @Override
    protected void doForwardTraining(Shape shape, float[] x, float[] gamma, float[] beta, double eps,
                                     float[] runningMean, float[] runningVar, double momentum,
                                     float[] y, float[] saveMean, float[] saveInvstd) {
        ChannelStatistics st = doStatistics(shape, x);
        int c = shape.channels();
        long m = shape.reductionSize();
        float[] mean = new float[c];
        float[] invstd = new float[c];
        for (int k = 0; k < c; k++) {
            mean[k] = (float) st.mean(k);
            invstd[k] = (float) st.invstd(k, eps);
        }
        // y = (x − hi)·scale + (beta − lo·scale) with mean = hi + lo: x·scale + shift would cancel when |mean| ≫ std.
        float[] scale = new float[c];
        float[] shift = new float[c];
        for (int k = 0; k < c; k++) {
            double s = (gamma == null ? 1.0 : gamma[k]) * (double) invstd[k];
            scale[k] = (float) s;
            shift[k] = (float) ((beta == null ? 0.0 : beta[k]) - (st.mean(k) - mean[k]) * s);
        }
        apply(shape, x, mean, scale, shift, y);
        System.arraycopy(mean, 0, saveMean, 0, c);
        System.arraycopy(invstd, 0, saveInvstd, 0, c);
        if (runningMean != null) {
            for (int k = 0; k < c; k++) {
                runningMean[k] = (float) ((1 - momentum) * runningMean[k] + momentum * st.mean(k));
                runningVar[k] = (float) ((1 - momentum) * runningVar[k] + momentum * st.m2(k) / (m - 1));
            }
        }
    }

    @Override
    protected void doForwardInference(Shape shape, float[] x, float[] gamma, float[] beta,
                                      float[] runningMean, float[] runningVar, double eps, float[] y) {
        int c = shape.channels();
        float[] invstd = new float[c];
        for (int k = 0; k < c; k++) invstd[k] = (float) (1.0 / Math.sqrt(runningVar[k] + eps));
        doNormalize(shape, x, gamma, beta, runningMean, invstd, y);
    }

    @Override
    protected void doNormalize(Shape shape, float[] x, float[] gamma, float[] beta, float[] mean, float[] invstd,
                               float[] y) {
        int c = shape.channels();
        float[] scale = new float[c];
        float[] shift = new float[c];
        for (int k = 0; k < c; k++) {
            double s = (gamma == null ? 1.0 : gamma[k]) * (double) invstd[k];
            scale[k] = (float) s;
            shift[k] = (float) (beta == null ? 0.0 : beta[k]);
        }
        apply(shape, x, mean, scale, shift, y);
    }

    @Override
    protected void doBackwardTraining(Shape shape, float[] x, float[] dy, float[] gamma, float[] saveMean,
                                      float[] saveInvstd, float[] dx, float[] dgamma, float[] dbeta) {
        int c = shape.channels();
        long m = shape.reductionSize();
        double[] mean = new double[c];
        for (int k = 0; k < c; k++) mean[k] = saveMean[k];
        double[] sdy = sums(shape, dy, null, null);
        double[] sdyx = sums(shape, x, mean, dy);
        // dx = g·invstd·dy − g·invstd/M·dbeta − g·invstd³/M·Σdy(x−mean)·(x − mean)  = x·a + (dy·b) + c0
        float[] kdy = new float[c], kx = new float[c], k0 = new float[c];
        for (int k = 0; k < c; k++) {
            double is = saveInvstd[k];
            double g = gamma == null ? 1.0 : gamma[k];
            double dg = sdyx[k] * is;
            kdy[k] = (float) (g * is);
            kx[k] = (float) (-g * is * is * is * sdyx[k] / m);
            k0[k] = (float) (-g * is * sdy[k] / m - kx[k] * mean[k]);
            if (dgamma != null) dgamma[k] = (float) dg;
            if (dbeta != null) dbeta[k] = (float) sdy[k];
        }
        elementwise(shape, x, dy, kx, kdy, k0, dx);
    }

    @Override
    protected void doBackwardInference(Shape shape, float[] x, float[] dy, float[] gamma, float[] runningMean,
                                       float[] runningVar, double eps, float[] dx, float[] dgamma, float[] dbeta) {
        int c = shape.channels();
        double[] mean = new double[c];
        for (int k = 0; k < c; k++) mean[k] = runningMean[k];
        double[] sdy = sums(shape, dy, null, null);
        double[] sdyx = sums(shape, x, mean, dy);
        float[] kdy = new float[c], kx = new float[c], k0 = new float[c];
        for (int k = 0; k < c; k++) {
            double is = 1.0 / Math.sqrt(runningVar[k] + eps);
            double g = gamma == null ? 1.0 : gamma[k];
            kdy[k] = (float) (g * is);
            if (dgamma != null) dgamma[k] = (float) (sdyx[k] * is);
            if (dbeta != null) dbeta[k] = (float) sdy[k];
        }
        elementwise(shape, x, dy, kx, kdy, k0, dx);
    }

    /** out = x·kx + dy·kdy + k0 per channel. */
    private static void elementwise(Shape shape, float[] x, float[] dy, float[] kx, float[] kdy, float[] k0,
                                    float[] out) {
        int c = shape.channels();
        if (shape.layout() == Layout.CHANNELS_FIRST) {
            long outer = shape.outer(), inner = shape.inner();
            for (long n = 0; n < outer; n++) {
                for (int k = 0; k < c; k++) {
                    int base = (int) ((n * c + k) * inner);
                    for (int i = 0; i < inner; i++) out[base + i] = x[base + i] * kx[k] + dy[base + i] * kdy[k] + k0[k];
                }
            }
        } else {
            long rows = shape.rows();
            for (long r = 0; r < rows; r++) {
                int base = (int) (r * c);
                for (int k = 0; k < c; k++) out[base + k] = x[base + k] * kx[k] + dy[base + k] * kdy[k] + k0[k];
            }
        }
    }
}
