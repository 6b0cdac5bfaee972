package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;

/**
 * The float64 computation {@code batchnorm4j check} and {@code bench} compare backends against: docs/design.md §1's
 * formulas evaluated in double, written to be read rather than to be fast (two passes over x, one element at a time).
 *
 * <p>It is deliberately independent of every backend and of the test-scope reference: it walks memory by computing
 * each element's channel from its flat index (channels-first: {@code (i / inner) % C}; channels-last: {@code i % C}).
 * Inputs are float32 as the backends see them; gamma/beta null mean 1/0. Nothing passed in is modified.
 */
public final class Float64Check {

    private Float64Check() {
    }

    /**
     * Results of the training-mode forward.
     *
     * @param y           normalized output
     * @param mean        batch mean per channel
     * @param invstd      1/sqrt(biased variance + eps) per channel
     * @param var         biased batch variance per channel
     * @param runningMean updated running mean (null when none was given)
     * @param runningVar  updated running variance with the unbiased batch variance (null when none was given)
     */
    public record Forward(double[] y, double[] mean, double[] invstd, double[] var, double[] runningMean,
                          double[] runningVar) {
    }

    /**
     * Gradients of the backward pass.
     *
     * @param dx     gradient w.r.t. x
     * @param dgamma gradient w.r.t. gamma (Σ dy·xhat)
     * @param dbeta  gradient w.r.t. beta (Σ dy)
     */
    public record Gradients(double[] dx, double[] dgamma, double[] dbeta) {
    }

    /** The channel that flat element {@code i} belongs to. */
    static int channelOf(Shape shape, long i) {
        int c = shape.channels();
        if (shape.layout() == Layout.CHANNELS_LAST) return (int) (i % c);
        return (int) ((i / shape.inner()) % c);
    }

    /** Batch mean per channel: Σx / M. */
    static double[] mean(Shape shape, float[] x) {
        double[] sum = new double[shape.channels()];
        for (int i = 0; i < x.length; i++) sum[channelOf(shape, i)] += x[i];
        double m = shape.reductionSize();
        for (int c = 0; c < sum.length; c++) sum[c] /= m;
        return sum;
    }

    /** Biased variance per channel: Σ(x − mean)² / M, a second pass around the exact mean (never E[x²] − E[x]²). */
    static double[] variance(Shape shape, float[] x, double[] mean) {
        double[] sq = new double[shape.channels()];
        for (int i = 0; i < x.length; i++) {
            int c = channelOf(shape, i);
            double d = x[i] - mean[c];
            sq[c] += d * d;
        }
        double m = shape.reductionSize();
        for (int c = 0; c < sq.length; c++) sq[c] /= m;
        return sq;
    }

    private static double at(float[] a, int c, double absent) {
        return a == null ? absent : a[c];
    }

