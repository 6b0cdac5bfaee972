package io.github.batchnorm4j.testing;

import java.util.ArrayList;
import java.util.List;

/**
 * The float16 and bfloat16 formats, written from their definitions for clarity and independently of every conversion
 * under test ({@code DType}'s bit manipulation, the emulator's {@code cvt}): the value of a pattern is computed from
 * sign, exponent and fraction with {@link Math#scalb}, and rounding picks, among the finite values of the format, the
 * two that enclose the argument, by binary search over the (monotonic) positive patterns.
 *
 * <p>Rounding rules (IEEE 754): to nearest with ties to the even pattern (the one whose last fraction bit is 0); the
 * value one ulp above the largest finite value ({@code 2^(emax+1)}, 65536 for float16) stands for the infinity, so a
 * value at or above the midpoint between it and the largest finite value rounds to Inf (the midpoint is a tie and the
 * infinity's pattern 0x7C00 is even); toward zero never overflows to Inf; toward ±Inf overflow by the sign.
 */
public enum HalfReference {
    /** IEEE binary16: 5 exponent bits, 10 fraction bits. */
    FLOAT16(5, 10),
    /** bfloat16: 8 exponent bits, 7 fraction bits. */
    BFLOAT16(8, 7);

    /** Rounding directions (PTX .rn, .rz, .rm, .rp). */
    public enum Mode { NEAREST_EVEN, TOWARD_ZERO, DOWN, UP }

    private final int expBits;
    private final int fracBits;
    private final int bias;
    /** The largest finite positive pattern: exponent all ones minus one, fraction all ones. */
    private final int maxFinite;
    private final int infinity;
    /** value(p) of the positive finite patterns, computed once from {@link #value}, for the searches of round. */
    private double[] positive;

    HalfReference(int expBits, int fracBits) {
        this.expBits = expBits;
        this.fracBits = fracBits;
        this.bias = (1 << (expBits - 1)) - 1;
        this.infinity = ((1 << expBits) - 1) << fracBits;
        this.maxFinite = infinity - 1;
    }

    /** The exact value of a pattern (low 16 bits) as a double; NaN for NaN patterns. */
    public double value(int bits) {
        bits &= 0xFFFF;
        boolean negative = (bits & 0x8000) != 0;
        int exp = (bits >>> fracBits) & ((1 << expBits) - 1);
        int frac = bits & ((1 << fracBits) - 1);
        double magnitude;
        if (exp == (1 << expBits) - 1) {
            if (frac != 0) return Double.NaN;
            magnitude = Double.POSITIVE_INFINITY;
        } else if (exp == 0) {
            magnitude = Math.scalb((double) frac, 1 - bias - fracBits);                  // subnormal: 0.frac·2^(1−bias)
        } else {
            magnitude = Math.scalb(1.0 + Math.scalb((double) frac, -fracBits), exp - bias); // 1.frac·2^(exp−bias)
        }
        return negative ? -magnitude : magnitude;
    }

    private double[] positiveValues() {
        double[] v = positive;
        if (v == null) {
            v = new double[maxFinite + 1];
            for (int p = 0; p <= maxFinite; p++) v[p] = value(p);
            positive = v;
        }
        return v;
    }

    /** True for NaN patterns. */
    public boolean isNaN(int bits) {
        return Double.isNaN(value(bits));
    }

    /** The NaN payload (fraction bits) of a pattern. */
    public int fraction(int bits) {
        return bits & ((1 << fracBits) - 1);
    }

    /** Number of fraction bits (10 or 7). */
    public int fractionBits() {
        return fracBits;
    }

    /** The pattern of +Inf. */
    public int infinity() {
        return infinity;
    }

    /** The largest finite positive pattern. */
    public int maxFinite() {
        return maxFinite;
    }

