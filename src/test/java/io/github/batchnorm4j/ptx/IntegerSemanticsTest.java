package io.github.batchnorm4j.ptx;

import org.junit.jupiter.api.Test;

import java.math.BigInteger;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Integer and bit instructions against Java arithmetic, on random and edge-case operands. */
class IntegerSemanticsTest {

    private static long[][] inputs(long seed) {
        Random r = new Random(seed);
        long[][] in = new long[64][];
        long[] edge = {0, 1, -1, Integer.MIN_VALUE, Integer.MAX_VALUE, 0xFFFFFFFFL, Long.MIN_VALUE, 40, 33, 7};
        for (int t = 0; t < 64; t++) {
            long a = t < edge.length ? edge[t] : r.nextLong();
            long b = t < edge.length ? edge[(t * 3 + 1) % edge.length] : (r.nextBoolean() ? r.nextLong() : r.nextInt(70) - 5);
            if (b == 0) b = 3;
            in[t] = new long[]{a, b, r.nextLong(), 0};
        }
        return in;
    }

    @Test
    void thirtyTwoBitArithmetic() {
        long[][] in = inputs(1);
        String body = "cvt.u32.u64 %r0, %in0; cvt.u32.u64 %r1, %in1; cvt.u32.u64 %r2, %in2;"
                + "mul.hi.s32 %r3, %r0, %r1; mul.hi.u32 %r4, %r0, %r1; mov.b64 %out0, {%r3, %r4};"
                + "div.s32 %r3, %r0, %r1; rem.s32 %r4, %r0, %r1; mov.b64 %out1, {%r3, %r4};"
                + "div.u32 %r3, %r0, %r1; rem.u32 %r4, %r0, %r1; mov.b64 %out2, {%r3, %r4};"
                + "shr.s32 %r3, %r0, %r1; shl.b32 %r4, %r0, %r1; mov.b64 %out3, {%r3, %r4};";
        long[][] out = PtxHarness.run(body, in);
        for (int t = 0; t < in.length; t++) {
            int a = (int) in[t][0], b = (int) in[t][1];
            long ua = a & 0xFFFFFFFFL, ub = b & 0xFFFFFFFFL;
            assertEquals((int) (((long) a * b) >> 32), (int) out[t][0], "mul.hi.s32 " + a + " " + b);
            assertEquals((int) ((ua * ub) >>> 32), (int) (out[t][0] >>> 32), "mul.hi.u32");
            if (b != 0 && !(a == Integer.MIN_VALUE && b == -1)) {
                assertEquals(a / b, (int) out[t][1], "div.s32 " + a + " " + b);
                assertEquals(a % b, (int) (out[t][1] >>> 32), "rem.s32");
            }
            if (b != 0) {
                assertEquals((int) Long.divideUnsigned(ua, ub), (int) out[t][2], "div.u32");
                assertEquals((int) Long.remainderUnsigned(ua, ub), (int) (out[t][2] >>> 32), "rem.u32");
            }
            // shift amounts are unsigned and clamp at 32
            assertEquals(ub >= 32 ? (a < 0 ? -1 : 0) : a >> ub, (int) out[t][3], "shr.s32 " + a + " by " + ub);
            assertEquals(ub >= 32 ? 0 : a << ub, (int) (out[t][3] >>> 32), "shl.b32 " + a + " by " + ub);
        }
    }

    @Test
    void sixtyFourBitAndWideArithmetic() {
        long[][] in = inputs(2);
        String body = "mul.hi.u64 %out0, %in0, %in1; mul.hi.s64 %out1, %in0, %in1;"
                + "cvt.u32.u64 %r0, %in0; cvt.u32.u64 %r1, %in1; mul.wide.s32 %out2, %r0, %r1; mad.wide.u32 %out3, %r0, %r1, %in2;";
        long[][] out = PtxHarness.run(body, in);
        BigInteger two64 = BigInteger.ONE.shiftLeft(64);
        for (int t = 0; t < in.length; t++) {
            long a = in[t][0], b = in[t][1];
            BigInteger ua = new BigInteger(Long.toUnsignedString(a)), ub = new BigInteger(Long.toUnsignedString(b));
            assertEquals(ua.multiply(ub).shiftRight(64).mod(two64).longValue(), out[t][0], "mul.hi.u64");
            assertEquals(BigInteger.valueOf(a).multiply(BigInteger.valueOf(b)).shiftRight(64).longValue(), out[t][1], "mul.hi.s64");
            assertEquals((long) (int) a * (int) b, out[t][2], "mul.wide.s32");
            assertEquals((a & 0xFFFFFFFFL) * (b & 0xFFFFFFFFL) + in[t][2], out[t][3], "mad.wide.u32");
        }
    }

