package io.github.batchnorm4j.ptx;

import java.math.BigDecimal;
import java.math.BigInteger;

/**
 * Floating-point semantics of PTX that Java does not give directly: directed rounding (.rz/.rm/.rp), flush-to-zero,
 * saturation, PTX min/max NaN rules, float-to-int conversions with saturation, and half precision.
 *
 * <p>Round-to-nearest arithmetic is plain Java float/double arithmetic (IEEE 754 binary32/64, correctly rounded),
 * {@code fma} is {@link Math#fma}. Directed rounding is exact: the exact result is carried as a double-double
 * {@code hi + lo} (error-free transforms) or a {@link BigDecimal}, then rounded in the requested direction.
 */
final class FloatOps {
    private FloatOps() {
    }

    static float ftz(float x) {
        return Math.abs(x) < Float.MIN_NORMAL ? Math.copySign(0f, x) : x;
    }

    static float sat(float x) {
        if (Float.isNaN(x)) return 0f;
        return x < 0f ? 0f : x > 1f ? 1f : x;
    }

    static double satD(double x) {
        if (Double.isNaN(x)) return 0d;
        return x < 0d ? 0d : x > 1d ? 1d : x;
    }

    /** Rounds the exact value {@code hi + lo} (|lo| tiny against hi, or only its sign meaningful) to float. */
    static float roundToFloat(double hi, double lo, int mode) {
        if (Double.isNaN(hi) || Double.isInfinite(hi)) return (float) hi;
        float f = (float) hi;
        if (mode == Op.RN) {
            // (float) hi could double-round only when hi is exactly halfway and lo != 0
            if (lo != 0 && (double) f != hi) {
                float other = hi > f ? Math.nextUp(f) : Math.nextDown(f);
                double mid = ((double) f + (double) other) / 2;
                if (mid == hi) return (lo > 0) == (other > f) ? other : f;
            }
            return f;
        }
        if (Float.isInfinite(f)) {
            boolean pos = hi > 0;
            switch (mode) {
                case Op.RZ: return pos ? Float.MAX_VALUE : -Float.MAX_VALUE;
                case Op.RM: return pos ? Float.MAX_VALUE : Float.NEGATIVE_INFINITY;
                default: return pos ? Float.POSITIVE_INFINITY : -Float.MAX_VALUE;
            }
        }
        int cmp = Double.compare(hi, f); // sign of (exact - f), refined by lo when hi == f
        if (hi == (double) f) cmp = lo > 0 ? 1 : lo < 0 ? -1 : 0;
        if (cmp == 0) return f;
        switch (mode) {
            case Op.RZ:
                if (f > 0 && cmp < 0 || f < 0 && cmp > 0) return f > 0 ? Math.nextDown(f) : Math.nextUp(f);
                if (f == 0f) return cmp > 0 ? 0f : -0f;
                return f;
            case Op.RM: return cmp < 0 ? Math.nextDown(f) : f;
            case Op.RP: return cmp > 0 ? Math.nextUp(f) : f;
            default: return f;
        }
    }

    /** Rounds the exact value {@code hi + lo} (hi already the nearest double) to double in the given direction. */
    static double roundToDouble(double hi, double lo, int mode) {
        if (lo == 0 || Double.isNaN(hi) || Double.isInfinite(hi) || mode == Op.RN) return hi;
        switch (mode) {
            case Op.RZ:
                if (hi > 0 && lo < 0) return Math.nextDown(hi);
                if (hi < 0 && lo > 0) return Math.nextUp(hi);
                return hi;
            case Op.RM: return lo < 0 ? Math.nextDown(hi) : hi;
            case Op.RP: return lo > 0 ? Math.nextUp(hi) : hi;
            default: return hi;
        }
    }

    private static double twoSumErr(double a, double b, double s) {
        double bb = s - a;
        return (a - (s - bb)) + (b - bb);
    }

    static float add(float a, float b, int mode) {
        if (mode == Op.RN) return a + b;
        double s = (double) a + (double) b;
        return roundToFloat(s, twoSumErr(a, b, s), mode);
    }

    static float mul(float a, float b, int mode) {
        if (mode == Op.RN) return a * b;
        return roundToFloat((double) a * (double) b, 0, mode); // exact: 24 + 24 bits
    }

    static float fma(float a, float b, float c, int mode) {
        if (mode == Op.RN) return Math.fma(a, b, c);
        double p = (double) a * (double) b;
        double s = p + c;
        return roundToFloat(s, twoSumErr(p, c, s), mode);
    }

    static float div(float a, float b, int mode) {
        if (mode == Op.RN || mode < 0) return a / b;
        double q = (double) a / (double) b;
        if (Double.isNaN(q) || Double.isInfinite(q) || q == 0) return (float) q;
        double r = Math.fma(-q, b, a); // exact remainder: a - q*b
        return roundToFloat(q, r / b, mode);
    }

