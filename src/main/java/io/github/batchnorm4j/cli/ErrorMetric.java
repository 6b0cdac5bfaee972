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

    /**
     * The error of a ReLU mask (bits as 0/1 floats) against the float64 pre-activation v: the largest
     * {@code |v_i| / max(|v_i|, 1)} over the elements whose bit disagrees with the sign of v ({@code !(v <= 0)}). A
     * float32 backend may round a v within its rounding error of 0 to either side, and such a flip moves y by |v|,
     * so the mask is held to the same bound as y; a wrong bit where v is clearly away from 0 scores about 1.
     */
    public static double maskError(float[] bits, double[] v) {
        if (bits.length != v.length) {
            throw new IllegalArgumentException("bits: expected " + v.length + " values, got " + bits.length);
        }
        double worst = 0;
        for (int i = 0; i < bits.length; i++) {
            if (bits[i] != 0 && bits[i] != 1) return Double.NaN;
            if ((bits[i] == 1) != !(v[i] <= 0)) worst = Math.max(worst, Math.abs(v[i]) / Math.max(Math.abs(v[i]), 1));
        }
        return worst;
    }

    /** {@link #maskError} between two backends' masks: the largest such score where they disagree. */
    public static double maskPairwiseError(float[] a, float[] b, double[] v) {
        double worst = 0;
        for (int i = 0; i < a.length; i++) {
            if (a[i] != b[i]) worst = Math.max(worst, Double.isFinite(v[i]) ? Math.min(Math.abs(v[i]), 1) : 1);
        }
        return worst;
    }
}
