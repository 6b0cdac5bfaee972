package io.github.batchnorm4j.ptx;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static io.github.batchnorm4j.ptx.PtxHarness.asD;
import static io.github.batchnorm4j.ptx.PtxHarness.asF;
import static io.github.batchnorm4j.ptx.PtxHarness.d;
import static io.github.batchnorm4j.ptx.PtxHarness.f;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** The less common instructions: half conversions, testp, copysign, bfind, cnot, set, 64-bit div/rem, f64 unary. */
class MiscSemanticsTest {

    @Test
    void aTrapWhosePredicateIsFalseInEveryLaneDoesNothing() {
        long[][] in = new long[64][];
        for (int t = 0; t < 64; t++) in[t] = new long[]{t, 0, 0, 0};
        long[][] out = PtxHarness.run("setp.gt.u64 %p0, %in0, 100; @%p0 trap; mov.b64 %out0, 7;", in);
        for (int t = 0; t < 64; t++) assertEquals(7, out[t][0], "thread " + t);
        io.github.batchnorm4j.gpu.DeviceException e = org.junit.jupiter.api.Assertions.assertThrows(
                io.github.batchnorm4j.gpu.DeviceException.class,
                () -> PtxHarness.run("setp.eq.u64 %p0, %in0, 37; @%p0 trap;", in));
        org.junit.jupiter.api.Assertions.assertTrue(e.getMessage().contains("trap executed; block (0,0,0) thread (37,0,0)"),
                e.getMessage());
    }

    @Test
    void halfPrecisionConversions() {
        float[] vals = {1f, 65504f, 1e-7f, 0.1f, -2.5f, 70000f, 0f, -0f, 5.9604645e-8f, 3.0517578e-5f};
        int[] halves = {0x3C00, 0x7BFF, 0x0002, 0x2E66, 0xC100, 0x7C00, 0x0000, 0x8000, 0x0001, 0x0200};
        long[][] in = new long[vals.length][];
        for (int t = 0; t < vals.length; t++) in[t] = new long[]{f(vals[t]), halves[t], 0, 0};
        String body = "cvt.u32.u64 %r0, %in0; mov.b32 %f0, %r0; cvt.rn.f16.f32 %h0, %f0; cvt.u64.u16 %out0, %h0;"
                + "cvt.u16.u64 %h1, %in1; cvt.f32.f16 %f1, %h1; mov.b32 %r1, %f1; cvt.u64.u32 %out1, %r1;"
                + "cvt.rz.f16.f32 %h2, %f0; cvt.u64.u16 %out2, %h2;";
        long[][] out = PtxHarness.run(body, in);
        for (int t = 0; t < vals.length; t++) {
            assertEquals(halves[t], (int) out[t][0], "cvt.rn.f16.f32 " + vals[t]);
            float back = halves[t] == 0x7C00 ? Float.POSITIVE_INFINITY : vals[t];
            if (t == 2) back = 2 * 0x1p-24f; // 1e-7 is not a half: the half 0x0002 is 2^-23
            if (t == 3) back = 0.0999755859375f;
            if (t == 5) back = Float.POSITIVE_INFINITY;
            assertEquals(back, asF(out[t][1]), "cvt.f32.f16 0x" + Integer.toHexString(halves[t]));
        }
        assertEquals(0x7BFF, (int) out[5][2], "rz overflow saturates to the largest half");
        assertEquals(0x2E66, (int) out[3][2], "0.1 rounds down both ways");
    }

