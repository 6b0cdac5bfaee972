package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;

/**
 * The tests' own float64 batch norm, independent of {@link Float64Check} (which is under test): it gathers each
 * channel's flat indices from the logical coordinates (n, c, s) and applies DESIGN §1's formulas channel by channel.
 */
final class Ref64 {

    private Ref64() {
    }

    /** Flat indices of channel c's M values, from (n, c, s): channels-first (n·C + c)·S + s, channels-last (n·S + s)·C + c. */
    static int[] indicesOf(Shape shape, int c) {
        int channels = shape.channels();
        int n = (int) shape.batch();
        int spatial = (int) shape.spatialSize();
        int[] idx = new int[n * spatial];
        int k = 0;
        for (int b = 0; b < n; b++) {
            for (int s = 0; s < spatial; s++) {
                idx[k++] = shape.layout() == Layout.CHANNELS_FIRST ? (b * channels + c) * spatial + s
                        : (b * spatial + s) * channels + c;
            }
        }
        return idx;
    }

    static double g(float[] gamma, int c) {
        return gamma == null ? 1.0 : gamma[c];
    }

    static double b(float[] beta, int c) {
        return beta == null ? 0.0 : beta[c];
    }

    /** Mean of channel c. */
    static double mean(float[] x, int[] idx) {
        double s = 0;
        for (int i : idx) s += x[i];
        return s / idx.length;
    }

    /** Biased variance of channel c (two-pass). */
    static double var(float[] x, int[] idx) {
        double mu = mean(x, idx);
        double s = 0;
        for (int i : idx) s += (x[i] - mu) * (x[i] - mu);
        return s / idx.length;
    }

    /** Outputs of a training forward: y and per-channel mean, invstd, updated running mean/var (m = momentum). */
    static double[][] forwardTrain(Shape shape, float[] x, float[] gamma, float[] beta, double eps,
                                   float[] rm, float[] rv, double m) {
        int channels = shape.channels();
        double[] y = new double[x.length];
        double[] mean = new double[channels];
        double[] invstd = new double[channels];
        double[] nrm = new double[channels];
        double[] nrv = new double[channels];
        for (int c = 0; c < channels; c++) {
            int[] idx = indicesOf(shape, c);
            mean[c] = mean(x, idx);
            double v = var(x, idx);
            invstd[c] = 1 / Math.sqrt(v + eps);
            for (int i : idx) y[i] = (x[i] - mean[c]) * invstd[c] * g(gamma, c) + b(beta, c);
            if (rm != null) {
                nrm[c] = (1 - m) * rm[c] + m * mean[c];
                nrv[c] = (1 - m) * rv[c] + m * v * idx.length / (idx.length - 1);
            }
        }
        return new double[][] {y, mean, invstd, nrm, nrv};
    }

    /** Eval forward with running statistics. */
    static double[] forwardEval(Shape shape, float[] x, float[] gamma, float[] beta, float[] rm, float[] rv,
                                double eps) {
        double[] y = new double[x.length];
        for (int c = 0; c < shape.channels(); c++) {
            double inv = 1 / Math.sqrt(rv[c] + eps);
            for (int i : indicesOf(shape, c)) y[i] = ((double) x[i] - rm[c]) * inv * g(gamma, c) + b(beta, c);
        }
        return y;
    }

    /** Training backward from the exact statistics of x: {dx, dgamma, dbeta}. */
    static double[][] backwardTrain(Shape shape, float[] x, float[] dy, float[] gamma, double eps) {
        int channels = shape.channels();
        double[] dx = new double[x.length];
        double[] dg = new double[channels];
        double[] db = new double[channels];
        for (int c = 0; c < channels; c++) {
            int[] idx = indicesOf(shape, c);
            double mu = mean(x, idx);
            double inv = 1 / Math.sqrt(var(x, idx) + eps);
            for (int i : idx) {
                db[c] += dy[i];
                dg[c] += dy[i] * (x[i] - mu) * inv;
            }
            double m = idx.length;
            for (int i : idx) {
                double xhat = (x[i] - mu) * inv;
                dx[i] = g(gamma, c) * inv / m * (m * dy[i] - db[c] - xhat * dg[c]);
            }
        }
        return new double[][] {dx, dg, db};
    }

    /** Eval backward with frozen running statistics: {dx, dgamma, dbeta}. */
    static double[][] backwardEval(Shape shape, float[] x, float[] dy, float[] gamma, float[] rm, float[] rv,
                                   double eps) {
        int channels = shape.channels();
        double[] dx = new double[x.length];
        double[] dg = new double[channels];
        double[] db = new double[channels];
        for (int c = 0; c < channels; c++) {
            double inv = 1 / Math.sqrt(rv[c] + eps);
            for (int i : indicesOf(shape, c)) {
                db[c] += dy[i];
                dg[c] += (double) dy[i] * ((double) x[i] - rm[c]) * inv;
                dx[i] = dy[i] * g(gamma, c) * inv;
            }
        }
        return new double[][] {dx, dg, db};
    }
}
