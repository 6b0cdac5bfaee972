package io.github.batchnorm4j.ptx;

/**
 * The PTX fundamental types as small int codes, so decoded instructions carry no strings.
 *
 * <p>Register values are kept as raw bits in a {@code long}: integers of 8–32 bits as their low bits, {@code .f32} as
 * {@link Float#floatToRawIntBits}, {@code .f64} as {@link Double#doubleToRawLongBits}, predicates as 0 or 1. Every
 * instruction reinterprets the bits by its own type, so how the unused high bits are filled does not matter.
 */
final class PtxType {
    private PtxType() {
    }

    static final int NONE = 0, PRED = 1,
            B8 = 2, B16 = 3, B32 = 4, B64 = 5,
            U8 = 6, U16 = 7, U32 = 8, U64 = 9,
            S8 = 10, S16 = 11, S32 = 12, S64 = 13,
            F16 = 14, F32 = 15, F64 = 16, B128 = 17, F16X2 = 18, BF16 = 19, BF16X2 = 20;

    private static final String[] NAMES = {"", "pred", "b8", "b16", "b32", "b64", "u8", "u16", "u32", "u64",
            "s8", "s16", "s32", "s64", "f16", "f32", "f64", "b128", "f16x2", "bf16", "bf16x2"};
    private static final int[] SIZES = {0, 1, 1, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8, 2, 4, 8, 16, 4, 2, 4};

    /** The code of a type name without its dot ("u32"), or -1. */
    static int of(String name) {
        for (int i = 1; i < NAMES.length; i++) {
            if (NAMES[i].equals(name)) return i;
        }
        return -1;
    }

    static String name(int t) {
        return NAMES[t];
    }

    /** Size in bytes. */
    static int size(int t) {
        return SIZES[t];
    }

    static boolean isSigned(int t) {
        return t >= S8 && t <= S64;
    }

    static boolean isFloat(int t) {
        return t == F16 || t == F32 || t == F64 || t == BF16;
    }

    /** The 16-bit float types and their packed pairs, which only cvt and moves handle. */
    static boolean isHalf(int t) {
        return t == F16 || t == BF16 || t == F16X2 || t == BF16X2;
    }

    static boolean isInt(int t) {
        return t >= B8 && t <= S64;
    }

    /** The raw bits {@code v} read as an integer of type {@code t}: sign-extended for .sN, zero-extended otherwise. */
    static long ext(long v, int t) {
        switch (t) {
            case S8: return (byte) v;
            case S16: return (short) v;
            case S32: return (int) v;
            case B8: case U8: return v & 0xFFL;
            case B16: case U16: case F16: case BF16: return v & 0xFFFFL;
            case B32: case U32: case F32: return v & 0xFFFF_FFFFL;
            case PRED: return v & 1L;
            default: return v;
        }
    }
}
