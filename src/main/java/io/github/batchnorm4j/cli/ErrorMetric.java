package io.github.batchnorm4j.cli;

/**
 * The error measure of {@code check} and {@code bench}'s validation: the largest elementwise
 * {@code |actual − expected| / max(|expected|, 1)}, i.e. relative error where |expected| ≥ 1 and absolute error below
 * (values near zero would make a pure relative error meaningless). NaN or infinite actual values where the expected
 * value is finite give {@code NaN}, which fails every {@code err <= tol} comparison.
 */
public final class ErrorMetric {

    private ErrorMetric() {
    }

    /** Max relative error of float32 results against float64 expectations. */
    public static double maxRelativeError(float[] actual, double[] expected) {
        if (actual.length != expected.length) {
            throw new IllegalArgumentException("actual: expected " + expected.length + " values, got " + actual.length);
        }
        double worst = 0;
        for (int i = 0; i < actual.length; i++) {
            double e = expected[i];
            double err = Math.abs(actual[i] - e) / Math.max(Math.abs(e), 1.0);
            if (!Double.isFinite(err)) return Double.NaN;
            worst = Math.max(worst, err);
        }
        return worst;
    }

    /**
     * The same measure between two float32 results neither of which is the reference (two backends in
     * {@code check}'s pairwise table): {@code |a − b| / max(|a|, |b|, 1)}, symmetric in a and b. NaN or infinite on
     * either side gives {@code NaN}.
     */
    public static double maxPairwiseError(float[] a, float[] b) {
        if (a.length != b.length) {
            throw new IllegalArgumentException("b: expected " + a.length + " values, got " + b.length);
        }
        double worst = 0;
        for (int i = 0; i < a.length; i++) {
            double scale = Math.max(Math.max(Math.abs((double) a[i]), Math.abs((double) b[i])), 1.0);
            double err = Math.abs((double) a[i] - b[i]) / scale;
            if (!Double.isFinite(err) || !Double.isFinite(scale)) return Double.NaN;
            worst = Math.max(worst, err);
        }
        return worst;
    }

    /** Max relative error of float32 results against float32 results of another backend. */
    public static double maxRelativeError(float[] actual, float[] expected) {
        double[] e = new double[expected.length];
        for (int i = 0; i < e.length; i++) e[i] = expected[i];
        return maxRelativeError(actual, e);
    }
}