    @Test
    void minMaxAbsNegSignedAndUnsigned() {
        long[][] in = inputs(3);
        String body = "cvt.u32.u64 %r0, %in0; cvt.u32.u64 %r1, %in1;"
                + "min.s32 %r2, %r0, %r1; min.u32 %r3, %r0, %r1; mov.b64 %out0, {%r2, %r3};"
                + "max.s32 %r2, %r0, %r1; max.u32 %r3, %r0, %r1; mov.b64 %out1, {%r2, %r3};"
                + "abs.s32 %r2, %r0; neg.s32 %r3, %r0; mov.b64 %out2, {%r2, %r3};"
                + "min.s64 %out3, %in0, %in1;";
        long[][] out = PtxHarness.run(body, in);
        for (int t = 0; t < in.length; t++) {
            int a = (int) in[t][0], b = (int) in[t][1];
            assertEquals(Math.min(a, b), (int) out[t][0]);
            assertEquals(Integer.compareUnsigned(a, b) <= 0 ? a : b, (int) (out[t][0] >>> 32));
            assertEquals(Math.max(a, b), (int) out[t][1]);
            assertEquals(Integer.compareUnsigned(a, b) >= 0 ? a : b, (int) (out[t][1] >>> 32));
            assertEquals(Math.abs(a), (int) out[t][2]);
            assertEquals(-a, (int) (out[t][2] >>> 32));
            assertEquals(Math.min(in[t][0], in[t][1]), out[t][3]);
        }
    }

    @Test
    void bitInstructions() {
        long[][] in = inputs(4);
        String body = "cvt.u32.u64 %r0, %in0; cvt.u32.u64 %r1, %in1;"
                + "popc.b32 %r2, %r0; clz.b32 %r3, %r0; mov.b64 %out0, {%r2, %r3};"
                + "brev.b32 %r2, %r0; bfe.u32 %r3, %r0, 5, 9; mov.b64 %out1, {%r2, %r3};"
                + "bfe.s32 %r2, %r0, 3, 7; bfi.b32 %r3, %r1, %r0, 8, 12; mov.b64 %out2, {%r2, %r3};"
                + "prmt.b32 %r2, %r0, %r1, 0x7531; prmt.b32 %r3, %r0, %r1, 0x0F8C; mov.b64 %out3, {%r2, %r3};";
        long[][] out = PtxHarness.run(body, in);
        for (int t = 0; t < in.length; t++) {
            int a = (int) in[t][0], b = (int) in[t][1];
            assertEquals(Integer.bitCount(a), (int) out[t][0]);
            assertEquals(Integer.numberOfLeadingZeros(a), (int) (out[t][0] >>> 32));
            assertEquals(Integer.reverse(a), (int) out[t][1]);
            assertEquals((a >>> 5) & 0x1FF, (int) (out[t][1] >>> 32));
            assertEquals((a << (32 - 10)) >> (32 - 7), (int) out[t][2], "bfe.s32");
            int mask = 0xFFF << 8;
            assertEquals((a & ~mask) | ((b << 8) & mask), (int) (out[t][2] >>> 32), "bfi.b32");
            long bytes = (a & 0xFFFFFFFFL) | ((b & 0xFFFFFFFFL) << 32);
            assertEquals(prmtRef(bytes, 0x7531), (int) out[t][3], "prmt 0x7531");
            assertEquals(prmtRef(bytes, 0x0F8C), (int) (out[t][3] >>> 32), "prmt 0x0F8C");
        }
    }

    /** prmt default mode: result byte i = byte sel_i (low 3 bits) of {b,a}, replicated sign when bit 3 is set. */
    private static int prmtRef(long bytes, int sel) {
        int r = 0;
        for (int i = 0; i < 4; i++) {
            int s = (sel >> (4 * i)) & 0xF;
            int v = (int) ((bytes >> (8 * (s & 7))) & 0xFF);
            if ((s & 8) != 0) v = (v & 0x80) != 0 ? 0xFF : 0;
            r |= v << (8 * i);
        }
        return r;
    }