    static float sqrt(float a, int mode) {
        double s = Math.sqrt(a);
        if (mode == Op.RN || mode < 0 || Double.isNaN(s) || Double.isInfinite(s) || s == 0) return (float) s;
        double r = Math.fma(-s, s, a);
        return roundToFloat(s, r, mode);
    }

    static double addD(double a, double b, int mode) {
        double s = a + b;
        return roundToDouble(s, twoSumErr(a, b, s), mode);
    }

    static double mulD(double a, double b, int mode) {
        double p = a * b;
        if (mode == Op.RN || Double.isInfinite(p) || Double.isNaN(p)) return p;
        return roundToDouble(p, Math.fma(a, b, -p), mode);
    }

    static double fmaD(double a, double b, double c, int mode) {
        double r = Math.fma(a, b, c);
        if (mode == Op.RN || Double.isNaN(r) || Double.isInfinite(r)
                || Double.isInfinite(a) || Double.isInfinite(b) || Double.isInfinite(c)) return r;
        BigDecimal exact = new BigDecimal(a).multiply(new BigDecimal(b)).add(new BigDecimal(c));
        int cmp = exact.compareTo(new BigDecimal(r));
        return roundToDouble(r, cmp, mode);
    }

    static double divD(double a, double b, int mode) {
        double q = a / b;
        if (mode == Op.RN || mode < 0 || Double.isNaN(q) || Double.isInfinite(q) || q == 0) return q;
        double r = Math.fma(-q, b, a);
        return roundToDouble(q, r / b, mode);
    }

    static double sqrtD(double a, int mode) {
        double s = Math.sqrt(a);
        if (mode == Op.RN || mode < 0 || Double.isNaN(s) || Double.isInfinite(s) || s == 0) return s;
        return roundToDouble(s, Math.fma(-s, s, a), mode);
    }

    /** PTX min: NaN only when both are NaN; -0 below +0. */
    static float min(float a, float b) {
        if (Float.isNaN(a)) return Float.isNaN(b) ? Float.NaN : b;
        if (Float.isNaN(b)) return a;
        return Math.min(a, b);
    }

    static float max(float a, float b) {
        if (Float.isNaN(a)) return Float.isNaN(b) ? Float.NaN : b;
        if (Float.isNaN(b)) return a;
        return Math.max(a, b);
    }

    static double minD(double a, double b) {
        if (Double.isNaN(a)) return Double.isNaN(b) ? Double.NaN : b;
        if (Double.isNaN(b)) return a;
        return Math.min(a, b);
    }

    static double maxD(double a, double b) {
        if (Double.isNaN(a)) return Double.isNaN(b) ? Double.NaN : b;
        if (Double.isNaN(b)) return a;
        return Math.max(a, b);
    }

    /** Rounds to an integral value by the mode (.rni/.rzi/.rmi/.rpi). */
    static double roundIntegral(double x, int mode) {
        switch (mode) {
            case Op.RZ: return x < 0 ? Math.ceil(x) : Math.floor(x);
            case Op.RM: return Math.floor(x);
            case Op.RP: return Math.ceil(x);
            case Op.RNA: return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
            default: return Math.rint(x);
        }
    }

    /** A float value converted to an integer type: rounded by mode, NaN to 0, saturated to the type's range. */
    static long floatToInt(double x, int mode, int dtype) {
        if (Double.isNaN(x)) return 0;
        double r = roundIntegral(x, mode);
        switch (dtype) {
            case PtxType.S8: return (long) Math.max(-128, Math.min(127, r));
            case PtxType.S16: return (long) Math.max(-32768, Math.min(32767, r));
            case PtxType.S32: return (long) Math.max(Integer.MIN_VALUE, Math.min(Integer.MAX_VALUE, r));
            case PtxType.S64: return (long) r; // Java saturates to Long range
            case PtxType.U8: case PtxType.B8: return (long) Math.max(0, Math.min(255, r));
            case PtxType.U16: case PtxType.B16: return (long) Math.max(0, Math.min(65535, r));
            case PtxType.U32: case PtxType.B32: return (long) Math.max(0, Math.min(4294967295.0, r));
            default: // u64
                if (r <= 0) return 0;
                if (r >= 18446744073709551615.0) return -1L;
                return new BigDecimal(r).toBigInteger().longValue();
        }
    }

    private static final BigInteger TWO64 = BigInteger.ONE.shiftLeft(64);

    /** An integer (bits {@code v} of type {@code stype}) as the exact BigDecimal value. */
    static BigDecimal exactInt(long v, int stype) {
        long x = PtxType.ext(v, stype);
        if ((stype == PtxType.U64 || stype == PtxType.B64) && x < 0) {
            return new BigDecimal(BigInteger.valueOf(x).add(TWO64));
        }
        return BigDecimal.valueOf(x);
    }

    /** Integer to float with rounding mode. */
    static float intToFloat(long v, int stype, int mode) {
        BigDecimal exact = exactInt(v, stype);
        float f = exact.floatValue(); // round-to-nearest-even
        if (mode == Op.RN) return f;
        int cmp = exact.compareTo(new BigDecimal(f));
        return roundToFloat(f, cmp, mode);
    }

