package io.github.batchnorm4j.testing;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * The tolerances every backend is held to (DESIGN §6), and the one assertion that applies them.
 *
 * <p>An element passes when {@code |a − e| ≤ atol + rtol·|e|} with {@code atol = rtol · rms(expected)}. Why the
 * absolute part scales with the tensor: a float32 result is built from terms about as large as the tensor's typical
 * element (y = xhat·gamma + beta, dx = k·(M·dy − dbeta − xhat·dgamma)), so its rounding error is a few ulps of that
 * scale, not of the element itself; an element that happens to cancel to nearly zero is therefore judged on the
 * tensor's scale. A fixed atol such as 1e-6 would be meaningless for a tensor whose values are 1e4 (it would demand
 * more than float32 can hold) and far too loose for one whose values are 1e-3. The rms is of the expected (float64)
 * tensor, so a backend cannot loosen its own tolerance by returning garbage.
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
        if (expected.length != actual.length) {
            fail(tensor + ": expected " + expected.length + " elements, got " + actual.length);
        }
        double atol = rtol * scale;
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
                ok = err <= atol + rtol * Math.abs(e);
                double scaled = err / (atol + rtol * Math.abs(e) + Double.MIN_VALUE);
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
            fail(String.format("%s: %d of %d elements mismatch (rtol %.1e, atol %.3e); first bad index %d: expected %s,"
                            + " actual %s; worst error is %.3g times the tolerance at index %d",
                    tensor, bad, expected.length, rtol, atol, first, expected[first], actual[first], worst, worstAt));
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
