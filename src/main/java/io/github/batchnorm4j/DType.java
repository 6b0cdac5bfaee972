package io.github.batchnorm4j;

import java.util.Locale;

/**
 * The storage type of the activation tensors x, y, dy and dx: float32, or one of the two 16-bit types GPU training
 * keeps activations in. Per-channel tensors (gamma, beta, running and saved statistics, dgamma, dbeta) are always
 * float32, and all arithmetic is float32 or wider: this is PyTorch's mixed-type batch norm (fp16/bf16 input with fp32
 * weight, bias and running statistics) and cuDNN's half path.
 *
 * <p>What a 16-bit storage type means for a batch-norm call:
 * <ul>
 *   <li>x and dy are read exactly (every float16 and bfloat16 value is a float32 value);</li>
 *   <li>statistics and sums accumulate in float32 (kernels) or double (CPU) with the same shifted Welford/Chan scheme
 *       as float32 input, so they lose nothing to the 16-bit input;</li>
 *   <li>y and dx are computed in float32 and rounded once, to nearest with ties to even, when written
 *       ({@link #round}); values beyond the type's range become ±Inf; NaN stays NaN.</li>
 * </ul>
 *
 * <p>Host arrays of a 16-bit type are {@code short[]} holding the raw IEEE bit patterns (the little-endian 2-byte
 * elements of a NumPy {@code float16} array, or the upper halves of float32 bit patterns for bfloat16). {@link #encode}
 * and {@link #decode} convert exactly:
 * <ul>
 *   <li>decode (16 → 32 bits) is exact for every bit pattern, including subnormals, ±0, ±Inf, and NaN payloads (the
 *       payload moves to the top of the float32 significand, the sign is kept);</li>
 *   <li>encode (32 → 16 bits) rounds to nearest, ties to even; subnormal results are rounded like any other (float16
 *       has subnormals down to 2^−24; bfloat16 has float32's exponent range); a finite value at or beyond the midpoint
 *       between the largest finite value and the next power of two (65520 for float16) becomes ±Inf; a NaN keeps its
 *       sign and the top bits of its payload (10 for float16, 7 for bfloat16), and becomes the quiet NaN with that
 *       sign if none of those bits was set, so a NaN never turns into an infinity. {@code encode(decode(h)) == h} for
 *       every 16-bit pattern h.</li>
 * </ul>
 * The kernels convert the same way except for NaN: NVIDIA's conversions produce the canonical NaN (0x7FFF in 16 bits,
 * 0x7FFFFFFF in 32). Compare NaN by {@link Float#isNaN}, never by bits.
 */
public enum DType {
    /** IEEE binary32: 4 bytes, 24-bit significand. */
    FLOAT32("float32", 4, 24, "<f4"),
    /** IEEE binary16 (CUDA {@code __half}, NumPy {@code float16}): 2 bytes, 11-bit significand, max 65504. */
    FLOAT16("float16", 2, 11, "<f2"),
    /**
     * bfloat16 (CUDA {@code __nv_bfloat16}, PyTorch {@code torch.bfloat16}): the upper 16 bits of a float32, 2 bytes,
     * 8-bit significand, float32's range. NumPy has no bfloat16 type.
     */
    BFLOAT16("bfloat16", 2, 8, null);

    private final String cliName;
    private final int bytes;
    private final int precision;
    private final String npyDescr;

    DType(String cliName, int bytes, int precision, String npyDescr) {
        this.cliName = cliName;
        this.bytes = bytes;
        this.precision = precision;
        this.npyDescr = npyDescr;
    }

    /** The lower-case name used on the command line and in JSON: "float32", "float16" or "bfloat16". */
    public String cliName() {
        return cliName;
    }

    /** Bytes per element: 4 or 2. Traffic budgets and bench's GB/s count these. */
    public int bytes() {
        return bytes;
    }

    /** Bits of significand including the implicit bit: 24, 11 or 8. */
    public int precision() {
        return precision;
    }