    @Test
    void cvtIntegerWidthsAndSaturation() {
        long[][] in = inputs(5);
        String body = "cvt.u32.u64 %r0, %in0;"
                + "cvt.s64.s32 %out0, %r0; cvt.u64.u32 %out1, %r0;"
                + "cvt.sat.s8.s32 %h0, %r0; cvt.s32.s8 %r1, %h0; cvt.sat.u16.s32 %h1, %r0; cvt.u32.u16 %r2, %h1; mov.b64 %out2, {%r1, %r2};"
                + "cvt.sat.s32.s64 %r3, %in0; cvt.sat.u32.s64 %r4, %in0; mov.b64 %out3, {%r3, %r4};";
        long[][] out = PtxHarness.run(body, in);
        for (int t = 0; t < in.length; t++) {
            int a = (int) in[t][0];
            long w = in[t][0];
            assertEquals((long) a, out[t][0]);
            assertEquals(a & 0xFFFFFFFFL, out[t][1]);
            assertEquals(Math.max(-128, Math.min(127, a)), (int) out[t][2], "cvt.sat.s8.s32 " + a);
            assertEquals(Math.max(0, Math.min(65535, a)), (int) (out[t][2] >>> 32), "cvt.sat.u16.s32 " + a);
            assertEquals((int) Math.max(Integer.MIN_VALUE, Math.min(Integer.MAX_VALUE, w)), (int) out[t][3], "cvt.sat.s32.s64 " + w);
            assertEquals((int) Math.max(0, Math.min(0xFFFFFFFFL, w)), (int) (out[t][3] >>> 32), "cvt.sat.u32.s64 " + w);
        }
    }

    @Test
    void predicateLogicSelpAndPackUnpack() {
        long[][] in = inputs(6);
        String body = "setp.lt.s64 %p0, %in0, %in1; setp.gt.u64 %p1, %in0, %in2;"
                + "and.pred %p2, %p0, %p1; or.pred %p3, %p0, %p1; xor.pred %p4, %p0, %p1; not.pred %p5, %p0;"
                + "selp.b64 %rd0, 1, 0, %p2; selp.b64 %rd1, 2, 0, %p3; selp.b64 %rd2, 4, 0, %p4; selp.b64 %rd3, 8, 0, %p5;"
                + "or.b64 %out0, %rd0, %rd1; or.b64 %out0, %out0, %rd2; or.b64 %out0, %out0, %rd3;"
                + "mov.b64 {%r0, %r1}, %in0; mov.b64 %out1, {%r1, %r0};"
                + "@%p0 mov.b64 %out2, 11; @!%p0 mov.b64 %out2, 22;";
        long[][] out = PtxHarness.run(body, in);
        for (int t = 0; t < in.length; t++) {
            boolean p0 = in[t][0] < in[t][1], p1 = Long.compareUnsigned(in[t][0], in[t][2]) > 0;
            long e = (p0 && p1 ? 1 : 0) | (p0 || p1 ? 2 : 0) | (p0 ^ p1 ? 4 : 0) | (!p0 ? 8 : 0);
            assertEquals(e, out[t][0]);
            assertEquals((in[t][0] >>> 32) | (in[t][0] << 32), out[t][1], "swap halves by unpack/pack");
            assertEquals(p0 ? 11 : 22, out[t][2], "guarded mov");
        }
    }

    @Test
    void funnelShiftAndLop3() {
        long[][] in = inputs(7);
        String body = "cvt.u32.u64 %r0, %in0; cvt.u32.u64 %r1, %in1; cvt.u32.u64 %r2, %in2;"
                + "shf.l.wrap.b32 %r3, %r0, %r1, %r2; shf.r.clamp.b32 %r4, %r0, %r1, %r2; mov.b64 %out0, {%r3, %r4};"
                + "lop3.b32 %r3, %r0, %r1, %r2, 0xE8; lop3.b32 %r4, %r0, %r1, %r2, 0x96; mov.b64 %out1, {%r3, %r4};";
        long[][] out = PtxHarness.run(body, in);
        for (int t = 0; t < in.length; t++) {
            int a = (int) in[t][0], b = (int) in[t][1], c = (int) in[t][2];
            long ba = (a & 0xFFFFFFFFL) | ((long) b << 32);
            int nw = c & 31;
            long nc = Math.min(c & 0xFFFFFFFFL, 32);
            assertEquals((int) ((ba << nw) >>> 32), (int) out[t][0], "shf.l.wrap");
            assertEquals((int) (ba >>> nc), (int) (out[t][0] >>> 32), "shf.r.clamp");
            assertEquals((a & b) | (a & c) | (b & c), (int) out[t][1], "lop3 majority (0xE8)");
            assertEquals(a ^ b ^ c, (int) (out[t][1] >>> 32), "lop3 xor3 (0x96)");
        }
    }
}
