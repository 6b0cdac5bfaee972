package io.github.batchnorm4j.ptx;

/**
 * Arithmetic, logic, comparison and conversion instructions, each applied to the lanes of a mask. Registers hold raw
 * bits ({@link PtxType}); every method reads its operands by the instruction's type.
 */
final class Alu {
    private Alu() {
    }

    private static int lane(int x) {
        return Integer.numberOfTrailingZeros(x);
    }

    static float f(long bits) {
        return Float.intBitsToFloat((int) bits);
    }

    static long fb(float v) {
        return Float.floatToRawIntBits(v);
    }

    static double dd(long bits) {
        return Double.longBitsToDouble(bits);
    }

    static long db(double v) {
        return Double.doubleToRawLongBits(v);
    }

    // ---------------------------------------------------------------- raw integer

    static void mov(long[] R, Insn in, int m) {
        int a = in.a * 32, d = in.d * 32;
        if (m == -1) {
            System.arraycopy(R, a, R, d, 32);
            return;
        }
        for (int x = m; x != 0; x &= x - 1) { int l = lane(x); R[d + l] = R[a + l]; }
    }

    static void add(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) { int l = lane(x); R[d + l] = R[a + l] + R[b + l]; }
    }

    static void sub(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) { int l = lane(x); R[d + l] = R[a + l] - R[b + l]; }
    }

    static void mulLo(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) { int l = lane(x); R[d + l] = R[a + l] * R[b + l]; }
    }

    static void madLo(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, c = in.c * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) { int l = lane(x); R[d + l] = R[a + l] * R[b + l] + R[c + l]; }
    }

    static void and(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) { int l = lane(x); R[d + l] = R[a + l] & R[b + l]; }
    }

    static void or(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) { int l = lane(x); R[d + l] = R[a + l] | R[b + l]; }
    }

    static void xor(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) { int l = lane(x); R[d + l] = R[a + l] ^ R[b + l]; }
    }

    static void neg(long[] R, Insn in, int m) {
        int a = in.a * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) { int l = lane(x); R[d + l] = -R[a + l]; }
    }

    static void not(long[] R, Insn in, int m) {
        int a = in.a * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) { int l = lane(x); R[d + l] = ~R[a + l]; }
    }

    static void cnot(long[] R, Insn in, int m) {
        int a = in.a * 32, d = in.d * 32, t = in.type;
        for (int x = m; x != 0; x &= x - 1) { int l = lane(x); R[d + l] = PtxType.ext(R[a + l], t) == 0 ? 1 : 0; }
    }

    /** shl: shift amounts are unsigned and clamp (≥ width gives 0); low bits of the 64-bit shift are exact. */
    static void shl(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            long s = R[b + l] & 0xFFFF_FFFFL;
            R[d + l] = s >= 64 ? 0 : R[a + l] << s;
        }
    }

    static void shr(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32, t = in.type;
        boolean signed = PtxType.isSigned(t);
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            long s = Math.min(R[b + l] & 0xFFFF_FFFFL, 63);
            long v = PtxType.ext(R[a + l], t);
            R[d + l] = signed ? v >> s : v >>> s;
        }
    }

    // ---------------------------------------------------------------- typed integer

    static void mulWide(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32, t = in.type;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            R[d + l] = PtxType.ext(R[a + l], t) * PtxType.ext(R[b + l], t);
        }
    }

    static void madWide(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, c = in.c * 32, d = in.d * 32, t = in.type;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            R[d + l] = PtxType.ext(R[a + l], t) * PtxType.ext(R[b + l], t) + R[c + l];
        }
    }

    /** mul.hi and mad.hi: the high half of the double-width product (plus c for mad). */
    static void mulHi(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32, t = in.type;
        int size = PtxType.size(t);
        boolean signed = PtxType.isSigned(t);
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            long va = PtxType.ext(R[a + l], t), vb = PtxType.ext(R[b + l], t);
            long hi;
            if (size == 8) hi = signed ? Math.multiplyHigh(va, vb) : unsignedMultiplyHigh(va, vb);
            else hi = (va * vb) >> (size * 8);
            if (in.op == Op.MAD_HI) hi += R[in.c * 32 + l];
            R[d + l] = hi;
        }
    }

    static long unsignedMultiplyHigh(long a, long b) {
        long hi = Math.multiplyHigh(a, b);
        return hi + ((a >> 63) & b) + ((b >> 63) & a);
    }

    static void divRem(long[] R, Insn in, int m, Interpreter it) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32, t = in.type;
        boolean signed = PtxType.isSigned(t);
        boolean div = in.op == Op.DIV_INT;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            long va = PtxType.ext(R[a + l], t), vb = PtxType.ext(R[b + l], t);
            long r;
            if (vb == 0) {
                r = div ? -1L : va; // PTX leaves it unspecified; this matches the hardware's all-ones quotient
            } else if (signed) {
                r = div ? va / vb : va % vb;
            } else {
                r = div ? Long.divideUnsigned(va, vb) : Long.remainderUnsigned(va, vb);
            }
            R[d + l] = r;
        }
    }

    static void minMax(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32, t = in.type;
        boolean signed = PtxType.isSigned(t), min = in.op == Op.MIN_INT;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            long va = PtxType.ext(R[a + l], t), vb = PtxType.ext(R[b + l], t);
            int c = signed ? Long.compare(va, vb) : Long.compareUnsigned(va, vb);
            R[d + l] = (min ? c <= 0 : c >= 0) ? va : vb;
        }
    }

    static void absInt(long[] R, Insn in, int m) {
        int a = in.a * 32, d = in.d * 32, t = in.type;
        for (int x = m; x != 0; x &= x - 1) { int l = lane(x); R[d + l] = Math.abs(PtxType.ext(R[a + l], t)); }
    }

    static void bfe(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, c = in.c * 32, d = in.d * 32, t = in.type;
        int width = PtxType.size(t) * 8;
        boolean signed = PtxType.isSigned(t);
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            long v = PtxType.ext(R[a + l], t);
            int pos = (int) (R[b + l] & 0xFF), len = (int) (R[c + l] & 0xFF);
            long r;
            if (len == 0) {
                r = 0;
            } else {
                int p = Math.min(pos, width - 1);
                long bits = pos >= width ? (signed && v < 0 ? -1L : 0) : v >>> p;
                if (len < 64) bits &= (1L << len) - 1;
                r = bits;
                if (signed) {
                    int sbit = Math.min(pos + len - 1, width - 1);
                    boolean s = ((v >>> sbit) & 1) != 0;
                    if (s && len < 64) r |= -1L << len;
                }
            }
            R[d + l] = r;
        }
    }

    static void bfi(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, c = in.c * 32, e = in.e * 32, d = in.d * 32, t = in.type;
        int width = PtxType.size(t) * 8;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            int pos = (int) (R[c + l] & 0xFF), len = (int) (R[e + l] & 0xFF);
            long f = PtxType.ext(R[b + l], t);
            long src = R[a + l];
            for (int i = 0; i < len && pos + i < width; i++) {
                long bit = (src >>> i) & 1;
                f = (f & ~(1L << (pos + i))) | (bit << (pos + i));
            }
            R[d + l] = f;
        }
    }

    static void bits(long[] R, Insn in, int m) {
        int a = in.a * 32, d = in.d * 32, t = in.type;
        boolean wide = PtxType.size(t) == 8;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            long v = R[a + l];
            long r;
            switch (in.op) {
                case Op.POPC: r = wide ? Long.bitCount(v) : Integer.bitCount((int) v); break;
                case Op.CLZ: r = wide ? Long.numberOfLeadingZeros(v) : Integer.numberOfLeadingZeros((int) v); break;
                case Op.BREV: r = wide ? Long.reverse(v) : Integer.reverse((int) v); break;
                default: { // bfind: position of the most significant non-sign bit, 0xFFFFFFFF if none
                    long s = PtxType.ext(v, t);
                    if (PtxType.isSigned(t) && s < 0) s = ~s;
                    int w = wide ? 64 : 32;
                    long u = wide ? s : s & 0xFFFF_FFFFL;
                    if (u == 0) r = 0xFFFF_FFFFL;
                    else {
                        int pos = 63 - Long.numberOfLeadingZeros(u);
                        r = in.mode == 1 ? (w - 1 - pos) : pos;
                    }
                }
            }
            R[d + l] = r;
        }
    }

    static void prmt(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, c = in.c * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            long bytes = (R[a + l] & 0xFFFF_FFFFL) | ((R[b + l] & 0xFFFF_FFFFL) << 32);
            int sel = (int) R[c + l];
            int r = 0;
            for (int i = 0; i < 4; i++) {
                int s = (sel >>> (4 * i)) & 0xF;
                int byt = (int) (bytes >>> ((s & 7) * 8)) & 0xFF;
                if ((s & 8) != 0) byt = (byt & 0x80) != 0 ? 0xFF : 0;
                r |= byt << (8 * i);
            }
            R[d + l] = r;
        }
    }

    /** shf.{l,r}.{wrap,clamp}.b32: the 64-bit value b:a shifted by c (mod 32 or clamped to 32), a 32-bit window. */
    static void shf(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, c = in.c * 32, d = in.d * 32;
        boolean right = (in.mode & 1) != 0, clamp = (in.mode & 2) != 0;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            long v = (R[a + l] & 0xFFFF_FFFFL) | (R[b + l] << 32);
            long sh = R[c + l] & 0xFFFF_FFFFL;
            int n = clamp ? (int) Math.min(sh, 32) : (int) (sh & 31);
            R[d + l] = right ? (int) (v >>> n) : (int) ((v << n) >>> 32);
        }
    }

    /** sad: c + |a - b| by the type's signedness. */
    static void sad(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, c = in.c * 32, d = in.d * 32, t = in.type;
        boolean signed = PtxType.isSigned(t);
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            long va = PtxType.ext(R[a + l], t), vb = PtxType.ext(R[b + l], t);
            long diff = (signed ? va < vb : Long.compareUnsigned(va, vb) < 0) ? vb - va : va - vb;
            R[d + l] = R[c + l] + diff;
        }
    }

    /** lop3.b32: any three-input logic function given by its truth table immLut. */
    static void lop3(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, c = in.c * 32, d = in.d * 32, e = in.e * 32;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            long va = R[a + l], vb = R[b + l], vc = R[c + l];
            int lut = (int) R[e + l] & 0xFF;
            long r = 0;
            for (int i = 0; i < 8; i++) {
                if ((lut >> i & 1) != 0) r |= ((i & 4) != 0 ? va : ~va) & ((i & 2) != 0 ? vb : ~vb) & ((i & 1) != 0 ? vc : ~vc);
            }
            R[d + l] = r;
        }
    }

    // ---------------------------------------------------------------- compare / select

    static boolean cmpInt(long va, long vb, int cmp, boolean unsigned) {
        int c = unsigned ? Long.compareUnsigned(va, vb) : Long.compare(va, vb);
        switch (cmp) {
            case Op.EQ: return c == 0;
            case Op.NE: return c != 0;
            case Op.LT: return c < 0;
            case Op.LE: return c <= 0;
            case Op.GT: return c > 0;
            case Op.GE: return c >= 0;
            case Op.LO: return Long.compareUnsigned(va, vb) < 0;
            case Op.LS: return Long.compareUnsigned(va, vb) <= 0;
            case Op.HI: return Long.compareUnsigned(va, vb) > 0;
            case Op.HS: return Long.compareUnsigned(va, vb) >= 0;
            default: throw new IllegalStateException("comparison " + cmp + " on integers");
        }
    }

    static boolean cmpFloat(double a, double b, int cmp) {
        boolean nan = Double.isNaN(a) || Double.isNaN(b);
        switch (cmp) {
            case Op.EQ: return !nan && a == b;
            case Op.NE: return !nan && a != b;
            case Op.LT: return !nan && a < b;
            case Op.LE: return !nan && a <= b;
            case Op.GT: return !nan && a > b;
            case Op.GE: return !nan && a >= b;
            case Op.EQU: return nan || a == b;
            case Op.NEU: return nan || a != b;
            case Op.LTU: return nan || a < b;
            case Op.LEU: return nan || a <= b;
            case Op.GTU: return nan || a > b;
            case Op.GEU: return nan || a >= b;
            case Op.NUM: return !nan;
            case Op.NAN: return nan;
            default: throw new IllegalStateException("comparison " + cmp + " on floats");
        }
    }

    private static boolean combine(long[] R, Insn in, int l, boolean r) {
        if (in.boolOp == Op.BOOL_NONE) return r;
        boolean c = ((R[in.c * 32 + l] & 1) != 0) != in.negC;
        switch (in.boolOp) {
            case Op.BOOL_AND: return r && c;
            case Op.BOOL_OR: return r || c;
            default: return r ^ c;
        }
    }

    private static boolean combineNot(long[] R, Insn in, int l, boolean r) {
        return combine(R, in, l, !r);
    }

    static void setpInt(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32, t = in.type, cmp = in.mode;
        boolean unsigned = !PtxType.isSigned(t);
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            boolean r = cmpInt(PtxType.ext(R[a + l], t), PtxType.ext(R[b + l], t), cmp, unsigned);
            R[d + l] = combine(R, in, l, r) ? 1 : 0;
            if (in.d2 >= 0) R[in.d2 * 32 + l] = combineNot(R, in, l, r) ? 1 : 0;
        }
    }

    static double fval(long bits, int t, boolean ftz) {
        if (t == PtxType.F32) {
            float v = f(bits);
            return ftz ? FloatOps.ftz(v) : v;
        }
        return dd(bits);
    }

    static void setpF(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32, t = in.type, cmp = in.mode;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            boolean r = cmpFloat(fval(R[a + l], t, in.ftz), fval(R[b + l], t, in.ftz), cmp);
            R[d + l] = combine(R, in, l, r) ? 1 : 0;
            if (in.d2 >= 0) R[in.d2 * 32 + l] = combineNot(R, in, l, r) ? 1 : 0;
        }
    }

    /** set: like setp, writing 0xFFFFFFFF / 0 for integer destinations and 1.0f / 0.0f for .f32. */
    static void set(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32, t = in.type, cmp = in.mode;
        boolean fl = in.op == Op.SET_F;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            boolean r = fl ? cmpFloat(fval(R[a + l], t, in.ftz), fval(R[b + l], t, in.ftz), cmp)
                    : cmpInt(PtxType.ext(R[a + l], t), PtxType.ext(R[b + l], t), cmp, !PtxType.isSigned(t));
            r = combine(R, in, l, r);
            R[d + l] = in.type2 == PtxType.F32 ? fb(r ? 1f : 0f) : (r ? 0xFFFF_FFFFL : 0);
        }
    }

    static void selp(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, c = in.c * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) { int l = lane(x); R[d + l] = (R[c + l] & 1) != 0 ? R[a + l] : R[b + l]; }
    }

    static void testp(long[] R, Insn in, int m) {
        int a = in.a * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            double v = fval(R[a + l], in.type, false);
            double av = Math.abs(v);
            double minNormal = in.type == PtxType.F32 ? Float.MIN_NORMAL : Double.MIN_NORMAL;
            boolean r;
            switch (in.mode) {
                case 0: r = !Double.isNaN(v) && !Double.isInfinite(v); break;
                case 1: r = Double.isInfinite(v); break;
                case 2: r = !Double.isNaN(v); break;
                case 3: r = Double.isNaN(v); break;
                case 4: r = !Double.isNaN(v) && !Double.isInfinite(v) && av >= minNormal; break;
                default: r = av > 0 && av < minNormal; break;
            }
            R[d + l] = r ? 1 : 0;
        }
    }

    static void copysign(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            // copysign.f32 d, a, b: d gets the sign of a and the rest of b
            if (in.type == PtxType.F32) R[d + l] = fb(Math.copySign(f(R[b + l]), f(R[a + l])));
            else R[d + l] = db(Math.copySign(dd(R[b + l]), dd(R[a + l])));
        }
    }

    // ---------------------------------------------------------------- float fast paths

    static void addF32(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) { int l = lane(x); R[d + l] = fb(f(R[a + l]) + f(R[b + l])); }
    }

    static void subF32(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) { int l = lane(x); R[d + l] = fb(f(R[a + l]) - f(R[b + l])); }
    }

    static void mulF32(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) { int l = lane(x); R[d + l] = fb(f(R[a + l]) * f(R[b + l])); }
    }

    static void fmaF32(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, c = in.c * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            R[d + l] = fb(Math.fma(f(R[a + l]), f(R[b + l]), f(R[c + l])));
        }
    }

    static void addF64(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) { int l = lane(x); R[d + l] = db(dd(R[a + l]) + dd(R[b + l])); }
    }

    static void subF64(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) { int l = lane(x); R[d + l] = db(dd(R[a + l]) - dd(R[b + l])); }
    }

    static void mulF64(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) { int l = lane(x); R[d + l] = db(dd(R[a + l]) * dd(R[b + l])); }
    }

    static void fmaF64(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, c = in.c * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            R[d + l] = db(Math.fma(dd(R[a + l]), dd(R[b + l]), dd(R[c + l])));
        }
    }

    // ---------------------------------------------------------------- float general

    /** add/sub/mul/fma/div with rounding mode, .ftz (f32 inputs and result) and .sat. */
    static void floatArith(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32, mode = in.mode;
        boolean f32 = in.type == PtxType.F32, ftz = in.ftz;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            if (f32) {
                float va = f(R[a + l]), vb = f(R[b + l]);
                if (ftz) {
                    va = FloatOps.ftz(va);
                    vb = FloatOps.ftz(vb);
                }
                float r;
                switch (in.op) {
                    case Op.FADD: r = FloatOps.add(va, vb, mode); break;
                    case Op.FSUB: r = FloatOps.add(va, -vb, mode); break;
                    case Op.FMUL: r = FloatOps.mul(va, vb, mode); break;
                    case Op.FFMA: {
                        float vc = f(R[in.c * 32 + l]);
                        if (ftz) vc = FloatOps.ftz(vc);
                        r = FloatOps.fma(va, vb, vc, mode);
                        break;
                    }
                    default: r = mode < 0 ? (float) ((double) va / vb) : FloatOps.div(va, vb, mode); break;
                }
                if (ftz) r = FloatOps.ftz(r);
                if (in.sat) r = FloatOps.sat(r);
                R[d + l] = fb(r);
            } else {
                double va = dd(R[a + l]), vb = dd(R[b + l]);
                double r;
                switch (in.op) {
                    case Op.FADD: r = FloatOps.addD(va, vb, mode); break;
                    case Op.FSUB: r = FloatOps.addD(va, -vb, mode); break;
                    case Op.FMUL: r = FloatOps.mulD(va, vb, mode); break;
                    case Op.FFMA: r = FloatOps.fmaD(va, vb, dd(R[in.c * 32 + l]), mode); break;
                    default: r = FloatOps.divD(va, vb, mode); break;
                }
                if (in.sat) r = FloatOps.satD(r);
                R[d + l] = db(r);
            }
        }
    }

    /**
     * sqrt/rsqrt/rcp/ex2/lg2/sin/cos/tanh/abs/neg. The .approx forms are computed in double and rounded to the type,
     * i.e. within 1 ulp of the exact value; the hardware's approximations are within about 2 ulp (rsqrt, rcp, ex2, lg2)
     * or 2^-20.9 absolute (sin/cos in [-π, π]), so results may differ from a GPU's in the last bits.
     */
    static void floatUnary(long[] R, Insn in, int m) {
        int a = in.a * 32, d = in.d * 32, mode = in.mode;
        boolean f32 = in.type == PtxType.F32, ftz = in.ftz;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            if (f32) {
                float v = f(R[a + l]);
                if (ftz) v = FloatOps.ftz(v);
                float r;
                switch (in.op) {
                    case Op.FSQRT: r = FloatOps.sqrt(v, mode); break;
                    case Op.FRSQRT: r = (float) (1.0 / Math.sqrt(v)); break;
                    case Op.FRCP: r = mode < 0 ? (float) (1.0 / v) : FloatOps.div(1f, v, mode); break;
                    case Op.FEX2: r = (float) Math.pow(2.0, v); break;
                    case Op.FLG2: r = (float) (Math.log(v) / Math.log(2.0)); break;
                    case Op.FSIN: r = (float) Math.sin(v); break;
                    case Op.FCOS: r = (float) Math.cos(v); break;
                    case Op.FTANH: r = (float) Math.tanh(v); break;
                    case Op.FABS: r = Math.abs(v); break;
                    default: r = -v; break;
                }
                if (ftz) r = FloatOps.ftz(r);
                if (in.sat) r = FloatOps.sat(r);
                R[d + l] = fb(r);
            } else {
                double v = dd(R[a + l]);
                double r;
                switch (in.op) {
                    case Op.FSQRT: r = FloatOps.sqrtD(v, mode); break;
                    case Op.FRSQRT: r = 1.0 / Math.sqrt(v); break;
                    case Op.FRCP: r = FloatOps.divD(1.0, v, mode); break;
                    case Op.FEX2: r = Math.pow(2.0, v); break;
                    case Op.FLG2: r = Math.log(v) / Math.log(2.0); break;
                    case Op.FSIN: r = Math.sin(v); break;
                    case Op.FCOS: r = Math.cos(v); break;
                    case Op.FTANH: r = Math.tanh(v); break;
                    case Op.FABS: r = Math.abs(v); break;
                    default: r = -v; break;
                }
                R[d + l] = db(r);
            }
        }
    }

    static void floatMinMax(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32;
        boolean min = in.op == Op.FMIN;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            if (in.type == PtxType.F32) {
                float va = f(R[a + l]), vb = f(R[b + l]);
                if (in.ftz) {
                    va = FloatOps.ftz(va);
                    vb = FloatOps.ftz(vb);
                }
                R[d + l] = fb(min ? FloatOps.min(va, vb) : FloatOps.max(va, vb));
            } else {
                double va = dd(R[a + l]), vb = dd(R[b + l]);
                R[d + l] = db(min ? FloatOps.minD(va, vb) : FloatOps.maxD(va, vb));
            }
        }
    }

    // ---------------------------------------------------------------- cvt, pack

    static void cvt(long[] R, Insn in, int m) {
        int a = in.a * 32, d = in.d * 32;
        int dt = in.type, st = in.type2;
        if (dt == PtxType.F16X2 || dt == PtxType.BF16X2) {
            cvtPair(R, in, m);
            return;
        }
        int mode = in.mode & 0xFF;
        boolean intRound = (in.mode & 0x100) != 0;
        boolean dFloat = PtxType.isFloat(dt), sFloat = PtxType.isFloat(st);
        boolean sHalf = st == PtxType.F16 || st == PtxType.BF16;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            long v = R[a + l];
            long r;
            if (!dFloat && !sFloat) {
                long s = PtxType.ext(v, st);
                if (in.sat) s = saturate(s, st, dt);
                r = PtxType.ext(s, dt);
            } else if (!dFloat) {
                double fv = srcFloat(v, st, in.ftz);
                r = PtxType.ext(FloatOps.floatToInt(fv, intRound ? mode : Op.RZ, dt), dt);
            } else if (!sFloat) {
                if (dt == PtxType.F32) r = fb(satF(FloatOps.intToFloat(v, st, mode), in.sat));
                else if (dt == PtxType.F64) r = db(satD(FloatOps.intToDouble(v, st, mode), in.sat));
                else r = toHalf(satD(FloatOps.intToDoubleRoundOdd(v, st), in.sat), dt, mode);
            } else {
                double fv = srcFloat(v, st, in.ftz);
                if (intRound) fv = FloatOps.roundIntegral(fv, mode);
                if (sHalf && Double.isNaN(fv) && (dt == PtxType.F32 || dt == PtxType.F64)) {
                    // a 16-bit NaN widens to the canonical NaN (NVIDIA's __internal_half2float: sign and payload
                    // dropped), not to a NaN carrying the 16-bit payload
                    r = dt == PtxType.F32 ? 0x7FFF_FFFFL : 0x7FFF_FFFF_FFFF_FFFFL;
                } else if (dt == PtxType.F32) {
                    float out = st == PtxType.F64 && !intRound ? FloatOps.roundToFloat(fv, 0, mode) : (float) fv;
                    if (in.ftz) out = FloatOps.ftz(out);
                    r = fb(satF(out, in.sat));
                } else if (dt == PtxType.F64) {
                    r = db(satD(fv, in.sat));
                } else {
                    // f16/bf16 destination: fv is the exact source value (f32, f64 or 16-bit), rounded once
                    r = toHalf(satD(fv, in.sat), dt, intRound ? Op.RN : mode);
                }
            }
            R[d + l] = r;
        }
    }

    /** The exact value {@code x} rounded to a .f16 or .bf16 pattern. */
    private static long toHalf(double x, int dt, int mode) {
        return dt == PtxType.BF16 ? FloatOps.doubleToBf16(x, mode) : FloatOps.doubleToHalf(x, mode);
    }

    /** cvt.rn.f16x2.f32 / .bf16x2.f32 d, a, b: a converted to the upper half of d, b to the lower (PTX ISA). */
    private static void cvtPair(long[] R, Insn in, int m) {
        int a = in.a * 32, b = in.b * 32, d = in.d * 32;
        int half = in.type == PtxType.BF16X2 ? PtxType.BF16 : PtxType.F16;
        int mode = in.mode & 0xFF;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            double hi = srcFloat(R[a + l], PtxType.F32, in.ftz);
            double lo = srcFloat(R[b + l], PtxType.F32, in.ftz);
            R[d + l] = (toHalf(satD(hi, in.sat), half, mode) << 16) | toHalf(satD(lo, in.sat), half, mode);
        }
    }

    private static float satF(float v, boolean sat) {
        return sat ? FloatOps.sat(v) : v;
    }

    private static double satD(double v, boolean sat) {
        return sat ? FloatOps.satD(v) : v;
    }

    private static double srcFloat(long v, int st, boolean ftz) {
        switch (st) {
            case PtxType.F32: {
                float f = f(v);
                return ftz ? FloatOps.ftz(f) : f;
            }
            case PtxType.F64: return dd(v);
            case PtxType.BF16: return FloatOps.bf16ToFloat((int) v & 0xFFFF);
            default: return FloatOps.halfToFloat((int) v & 0xFFFF);
        }
    }

    /** Integer-to-integer .sat: clamps the source value to the destination type's range. */
    private static long saturate(long s, int st, int dt) {
        boolean srcUnsigned64 = !PtxType.isSigned(st) && PtxType.size(st) == 8;
        int bits = PtxType.size(dt) * 8;
        if (PtxType.isSigned(dt)) {
            long max = bits == 64 ? Long.MAX_VALUE : (1L << (bits - 1)) - 1, min = bits == 64 ? Long.MIN_VALUE : -(1L << (bits - 1));
            if (srcUnsigned64 && s < 0) return max;
            return Math.max(min, Math.min(max, s));
        }
        long max = bits == 64 ? -1L : (1L << bits) - 1;
        if (srcUnsigned64) return bits == 64 ? s : Long.compareUnsigned(s, max) > 0 ? max : s;
        if (s < 0) return 0;
        return bits == 64 ? s : Math.min(max, s);
    }

    /** mov.bN d, {a, b, ...}: element k goes to bits [k*w, (k+1)*w). */
    static void pack(long[] R, Insn in, int m) {
        int d = in.d * 32;
        int[] v = in.vec;
        int w = PtxType.size(in.type) * 8 / v.length;
        long mask = w == 64 ? -1L : (1L << w) - 1;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            long r = 0;
            for (int k = 0; k < v.length; k++) if (v[k] >= 0) r |= (R[v[k] * 32 + l] & mask) << (k * w);
            R[d + l] = r;
        }
    }

    static void unpack(long[] R, Insn in, int m) {
        int a = in.a * 32;
        int[] v = in.vec;
        int w = PtxType.size(in.type) * 8 / v.length;
        long mask = w == 64 ? -1L : (1L << w) - 1;
        for (int x = m; x != 0; x &= x - 1) {
            int l = lane(x);
            long s = R[a + l];
            for (int k = 0; k < v.length; k++) if (v[k] >= 0) R[v[k] * 32 + l] = (s >>> (k * w)) & mask;
        }
    }
}