    /**
     * An integer as a double rounded to odd (toward zero, then the last bit set if anything was dropped): rounding that
     * double once more to a format of at most 51 bits gives the correctly rounded result, with no double rounding.
     */
    static double intToDoubleRoundOdd(long v, int stype) {
        BigDecimal exact = exactInt(v, stype);
        double d = exact.doubleValue();
        int cmp = exact.compareTo(new BigDecimal(d));
        if (cmp == 0) return d;
        double t = roundToDouble(d, cmp, Op.RZ);
        return Double.longBitsToDouble(Double.doubleToRawLongBits(t) | 1L);
    }

    static double intToDouble(long v, int stype, int mode) {
        BigDecimal exact = exactInt(v, stype);
        double d = exact.doubleValue();
        if (mode == Op.RN) return d;
        int cmp = exact.compareTo(new BigDecimal(d));
        return roundToDouble(d, cmp, mode);
    }

    /**
     * A float16 (binary16) pattern as a float (exact). NaN patterns give NaN; {@link Alu#cvt} writes the canonical
     * NaN for them, as the hardware does.
     */
    static float halfToFloat(int h) {
        int s = (h >>> 15) & 1, e = (h >>> 10) & 0x1F, m = h & 0x3FF;
        float v;
        if (e == 0) v = m * 0x1p-24f;
        else if (e == 31) v = m == 0 ? Float.POSITIVE_INFINITY : Float.NaN;
        else v = (1 + m / 1024f) * (float) Math.pow(2, e - 15);
        return s == 1 ? -v : v;
    }

    /** A bfloat16 pattern as a float (exact: the upper half of the float's bits). */
    static float bf16ToFloat(int h) {
        return Float.intBitsToFloat((h & 0xFFFF) << 16);
    }

    /** The canonical NaN of a 16-bit result (cvt to .f16 or .bf16 of a NaN), as NVIDIA's conversions produce it. */
    static final int CANONICAL_NAN_16 = 0x7FFF;

    /** float to binary16 bits with rounding mode (RN, RZ, RM, RP). */
    static int floatToHalf(float f, int mode) {
        return toSixteenBits(f, mode, 5, 10);
    }

    /** The exact value {@code x} to binary16 bits with rounding mode, rounded once (no detour through float). */
    static int doubleToHalf(double x, int mode) {
        return toSixteenBits(x, mode, 5, 10);
    }

    /** The exact value {@code x} to bfloat16 bits with rounding mode (RN, RZ, RM, RP). */
    static int doubleToBf16(double x, int mode) {
        return toSixteenBits(x, mode, 8, 7);
    }

    /**
     * Rounds the exact value x to a 16-bit format with {@code expBits} exponent and {@code fracBits} fraction bits: the
     * exact value in units of the ulp of its binade, rounded to an integer in the requested
     * direction, then assembled; an overflow becomes Inf or the largest finite value by the direction, as IEEE says.
     */
    private static int toSixteenBits(double x, int mode, int expBits, int fracBits) {
        if (Double.isNaN(x)) return CANONICAL_NAN_16;
        int bias = (1 << (expBits - 1)) - 1;
        int inf = ((1 << expBits) - 1) << fracBits;
        int sign = Double.doubleToRawLongBits(x) < 0 ? 0x8000 : 0;
        double a = Math.abs(x);
        if (Double.isInfinite(a)) return sign | inf;
        int minExp = 1 - bias;
        int exp = a == 0 ? minExp : Math.max(Math.getExponent(a), minExp);
        double ulp = Math.scalb(1.0, exp - fracBits);
        // a in units of its binade's ulp: a power-of-two scaling, exact in double; then rounded to an integer, exactly
        double units = Math.scalb(a, fracBits - exp);
        boolean neg = sign != 0;
        double rounded;
        switch (mode) {
            case Op.RZ: rounded = Math.floor(units); break;
            case Op.RM: rounded = neg ? Math.ceil(units) : Math.floor(units); break;
            case Op.RP: rounded = neg ? Math.floor(units) : Math.ceil(units); break;
            default: rounded = Math.rint(units); // ties to even
        }
        long u = (long) rounded;
        double val = u * ulp;
        double max = Math.scalb(2.0 - Math.scalb(1.0, -fracBits), bias);
        if (val > max) {
            boolean toInf = mode == Op.RN || (mode == Op.RP && !neg) || (mode == Op.RM && neg);
            return sign | (toInf ? inf : inf - 1);
        }
        if (val == 0) return sign;
        int e = Math.getExponent(val);
        if (e < minExp) return sign | (int) u; // subnormal: u units of the smallest ulp
        int m = (int) Math.round((val / Math.scalb(1.0, e) - 1) * (1 << fracBits));
        return sign | ((e + bias) << fracBits) | m;
    }
}