    /**
     * The unit roundoff u = 2^−precision: a rounding to this type errs by at most u relative (normal range), i.e. half
     * an ulp. 2^−24 (float32), 2^−11 (float16), 2^−8 (bfloat16).
     */
    public double unitRoundoff() {
        return Math.scalb(1.0, -precision);
    }

    /** True for the 16-bit types, whose host arrays are {@code short[]} bit patterns. */
    public boolean is16Bit() {
        return bytes == 2;
    }

    /** The NumPy {@code .npy} descriptor ("&lt;f4", "&lt;f2"), or null for bfloat16, which NumPy lacks. */
    public String npyDescr() {
        return npyDescr;
    }

    @Override
    public String toString() {
        return cliName;
    }

    /**
     * Parses "float32", "float16" or "bfloat16" (case-insensitive; also "fp32", "fp16", "bf16", "half").
     *
     * @throws IllegalArgumentException naming the accepted values
     */
    public static DType parse(String name) {
        if (name == null) throw new IllegalArgumentException("dtype must not be null");
        switch (name.toLowerCase(Locale.ROOT)) {
            case "float32": case "fp32": case "f32": case "float":
                return FLOAT32;
            case "float16": case "fp16": case "f16": case "half":
                return FLOAT16;
            case "bfloat16": case "bf16":
                return BFLOAT16;
            default:
                throw new IllegalArgumentException("dtype: expected float32, float16 or bfloat16, got '" + name + "'");
        }
    }

    // ---- conversions ------------------------------------------------------------------------------------------------

    /**
     * The float32 value of a 16-bit pattern (exact).
     *
     * @throws IllegalStateException for {@link #FLOAT32}, which has no 16-bit pattern
     */
    public float decode(short bits) {
        return Float.intBitsToFloat(decodeToFloatBits(bits));
    }

    /** The float32 bit pattern of {@link #decode}: raw, so NaN payloads survive on any JVM. */
    public int decodeToFloatBits(short bits) {
        switch (this) {
            case FLOAT16: return float16ToFloatBits(bits);
            case BFLOAT16: return (bits & 0xFFFF) << 16;
            default: throw notSixteenBits();
        }
    }

    /**
     * The 16-bit pattern nearest to {@code value} (round to nearest, ties to even; see the class comment for overflow
     * and NaN).
     *
     * @throws IllegalStateException for {@link #FLOAT32}
     */
    public short encode(float value) {
        return encodeFloatBits(Float.floatToRawIntBits(value));
    }

    /** {@link #encode} of the float32 with raw bits {@code floatBits}. */
    public short encodeFloatBits(int floatBits) {
        switch (this) {
            case FLOAT16: return floatBitsToFloat16(floatBits);
            case BFLOAT16: return floatBitsToBfloat16(floatBits);
            default: throw notSixteenBits();
        }
    }

    /** {@code value} rounded to this type and back: what storing it in this type keeps. Identity for float32. */
    public float round(float value) {
        return this == FLOAT32 ? value : decode(encode(value));
    }

    /**
     * Decodes {@code src} into {@code dst} (same length).
     *
     * @throws IllegalArgumentException if the lengths differ or an array is null
     */
    public void decode(short[] src, float[] dst) {
        checkLengths(src == null ? -1 : src.length, dst == null ? -1 : dst.length);
        for (int i = 0; i < src.length; i++) dst[i] = Float.intBitsToFloat(decodeToFloatBits(src[i]));
    }

    /** Decodes {@code src} into a new array. */
    public float[] decode(short[] src) {
        if (src == null) throw new IllegalArgumentException("src must not be null");
        float[] dst = new float[src.length];
        decode(src, dst);
        return dst;
    }

