package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.testing.Tolerances;

/** The plain float64 formulas of DESIGN §1, indexed from the Shape (not from any stride logic under test). */
final class Reference {
    private Reference() {
    }

    /** Flat indices of channel c's M values. */
    static int[] indices(Shape s, int c) {
        int C = s.channels();
        int m = (int) s.reductionSize();
        int[] out = new int[m];
        if (s.layout() == Layout.CHANNELS_FIRST) {
            int inner = (int) s.inner();
            int i = 0;
            for (int n = 0; n < s.batch(); n++)
                for (int k = 0; k < inner; k++) out[i++] = (n * C + c) * inner + k;
        } else {
            for (int r = 0; r < m; r++) out[r] = r * C + c;
        }
        return out;
    }

    static double mean(Shape s, float[] x, int c) {
        double sum = 0;
        for (int i : indices(s, c)) sum += x[i];
        return sum / s.reductionSize();
    }

    static double biasedVar(Shape s, float[] x, int c) {
        double mu = mean(s, x, c);
        double sum = 0;
        for (int i : indices(s, c)) sum += (x[i] - mu) * (x[i] - mu);
        return sum / s.reductionSize();
    }

    static double[] forwardTrainY(Shape s, float[] x, float[] gamma, float[] beta, double eps) {
        double[] y = new double[x.length];
        for (int c = 0; c < s.channels(); c++) {
            double mu = mean(s, x, c);
            double invstd = 1 / Math.sqrt(biasedVar(s, x, c) + eps);
            double g = gamma == null ? 1 : gamma[c];
            double b = beta == null ? 0 : beta[c];
            for (int i : indices(s, c)) y[i] = (x[i] - mu) * invstd * g + b;
        }
        return y;
    }

    static double[] evalY(Shape s, float[] x, float[] gamma, float[] beta, float[] rm, float[] rv, double eps) {
        double[] y = new double[x.length];
        for (int c = 0; c < s.channels(); c++) {
            double g = gamma == null ? 1 : gamma[c];
            double b = beta == null ? 0 : beta[c];
            for (int i : indices(s, c)) y[i] = (x[i] - rm[c]) / Math.sqrt(rv[c] + eps) * g + b;
        }
        return y;
    }

    /** Returns {dx (length n), dgamma (C), dbeta (C)} concatenated in three arrays. */
    static double[][] backwardTrain(Shape s, float[] x, float[] dy, float[] gamma, double eps) {
        double[] dx = new double[x.length];
        double[] dg = new double[s.channels()];
        double[] db = new double[s.channels()];
        long m = s.reductionSize();
        for (int c = 0; c < s.channels(); c++) {
            double mu = mean(s, x, c);
            double invstd = 1 / Math.sqrt(biasedVar(s, x, c) + eps);
            for (int i : indices(s, c)) {
                db[c] += dy[i];
                dg[c] += dy[i] * (x[i] - mu) * invstd;
            }
            double g = gamma == null ? 1 : gamma[c];
            for (int i : indices(s, c)) {
                double xhat = (x[i] - mu) * invstd;
                dx[i] = g * invstd / m * (m * dy[i] - db[c] - xhat * dg[c]);
            }
        }
        return new double[][] {dx, dg, db};
    }

    /**
     * Fails unless |actual − expected| ≤ tol + tol·|expected| everywhere ({@link Tolerances#assertClose} with
     * atol = rtol = tol), naming the first bad element and how many mismatched.
     */
    static void assertClose(String what, double[] expected, float[] actual, double tol) {
        Tolerances.assertClose(what, expected, Tolerances.toDouble(actual), tol, 1.0);
    }
}
