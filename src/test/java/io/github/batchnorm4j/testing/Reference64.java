package io.github.batchnorm4j.testing;

import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;

/**
 * The float64 reference: the plain formulas of docs/design.md §1, written to be obvious, never optimized, and never
 * shared with the code it checks. Every loop walks one channel's M values through {@link #index}, so the only
 * layout-specific code is that one function.
 *
 * <p>gamma == null means gamma = 1, beta == null means beta = 0 (affine off). The formulas take double arrays (the
 * finite-difference check perturbs inputs in double); the float32 overloads at the end widen exactly and delegate.
 * Nothing is rounded back to float32.
 */
public final class Reference64 {
    private Reference64() {
    }

    /** Results of a training-mode forward. The running arrays are null when no running statistics were given. */
    public record Forward(double[] y, double[] mean, double[] invstd, double[] var,
                          double[] runningMean, double[] runningVar) {
    }

    /**
     * Results of a backward pass. {@code dxScale} is the rms of |gamma·invstd·dy| over all elements: the size of the
     * terms dx is computed from, which is what a float32 result's rounding error is proportional to.
     * {@code sumAbsDy} and {@code sumAbsDyXhat} are, per channel, Σ|dy| and Σ|dy·xhat| over the channel's M values: the
     * size of the terms dbeta and dgamma are sums of, which is what a float32 sum's rounding error is proportional to
     * (see {@link Tolerances#assertChannelSum}). {@code m} is M, the number of terms per channel.
     */
    public record Backward(double[] dx, double[] dgamma, double[] dbeta, double dxScale,
                           double[] sumAbsDy, double[] sumAbsDyXhat, long m) {
    }

    /**
     * The flat offset of the j-th value (0 ≤ j &lt; M) of channel c.
     * channels-first [N, C, S]: j = n·S + s, offset (n·C + c)·S + s. channels-last [rows, C]: j = row, offset j·C + c.
     */
    public static int index(Shape shape, int c, long j) {
        long channels = shape.channels();
        if (shape.layout() == Layout.CHANNELS_FIRST) {
            long inner = shape.inner();
            long n = j / inner;
            long s = j % inner;
            return Math.toIntExact((n * channels + c) * inner + s);
        }
        return Math.toIntExact(j * channels + c);
    }

    /** Per-channel mean Σx/M. */
    public static double[] mean(Shape shape, double[] x) {
        int channels = shape.channels();
        long m = shape.reductionSize();
        double[] mean = new double[channels];
        for (int c = 0; c < channels; c++) {
            double sum = 0;
            for (long j = 0; j < m; j++) sum += x[index(shape, c, j)];
            mean[c] = sum / m;
        }
        return mean;
    }

    /** Per-channel M2 = Σ(x − mean)² (two-pass, exact enough in double for any data we test). */
    public static double[] m2(Shape shape, double[] x, double[] mean) {
        int channels = shape.channels();
        long m = shape.reductionSize();
        double[] m2 = new double[channels];
        for (int c = 0; c < channels; c++) {
            double sum = 0;
            for (long j = 0; j < m; j++) {
                double d = x[index(shape, c, j)] - mean[c];
                sum += d * d;
            }
            m2[c] = sum;
        }
        return m2;
    }

    /**
     * Training-mode forward: mean, biased var, invstd = 1/sqrt(var + eps), y = (x − mean)·invstd·gamma + beta, and when
     * runningMean/runningVar are given: running ← (1 − m)·running + m·batch with the unbiased var·M/(M − 1).
     */
    public static Forward forwardTraining(Shape shape, double[] x, double[] gamma, double[] beta, double eps,
                                          double[] runningMean, double[] runningVar, double momentum) {
        int channels = shape.channels();
        long m = shape.reductionSize();
        double[] mean = mean(shape, x);
        double[] m2 = m2(shape, x, mean);
        double[] var = new double[channels];
        double[] invstd = new double[channels];
        for (int c = 0; c < channels; c++) {
            var[c] = m2[c] / m;
            invstd[c] = 1.0 / Math.sqrt(var[c] + eps);
        }
        double[] y = normalize(shape, x, gamma, beta, mean, invstd);
        double[] newMean = null;
        double[] newVar = null;
        if (runningMean != null) {
            newMean = new double[channels];
            newVar = new double[channels];
            for (int c = 0; c < channels; c++) {
                double unbiased = var[c] * m / (m - 1);
                newMean[c] = (1 - momentum) * runningMean[c] + momentum * mean[c];
                newVar[c] = (1 - momentum) * runningVar[c] + momentum * unbiased;
            }
        }
        return new Forward(y, mean, invstd, var, newMean, newVar);
    }