    /** y = (x − mean)·invstd·gamma + beta for given per-channel mean and invstd. */
    static double[] apply(Shape shape, float[] x, float[] gamma, float[] beta, double[] mean, double[] invstd) {
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            int c = channelOf(shape, i);
            y[i] = (x[i] - mean[c]) * invstd[c] * at(gamma, c, 1) + at(beta, c, 0);
        }
        return y;
    }

    /**
     * Training-mode forward with batch statistics; running statistics (when given, both or neither) are updated with
     * momentum m: running ← (1 − m)·running + m·batch, the variance unbiased (·M/(M − 1)).
     */
    public static Forward forwardTraining(Shape shape, float[] x, float[] gamma, float[] beta, double eps,
                                          float[] runningMean, float[] runningVar, double momentum) {
        double[] mean = mean(shape, x);
        double[] var = variance(shape, x, mean);
        int channels = shape.channels();
        double[] invstd = new double[channels];
        for (int c = 0; c < channels; c++) invstd[c] = 1.0 / Math.sqrt(var[c] + eps);
        double[] y = apply(shape, x, gamma, beta, mean, invstd);
        double[] rm = null;
        double[] rv = null;
        if (runningMean != null) {
            double m = shape.reductionSize();
            rm = new double[channels];
            rv = new double[channels];
            for (int c = 0; c < channels; c++) {
                rm[c] = (1 - momentum) * runningMean[c] + momentum * mean[c];
                rv[c] = (1 - momentum) * runningVar[c] + momentum * var[c] * m / (m - 1);
            }
        }
        return new Forward(y, mean, invstd, var, rm, rv);
    }

    /** Eval-mode forward with running statistics: y = (x − rm)/sqrt(rv + eps)·gamma + beta. */
    public static double[] forwardInference(Shape shape, float[] x, float[] gamma, float[] beta, float[] runningMean,
                                            float[] runningVar, double eps) {
        int channels = shape.channels();
        double[] mean = new double[channels];
        double[] invstd = new double[channels];
        for (int c = 0; c < channels; c++) {
            mean[c] = runningMean[c]; // double: x − mean is then computed in double
            invstd[c] = 1.0 / Math.sqrt(runningVar[c] + eps);
        }
        return apply(shape, x, gamma, beta, mean, invstd);
    }

    /**
     * Training-mode backward with the exact batch statistics of x (mean and invstd recomputed in double):
     * dbeta = Σdy, dgamma = Σ dy·xhat, dx = gamma·invstd/M·(M·dy − dbeta − xhat·dgamma).
     */
    public static Gradients backwardTraining(Shape shape, float[] x, float[] dy, float[] gamma, double eps) {
        double[] mean = mean(shape, x);
        double[] var = variance(shape, x, mean);
        int channels = shape.channels();
        double[] invstd = new double[channels];
        for (int c = 0; c < channels; c++) invstd[c] = 1.0 / Math.sqrt(var[c] + eps);
        double[] dbeta = new double[channels];
        double[] dgamma = new double[channels];
        for (int i = 0; i < x.length; i++) {
            int c = channelOf(shape, i);
            double xhat = (x[i] - mean[c]) * invstd[c];
            dbeta[c] += dy[i];
            dgamma[c] += dy[i] * xhat;
        }
        double m = shape.reductionSize();
        double[] dx = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            int c = channelOf(shape, i);
            double xhat = (x[i] - mean[c]) * invstd[c];
            dx[i] = at(gamma, c, 1) * invstd[c] / m * (m * dy[i] - dbeta[c] - xhat * dgamma[c]);
        }
        return new Gradients(dx, dgamma, dbeta);
    }

    /**
     * Eval-mode backward with frozen running statistics: dx = dy·gamma/sqrt(rv + eps),
     * dgamma = Σ dy·(x − rm)/sqrt(rv + eps), dbeta = Σdy.
     */
    public static Gradients backwardInference(Shape shape, float[] x, float[] dy, float[] gamma, float[] runningMean,
                                              float[] runningVar, double eps) {
        int channels = shape.channels();
        double[] dbeta = new double[channels];
        double[] dgamma = new double[channels];
        double[] dx = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            int c = channelOf(shape, i);
            double invstd = 1.0 / Math.sqrt(runningVar[c] + eps);
            dbeta[c] += dy[i];
            dgamma[c] += (double) dy[i] * ((double) x[i] - runningMean[c]) * invstd; // in double: float − float would round
            dx[i] = dy[i] * at(gamma, c, 1) * invstd;
        }
        return new Gradients(dx, dgamma, dbeta);
    }

    // ---- fused batch norm + (add) + ReLU ----------------------------------------------------------------------

    /** v = bn + z in double (z null: none): the pre-activation of the fused operations. */
    public static double[] preActivation(double[] bn, float[] z) {
        double[] v = bn.clone();
        if (z != null) for (int i = 0; i < v.length; i++) v[i] += z[i];
        return v;
    }

    /** relu(v) = v where !(v &lt;= 0), else 0. */
    public static double[] relu(double[] v) {
        double[] y = new double[v.length];
        for (int i = 0; i < v.length; i++) y[i] = v[i] <= 0 ? 0 : v[i];
        return y;
    }

    /** The ReLU mask of v as bits (bit i % 32 of word i / 32 is !(v_i &lt;= 0)). */
    public static int[] mask(double[] v) {
        int[] m = new int[(v.length + 31) / 32];
        for (int i = 0; i < v.length; i++) if (!(v[i] <= 0)) m[i / 32] |= 1 << (i % 32);
        return m;
    }

    /** dy where the mask bit is 1, else 0 (exact in float). */
    public static float[] gate(float[] dy, int[] mask) {
        float[] g = new float[dy.length];
        for (int i = 0; i < dy.length; i++) g[i] = (mask[i / 32] >>> (i % 32) & 1) == 1 ? dy[i] : 0f;
        return g;
    }
}