    /**
     * The pattern {@code x} rounds to in the given direction; x must not be NaN (NaN rules differ between conversions:
     * the caller checks them). ±0 keep their sign; a nonzero x that rounds to zero gets x's sign.
     */
    public int round(double x, Mode mode) {
        if (Double.isNaN(x)) throw new IllegalArgumentException("round: NaN has no single rounding; check it apart");
        int sign = (Double.doubleToRawLongBits(x) < 0) ? 0x8000 : 0;
        double a = Math.abs(x);
        if (a == Double.POSITIVE_INFINITY) return sign | infinity;
        // the largest pattern p in [0, maxFinite] with value(p) <= a (value is increasing over positive patterns)
        double[] v = positiveValues();
        int lo = 0;
        int hi = maxFinite;
        while (lo < hi) {
            int mid = (lo + hi + 1) >>> 1;
            if (v[mid] <= a) lo = mid; else hi = mid - 1;
        }
        int below = lo;
        if (v[below] == a) return sign | below;
        int above = below + 1; // maxFinite + 1 is the infinity pattern, standing for 2^(emax+1)
        double aboveValue = above == infinity ? Math.scalb(1.0, bias + 1) : v[above];
        boolean negative = sign != 0;
        int chosen;
        switch (mode) {
            case TOWARD_ZERO: chosen = below; break;
            case UP: chosen = negative ? below : above; break;
            case DOWN: chosen = negative ? above : below; break;
            default: {
                double dBelow = a - v[below];
                double dAbove = aboveValue - a;
                if (dBelow < dAbove) chosen = below;
                else if (dAbove < dBelow) chosen = above;
                else chosen = (below & 1) == 0 ? below : above;
            }
        }
        return sign | chosen;
    }

    /** Every float32 that matters for a conversion to this format: see {@link #edgeFloats(int)}. */
    public float[] edgeFloatArray() {
        return edgeFloatArray(1);
    }

    /** {@link #edgeFloats(int)} as an array. */
    public float[] edgeFloatArray(int stride) {
        List<Float> e = edgeFloats(stride);
        float[] a = new float[e.size()];
        for (int i = 0; i < a.length; i++) a[i] = e.get(i);
        return a;
    }

    /**
     * Edge cases of float32 → this format, both signs: every value of the format and its float32 neighbours; every
     * midpoint between adjacent values (the ties) and its float32 neighbours; zero, the smallest subnormals and the
     * subnormal/normal boundary of both formats; the overflow threshold and around it; the largest float32, ±Inf; and
     * NaNs with payloads in the bits kept and in the bits dropped.
     */
    public List<Float> edgeFloats() {
        return edgeFloats(1);
    }

    /**
     * Like {@link #edgeFloats()} around every {@code stride}-th pattern only, and always around the first and last
     * few, the subnormal/normal boundary and the overflow threshold (for slow consumers such as the emulator).
     */
    public List<Float> edgeFloats(int stride) {
        List<Float> out = new ArrayList<>();
        int firstNormal = 1 << fracBits;
        for (int p = 0; p <= maxFinite; p++) {
            boolean always = p < 4 || p > maxFinite - 4 || Math.abs(p - firstNormal) < 3;
            if (p % stride != 0 && !always) continue;
            float v = (float) value(p);
            addWithNeighbours(out, v);
            double next = p == maxFinite ? Math.scalb(1.0, bias + 1) : value(p + 1);
            double mid = (value(p) + next) / 2;
            float m = (float) mid;
            if (m == mid) addWithNeighbours(out, m);
        }
        addWithNeighbours(out, Float.MIN_VALUE);
        addWithNeighbours(out, Float.MIN_NORMAL);
        addWithNeighbours(out, Float.MAX_VALUE);
        out.add(Float.POSITIVE_INFINITY);
        int n = out.size();
        for (int i = 0; i < n; i++) out.add(-out.get(i));
        int[] nans = {0x7FC00000, 0x7F800001, 0x7FBFFFFF, 0x7FFFFFFF, 0x7FC00001, 0x7F802000, 0x7F810000,
                0x7FA00000, 0x7FD55555, 0x7F801FFF};
        for (int bits : nans) {
            out.add(Float.intBitsToFloat(bits));
            out.add(Float.intBitsToFloat(bits | 0x80000000));
        }
        return out;
    }

    private static void addWithNeighbours(List<Float> out, float v) {
        out.add(Math.nextDown(v));
        out.add(v);
        out.add(Math.nextUp(v));
    }
}