    /** Eval-mode forward: y = (x − runningMean)/sqrt(runningVar + eps)·gamma + beta. */
    public static double[] forwardEval(Shape shape, double[] x, double[] gamma, double[] beta,
                                       double[] runningMean, double[] runningVar, double eps) {
        int channels = shape.channels();
        double[] mean = new double[channels];
        double[] invstd = new double[channels];
        for (int c = 0; c < channels; c++) {
            mean[c] = runningMean[c];
            invstd[c] = 1.0 / Math.sqrt(runningVar[c] + eps);
        }
        return normalize(shape, x, gamma, beta, mean, invstd);
    }

    /** y = (x − mean)·invstd·gamma + beta. */
    public static double[] normalize(Shape shape, double[] x, double[] gamma, double[] beta, double[] mean,
                                     double[] invstd) {
        int channels = shape.channels();
        long m = shape.reductionSize();
        double[] y = new double[x.length];
        for (int c = 0; c < channels; c++) {
            for (long j = 0; j < m; j++) {
                int i = index(shape, c, j);
                y[i] = (x[i] - mean[c]) * invstd[c] * gammaOf(gamma, c) + betaOf(beta, c);
            }
        }
        return y;
    }

    /**
     * Training-mode backward with the given (saved) mean and invstd: xhat = (x − mean)·invstd, dbeta = Σdy,
     * dgamma = Σdy·xhat, dx = gamma·invstd/M·(M·dy − dbeta − xhat·dgamma).
     */
    public static Backward backwardTraining(Shape shape, double[] x, double[] dy, double[] gamma,
                                            double[] mean, double[] invstd) {
        int channels = shape.channels();
        long m = shape.reductionSize();
        double[] dx = new double[x.length];
        double[] dgamma = new double[channels];
        double[] dbeta = new double[channels];
        double[] sumAbsDy = new double[channels];
        double[] sumAbsDyXhat = new double[channels];
        for (int c = 0; c < channels; c++) {
            double sumDy = 0;
            double sumDyXhat = 0;
            for (long j = 0; j < m; j++) {
                int i = index(shape, c, j);
                double xhat = (x[i] - mean[c]) * invstd[c];
                sumDy += dy[i];
                sumDyXhat += dy[i] * xhat;
                sumAbsDy[c] += Math.abs(dy[i]);
                sumAbsDyXhat[c] += Math.abs(dy[i] * xhat);
            }
            dbeta[c] = sumDy;
            dgamma[c] = sumDyXhat;
            for (long j = 0; j < m; j++) {
                int i = index(shape, c, j);
                double xhat = (x[i] - mean[c]) * invstd[c];
                dx[i] = gammaOf(gamma, c) * invstd[c] / m * (m * dy[i] - sumDy - xhat * sumDyXhat);
            }
        }
        return new Backward(dx, dgamma, dbeta, termScale(shape, dy, gamma, invstd), sumAbsDy, sumAbsDyXhat, m);
    }


    /**
     * Eval-mode backward with frozen statistics: invstd = 1/sqrt(runningVar + eps), dx = dy·gamma·invstd,
     * dgamma = Σdy·(x − runningMean)·invstd, dbeta = Σdy.
     */
    public static Backward backwardEval(Shape shape, double[] x, double[] dy, double[] gamma,
                                        double[] runningMean, double[] runningVar, double eps) {
        int channels = shape.channels();
        long m = shape.reductionSize();
        double[] dx = new double[x.length];
        double[] dgamma = new double[channels];
        double[] dbeta = new double[channels];
        double[] invstds = new double[channels];
        double[] sumAbsDy = new double[channels];
        double[] sumAbsDyXhat = new double[channels];
        for (int c = 0; c < channels; c++) {
            double invstd = 1.0 / Math.sqrt(runningVar[c] + eps);
            invstds[c] = invstd;
            for (long j = 0; j < m; j++) {
                int i = index(shape, c, j);
                double xhat = (x[i] - runningMean[c]) * invstd;
                dbeta[c] += dy[i];
                dgamma[c] += dy[i] * xhat;
                sumAbsDy[c] += Math.abs(dy[i]);
                sumAbsDyXhat[c] += Math.abs(dy[i] * xhat);
                dx[i] = dy[i] * gammaOf(gamma, c) * invstd;
            }
        }
        return new Backward(dx, dgamma, dbeta, termScale(shape, dy, gamma, invstds), sumAbsDy, sumAbsDyXhat, m);
    }

