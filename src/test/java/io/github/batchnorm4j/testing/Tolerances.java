package io.github.batchnorm4j.testing;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * The tolerances every backend is held to (docs/design.md §6), and the one assertion that applies them.
 *
 * <p>An element passes when {@code |a − e| ≤ atol + rtol·|e|} with {@code atol = rtol · rms(expected)}. Why the
 * absolute part scales with the tensor: a float32 result is built from terms about as large as the tensor's typical
 * element (y = xhat·gamma + beta, dx = k·(M·dy − dbeta − xhat·dgamma)), so its rounding error is a few ulps of that
 * scale, not of the element itself; an element that happens to cancel to nearly zero is therefore judged on the
 * tensor's scale. A fixed atol such as 1e-6 would be meaningless for a tensor whose values are 1e4 (it would demand
 * more than float32 can hold) and far too loose for one whose values are 1e-3. The rms is of the expected (float64)
 * tensor, so a backend cannot loosen its own tolerance by returning garbage.
 *
 * <p>Per-channel sums (dbeta = Σdy, dgamma = Σdy·xhat) are the exception: their rounding error is relative to the sum
 * of the terms' magnitudes, which a cancelling channel's result (or the rms of the vector) does not reflect, so they
 * are judged channel by channel on Σ|t| ({@link #assertChannelSum}).
 */
public final class Tolerances {
    /** Forward outputs (y, saved mean/invstd, running statistics): 1e-5 relative. */
    public static final double FORWARD_RTOL = 1e-5;
    /** Gradients (dx, dgamma, dbeta): 1e-4 relative; the backward formula cancels (M·dy − dbeta − xhat·dgamma). */
    public static final double GRADIENT_RTOL = 1e-4;
    /**
     * The float64 reference's own backward vs central finite differences of its forward: the difference quotient
     * with step h has truncation error O(h²) and rounding error O(eps64/h); with h = 1e-4·scale both are ≈ 1e-8.
     */
    public static final double FINITE_DIFFERENCE_RTOL = 1e-6;

    private Tolerances() {
    }

    /** Asserts a float32 result against the float64 expectation with {@link #FORWARD_RTOL}. */
    public static void assertForward(String tensor, double[] expected, float[] actual) {
        assertClose(tensor, expected, toDouble(actual), FORWARD_RTOL);
    }

    /** Asserts a float32 gradient against the float64 expectation with {@link #GRADIENT_RTOL}. */
    public static void assertGradient(String tensor, double[] expected, float[] actual) {
        assertClose(tensor, expected, toDouble(actual), GRADIENT_RTOL);
    }

    /**
     * Asserts dx with {@link #GRADIENT_RTOL} on the scale of the terms it is computed from
     * ({@link io.github.batchnorm4j.testing.Reference64.Backward#dxScale()}), not of dx itself: training-mode dx is a
     * difference M·dy − dbeta − xhat·dgamma that can cancel almost completely (with M = 2 it is exactly 0 but for eps),
     * and float32 cannot resolve a difference below its rounding of the terms.
     */
    public static void assertDx(Reference64.Backward expected, float[] actual) {
        assertClose("dx", expected.dx(), toDouble(actual), GRADIENT_RTOL, expected.dxScale());
    }

    /**
     * Asserts {@code |a − e| ≤ rtol·rms(e) + rtol·|e|} element-wise; NaN in either array is a mismatch unless both are
     * NaN at the same index. The message names the tensor, the first bad index with expected and actual, the largest
     * error, and how many elements mismatched.
     */
    public static void assertClose(String tensor, double[] expected, double[] actual, double rtol) {
        assertClose(tensor, expected, actual, rtol, rms(expected));
    }

    /** Like {@link #assertClose(String, double[], double[], double)} with atol = rtol·scale for a given scale. */
    public static void assertClose(String tensor, double[] expected, double[] actual, double rtol, double scale) {
        double[] atol = new double[expected.length];
        java.util.Arrays.fill(atol, rtol * scale);
        assertClose(tensor, expected, actual, rtol, atol);
    }

    /**
     * Asserts dbeta = Σdy per channel with {@link #GRADIENT_RTOL} on the scale of its terms: see
     * {@link #assertChannelSum}, with Σ|dy| per channel.
     */
    public static void assertDbeta(Reference64.Backward expected, float[] actual) {
        assertChannelSum("dbeta", expected.dbeta(), actual, expected.sumAbsDy(), expected.m());
    }

    /**
     * Asserts dgamma = Σdy·xhat per channel with {@link #GRADIENT_RTOL} on the scale of its terms: see
     * {@link #assertChannelSum}, with Σ|dy·xhat| per channel.
     */
    public static void assertDgamma(Reference64.Backward expected, float[] actual) {
        assertChannelSum("dgamma", expected.dgamma(), actual, expected.sumAbsDyXhat(), expected.m());
    }

    /**
     * Asserts a per-channel sum of M terms t_i (dbeta = Σdy, dgamma = Σdy·xhat) channel by channel:
     * {@code |a_c − e_c| ≤ rtol·S_c/√M + rtol·|e_c|}, rtol = {@link #GRADIENT_RTOL}, S_c = Σ_i |t_i| of channel c
     * (from the float64 reference, so a backend cannot loosen it).
     *
     * <p>Why S_c. A float32 sum's rounding error is relative to Σ|t|, not to the result: any order of additions whose
     * tree has depth h (h = M − 1 for one running sum, ⌈log2 M⌉ pairwise; the GPU kernels: ⌈M/(256·splits)⌉ terms per
     * thread, then 8 tree levels and the merge of the splits) errs by at most (h + k)·u·S, u = 2^−24, k ≈ 3 for the
     * roundings inside each term (x − mean, ·invstd, ·dy) [Higham, Accuracy and Stability of Numerical Algorithms,
     * §4.2], and, rounding errors being of either sign, in practice by about √(h + k)·u·S [Higham and Mary, SIAM J.
     * Sci. Comput. 41 (2019)]. When a channel's sum cancels (dy alternating ±1: |Σdy| ≪ Σ|dy|), neither the result nor
     * the rms of the dbeta vector is the scale of that error, and a correct float32 backend could fail on some seed.
     *
     * <p>Why /√M. atol = rtol·S/√M = (rtol/(u·√M))·u·S: 1678/√M ulps of S, i.e. 97 at M = 300, 18.5 at M = 8184 (the
     * largest M of the contract matrix), 12 at M = 18432. That covers the worst case (h + k)·u·S for every summation
     * tree with h + k ≤ 1678/√M (the CPU backend: double accumulators, or float groups of at most 16 terms with Σdy
     * compensated, h ≤ 17), and the typical √(h + k)·u·S for h + k ≤ 1678²/M (340 at M = 8184; the GPU kernels have
     * h ≈ 40 there). On random data (terms of either sign) the result itself is ≈ √M·rms(t) ≈ 1.25·S/√M, so atol ≈
     * 0.8·rtol·|typical result|: as strict as the former rtol·rms(vector) on such data, but it does not collapse to 0
     * when a channel cancels.
     *
     * <p>What it still catches: dbeta missing (or counting twice) one element's dy is off by |dy_j| ≈ S/M, against a
     * tolerance of ≈ (1 + 1.25)·rtol·S/√M = 2.25e−4·√M·S/M (49× smaller at M = 8184, 257× at M = 300); dgamma with
     * invstd off by 1e−3 is off by 1e−3·|dgamma| ≈ 1.25e−3·S/√M against ≈ 2.25e−4·S/√M (5.6×). A relative error of
     * 1e−3 goes unseen only in a channel whose |dgamma| happens to be below ≈ 0.11·S/√M, which is the price of not
     * demanding of a cancelling sum what float32 cannot give (no channel of the contract matrix escaped a planted
     * dbeta bug; one case in 114 escaped the planted dgamma bug, a single channel with small |dgamma|).
     */
    public static void assertChannelSum(String tensor, double[] expected, float[] actual, double[] sumAbs, long m) {
        double[] atol = new double[expected.length];
        for (int c = 0; c < atol.length; c++) atol[c] = GRADIENT_RTOL * sumAbs[c] / Math.sqrt(m);
        assertClose(tensor, expected, toDouble(actual), GRADIENT_RTOL, atol);
    }

    /**
     * Asserts {@code |a − e| ≤ atol[i] + rtol·|e|} element-wise with a per-element atol; NaN in either array is a
     * mismatch unless both are NaN at the same index.
     */
    public static void assertClose(String tensor, double[] expected, double[] actual, double rtol, double[] atol) {
        if (expected.length != actual.length) {
            fail(tensor + ": expected " + expected.length + " elements, got " + actual.length);
        }
        int bad = 0;
        int first = -1;
        double worst = 0;
        int worstAt = -1;
        for (int i = 0; i < expected.length; i++) {
            double e = expected[i];
            double a = actual[i];
            boolean ok;
            if (Double.isNaN(e) || Double.isNaN(a)) {
                ok = Double.isNaN(e) && Double.isNaN(a);
            } else if (Double.isInfinite(e) || Double.isInfinite(a)) {
                ok = e == a;
            } else {
                double err = Math.abs(a - e);
                ok = err <= atol[i] + rtol * Math.abs(e);
                double scaled = err / (atol[i] + rtol * Math.abs(e) + Double.MIN_VALUE);
                if (scaled > worst) {
                    worst = scaled;
                    worstAt = i;
                }
            }
            if (!ok) {
                if (first < 0) first = i;
                bad++;
            }
        }
        if (bad > 0) {
            fail(String.format("%s: %d of %d elements mismatch (rtol %.1e, atol %.3e at the first bad index); first bad"
                            + " index %d: expected %s, actual %s; worst error is %.3g times the tolerance at index %d",
                    tensor, bad, expected.length, rtol, atol[first], first, expected[first], actual[first], worst,
                    worstAt));
        }
    }

    /** Root mean square of the finite elements (1 for an empty or all-zero tensor, so atol never becomes 0 by accident). */
    public static double rms(double[] v) {
        double s = 0;
        int n = 0;
        for (double d : v) {
            if (Double.isFinite(d)) {
                s += d * d;
                n++;
            }
        }
        return n == 0 || s == 0 ? 1.0 : Math.sqrt(s / n);
    }

    /** Widens a float array. */
    public static double[] toDouble(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) d[i] = a[i];
        return d;
    }
}