    /**
     * Encodes {@code src} into {@code dst} (same length), each element rounded as {@link #encode}.
     *
     * @throws IllegalArgumentException if the lengths differ or an array is null
     */
    public void encode(float[] src, short[] dst) {
        checkLengths(src == null ? -1 : src.length, dst == null ? -1 : dst.length);
        for (int i = 0; i < src.length; i++) dst[i] = encodeFloatBits(Float.floatToRawIntBits(src[i]));
    }

    /** Encodes {@code src} into a new array. */
    public short[] encode(float[] src) {
        if (src == null) throw new IllegalArgumentException("src must not be null");
        short[] dst = new short[src.length];
        encode(src, dst);
        return dst;
    }

    private IllegalStateException notSixteenBits() {
        return new IllegalStateException(cliName + " has no 16-bit encoding (decode/encode are for float16 and bfloat16)");
    }

    private static void checkLengths(int src, int dst) {
        if (src < 0) throw new IllegalArgumentException("src must not be null");
        if (dst < 0) throw new IllegalArgumentException("dst must not be null");
        if (src != dst) throw new IllegalArgumentException("dst: expected " + src + " elements (as src), got " + dst);
    }

    // ---- the bit-level conversions -----------------------------------------------------------------------------
    // float16: 1 sign, 5 exponent (bias 15), 10 fraction bits; float32: 1, 8 (bias 127), 23. Rebiasing adds 112 to
    // the exponent (127 − 15), i.e. 0x38000000 to the bits shifted into float32's position.

    private static int float16ToFloatBits(short h) {
        int sign = (h & 0x8000) << 16;
        int exp = (h >>> 10) & 0x1F;
        int frac = h & 0x3FF;
        if (exp == 0x1F) return sign | 0x7F800000 | (frac << 13);           // ±Inf, or NaN with its payload
        if (exp != 0) return sign | ((exp + 112) << 23) | (frac << 13);      // normal
        if (frac == 0) return sign;                                           // ±0
        return sign | Float.floatToRawIntBits(frac * 0x1p-24f);               // subnormal: frac·2^−24, exact in float32
    }

    private static short floatBitsToFloat16(int f) {
        int sign = (f >>> 16) & 0x8000;
        int abs = f & 0x7FFFFFFF;
        if (abs > 0x7F800000) {                                   // NaN: keep the top 10 payload bits
            int payload = (abs >>> 13) & 0x3FF;
            return (short) (sign | 0x7C00 | (payload != 0 ? payload : 0x200));
        }
        if (abs >= 0x477FF000) return (short) (sign | 0x7C00);   // ≥ 65520 (the tie above 65504 goes to even: Inf)
        if (abs >= 0x38800000) {                                  // ≥ 2^−14: a normal float16
            int rebiased = abs - 0x38000000;
            return (short) (sign | roundShift(rebiased, 13));     // a carry out of the fraction bumps the exponent
        }
        if (abs <= 0x33000000) return (short) sign;               // ≤ 2^−25: the tie at 2^−25 goes to even, 0
        int exp = abs >>> 23;                                     // 102..112: a float16 subnormal
        int significand = (abs & 0x7FFFFF) | 0x800000;            // value = significand·2^(exp − 150)
        return (short) (sign | roundShift(significand, 126 - exp)); // in units of 2^−24
    }

    private static short floatBitsToBfloat16(int f) {
        int abs = f & 0x7FFFFFFF;
        if (abs > 0x7F800000) {                                   // NaN: keep the top 7 payload bits
            int payload = (abs >>> 16) & 0x7F;
            return (short) (((f >>> 16) & 0x8000) | 0x7F80 | (payload != 0 ? payload : 0x40));
        }
        return (short) roundShift(f, 16);                         // the sign rides along; the max rounds up to Inf
    }

    /** v >>> s rounded to nearest, ties to even, over the unsigned value v (bit 31 kept as part of the value). */
    private static int roundShift(int v, int s) {
        int q = v >>> s;
        int rem = v & ((1 << s) - 1);
        int half = 1 << (s - 1);
        if (rem > half || (rem == half && (q & 1) != 0)) q++;
        return q;
    }
}