    @Test
    void testpCopysignBfindCnotSet() {
        float[] vals = {1f, Float.POSITIVE_INFINITY, Float.NaN, Float.MIN_VALUE, -0f, -3f};
        long[][] in = new long[vals.length][];
        Random r = new Random(3);
        for (int t = 0; t < vals.length; t++) in[t] = new long[]{f(vals[t]), r.nextInt(), t == 4 ? 0 : r.nextInt(1 << 20), 0};
        StringBuilder body = new StringBuilder("cvt.u32.u64 %r0, %in0; mov.b32 %f0, %r0; mov.u64 %out0, 0;");
        String[] kinds = {"finite", "infinite", "number", "notanumber", "normal", "subnormal"};
        for (int k = 0; k < kinds.length; k++) {
            body.append("testp.").append(kinds[k]).append(".f32 %p0, %f0; selp.b64 %rd0, ").append(1 << k)
                    .append(", 0, %p0; or.b64 %out0, %out0, %rd0;");
        }
        body.append("copysign.f32 %f1, %f0, 0f40000000; mov.b32 %r1, %f1;"
                + "cvt.u32.u64 %r2, %in1; bfind.s32 %r3, %r2; mov.b64 %out1, {%r1, %r3};"
                + "cvt.u32.u64 %r4, %in2; bfind.u32 %r5, %r4; bfind.shiftamt.u32 %r6, %r4; mov.b64 %out2, {%r5, %r6};"
                + "cnot.b32 %r7, %r4; set.lt.u32.s32 %r1, %r2, %r4; mov.b64 %out3, {%r7, %r1};");
        long[][] out = PtxHarness.run(body.toString(), in);
        for (int t = 0; t < vals.length; t++) {
            float v = vals[t];
            boolean fin = !Float.isNaN(v) && !Float.isInfinite(v);
            boolean[] e = {fin, Float.isInfinite(v), !Float.isNaN(v), Float.isNaN(v), fin && Math.abs(v) >= Float.MIN_NORMAL,
                    v != 0 && Math.abs(v) < Float.MIN_NORMAL};
            for (int k = 0; k < kinds.length; k++) assertEquals(e[k], ((out[t][0] >> k) & 1) == 1, "testp." + kinds[k] + " " + v);
            assertEquals(Math.copySign(2f, v), asF(out[t][1]), "copysign");
            int a = (int) in[t][1];
            int sa = a < 0 ? ~a : a;
            assertEquals(sa == 0 ? -1 : 31 - Integer.numberOfLeadingZeros(sa), (int) (out[t][1] >>> 32), "bfind.s32 " + a);
            int u = (int) in[t][2];
            assertEquals(u == 0 ? -1 : 31 - Integer.numberOfLeadingZeros(u), (int) out[t][2], "bfind.u32");
            assertEquals(u == 0 ? -1 : Integer.numberOfLeadingZeros(u), (int) (out[t][2] >>> 32), "bfind.shiftamt.u32");
            assertEquals(u == 0 ? 1 : 0, (int) out[t][3], "cnot");
            assertEquals(a < u ? -1 : 0, (int) (out[t][3] >>> 32), "set.lt.u32.s32");
        }
    }

    @Test
    void sixtyFourBitDivisionAndDoubleUnary() {
        Random r = new Random(4);
        long[][] in = new long[32][];
        for (int t = 0; t < 32; t++) in[t] = new long[]{r.nextLong(), r.nextInt(1000) + 1 - (t % 2) * 2000L, d(r.nextGaussian() * 100), 0};
        String body = "div.s64 %rd0, %in0, %in1; rem.s64 %out0, %in0, %in1; xor.b64 %out0, %out0, %rd0;"
                + "div.u64 %out1, %in0, %in1;"
                + "mov.b64 %fd0, %in2; rcp.rn.f64 %fd1, %fd0; neg.f64 %fd2, %fd1; mov.b64 %out2, %fd2;"
                + "cvt.rzi.f64.f64 %fd3, %fd0; abs.f64 %fd4, %fd3; mov.b64 %out3, %fd4;";
        long[][] out = PtxHarness.run(body, in);
        for (int t = 0; t < 32; t++) {
            long a = in[t][0], b = in[t][1];
            assertEquals((a / b) ^ (a % b), out[t][0], "div/rem.s64");
            assertEquals(Long.divideUnsigned(a, b), out[t][1], "div.u64");
            double x = asD(in[t][2]);
            assertEquals(-(1.0 / x), asD(out[t][2]), "rcp.rn.f64, neg");
            assertEquals(Math.abs(x < 0 ? Math.ceil(x) : Math.floor(x)), asD(out[t][3]), "cvt.rzi.f64.f64, abs");
        }
    }
}