    /** rms over all elements of gamma·invstd·dy. */
    private static double termScale(Shape shape, double[] dy, double[] gamma, double[] invstd) {
        double sum = 0;
        long m = shape.reductionSize();
        for (int c = 0; c < shape.channels(); c++) {
            for (long j = 0; j < m; j++) {
                double t = gammaOf(gamma, c) * invstd[c] * dy[index(shape, c, j)];
                if (Double.isFinite(t)) sum += t * t;
            }
        }
        double rms = Math.sqrt(sum / dy.length);
        return rms > 0 ? rms : 1.0;
    }

    // ---- fused batch norm + (add) + ReLU -----------------------------------------------------------------------

    /** The pre-activation v = bn + z of the fused operations (z == null: no residual), in double. */
    public static double[] preActivation(double[] bn, double[] z) {
        double[] v = new double[bn.length];
        for (int i = 0; i < bn.length; i++) v[i] = z == null ? bn[i] : bn[i] + z[i];
        return v;
    }

    /** relu(v): v where v &gt; 0 or v is NaN, else 0 (the fused operations' ReLU). */
    public static double[] relu(double[] v) {
        double[] y = new double[v.length];
        for (int i = 0; i < v.length; i++) y[i] = v[i] <= 0 ? 0 : v[i];
        return y;
    }

    /** The gradient through the ReLU: dy where the mask says the element passed, else 0. */
    public static double[] gate(double[] dy, boolean[] passed) {
        double[] g = new double[dy.length];
        for (int i = 0; i < dy.length; i++) g[i] = passed[i] ? dy[i] : 0;
        return g;
    }

    /** The mask's bits one boolean per element (bit i % 32 of word i / 32). */
    public static boolean[] bits(int[] mask, int elements) {
        boolean[] b = new boolean[elements];
        for (int i = 0; i < elements; i++) b[i] = (mask[i / 32] >>> (i % 32) & 1) == 1;
        return b;
    }

    // ---- float32 inputs (what backends take), widened exactly ----------------------------------------------------

    public static double[] mean(Shape shape, float[] x) {
        return mean(shape, wide(x));
    }

    public static double[] m2(Shape shape, float[] x, double[] mean) {
        return m2(shape, wide(x), mean);
    }

    public static Forward forwardTraining(Shape shape, float[] x, float[] gamma, float[] beta, double eps,
                                          float[] runningMean, float[] runningVar, double momentum) {
        return forwardTraining(shape, wide(x), wide(gamma), wide(beta), eps, wide(runningMean), wide(runningVar),
                momentum);
    }

    public static double[] forwardEval(Shape shape, float[] x, float[] gamma, float[] beta,
                                       float[] runningMean, float[] runningVar, double eps) {
        return forwardEval(shape, wide(x), wide(gamma), wide(beta), wide(runningMean), wide(runningVar), eps);
    }

    public static double[] normalize(Shape shape, float[] x, float[] gamma, float[] beta, double[] mean,
                                     double[] invstd) {
        return normalize(shape, wide(x), wide(gamma), wide(beta), mean, invstd);
    }

    public static Backward backwardTraining(Shape shape, float[] x, float[] dy, float[] gamma,
                                            double[] mean, double[] invstd) {
        return backwardTraining(shape, wide(x), wide(dy), wide(gamma), mean, invstd);
    }

    /** Training-mode backward with saved statistics given as float32 (what a backend's forward saved). */
    public static Backward backwardTraining(Shape shape, float[] x, float[] dy, float[] gamma,
                                            float[] saveMean, float[] saveInvstd) {
        return backwardTraining(shape, wide(x), wide(dy), wide(gamma), wide(saveMean), wide(saveInvstd));
    }

    /**
     * Training-mode backward with the statistics of x itself (what {@code backward} computes when no saved statistics
     * are given): mean and invstd = 1/sqrt(var + eps) as {@link #forwardTraining} finds them.
     */
    public static Backward backwardTraining(Shape shape, float[] x, float[] dy, float[] gamma, double eps) {
        Forward f = forwardTraining(shape, x, null, null, eps, null, null, 0);
        return backwardTraining(shape, wide(x), wide(dy), wide(gamma), f.mean(), f.invstd());
    }

    public static Backward backwardEval(Shape shape, float[] x, float[] dy, float[] gamma,
                                        float[] runningMean, float[] runningVar, double eps) {
        return backwardEval(shape, wide(x), wide(dy), wide(gamma), wide(runningMean), wide(runningVar), eps);
    }

    /** Widens exactly; null stays null (affine off, no running statistics). */
    public static double[] wide(float[] a) {
        if (a == null) return null;
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) d[i] = a[i];
        return d;
    }

    private static double gammaOf(double[] gamma, int c) {
        return gamma == null ? 1.0 : gamma[c];
    }

    private static double betaOf(double[] beta, int c) {
        return beta == null ? 0.0 : beta[c];
    }
}
