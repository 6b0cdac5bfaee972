package io.github.batchnorm4j.testing;

import io.github.batchnorm4j.DType;

/**
 * The tolerance of a tensor stored in a 16-bit type (y, dx): half an ulp of the storage type at the expected value,
 * plus twice the float32 tolerance the same tensor has in float32 ({@link Tolerances}).
 *
 * <p>Why this bound and no looser: a backend computes the value in float32 (error ε32 against float64, bounded by the
 * float32 tolerance) and rounds it once to nearest. The stored value r = RN(v32) is at least as close to v32 as the
 * 16-bit value nearest to the exact e, which is within ½ulp(e) of e; so |r − v32| ≤ ½ulp(e) + ε32 and
 * |r − e| ≤ ½ulp(e) + 2·ε32. A backend that truncates, rounds twice through a coarser type, or rounds the wrong way
 * at a tie exceeds it by up to ½ulp on a fair share of random elements; float32's part is 2% of a float16 ulp at most.
 * "About one ulp of the storage type plus float32 error" (issue 13) is this bound with room to spare.
 */
public final class HalfTolerances {
    private HalfTolerances() {
    }

    /** The ulp of {@code dtype} at the value e (its binade's spacing; the subnormal spacing below the normal range). */
    public static double ulp(DType dtype, double e) {
        double a = Math.abs(e);
        int fracBits = dtype.precision() - 1;
        int minExp = dtype == DType.FLOAT16 ? -14 : -126;
        int exp = a == 0 || !Double.isFinite(a) ? minExp : Math.max(Math.getExponent(a), minExp);
        return Math.scalb(1.0, exp - fracBits);
    }

    /**
     * Asserts a 16-bit result: {@code |a − e| ≤ ½·ulp(e) + 2·rtol·scale + 2·rtol·|e|} element-wise (NaN must match NaN,
     * an infinity must match the same infinity).
     *
     * @param rtol  the tensor's float32 tolerance ({@link Tolerances#FORWARD_RTOL} for y, GRADIENT_RTOL for dx)
     * @param scale the tensor's float32 scale (rms of y; {@link Reference64.Backward#dxScale()} for dx)
     */
    public static void assertStored(String tensor, DType dtype, double[] expected, short[] actual, double rtol,
                                    double scale) {
        double[] atol = new double[expected.length];
        for (int i = 0; i < atol.length; i++) atol[i] = 0.5 * ulp(dtype, expected[i]) + 2 * rtol * scale;
        Tolerances.assertClose(tensor + " (" + dtype + ")", expected, widen(dtype, actual), 2 * rtol, atol);
    }

    /** Asserts y: {@link #assertStored} with the forward tolerance on the scale rms(y). */
    public static void assertY(String tensor, DType dtype, double[] expected, short[] actual) {
        assertStored(tensor, dtype, expected, actual, Tolerances.FORWARD_RTOL, Tolerances.rms(expected));
    }

    /** Asserts dx: {@link #assertStored} with the gradient tolerance on the scale of dx's terms. */
    public static void assertDx(DType dtype, Reference64.Backward expected, short[] actual) {
        assertStored("dx", dtype, expected.dx(), actual, Tolerances.GRADIENT_RTOL, expected.dxScale());
    }

    /** The stored values, widened exactly. */
    public static double[] widen(DType dtype, short[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) d[i] = dtype.decode(a[i]);
        return d;
    }
}
