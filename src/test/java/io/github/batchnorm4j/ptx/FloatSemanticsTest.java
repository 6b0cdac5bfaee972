package io.github.batchnorm4j.ptx;

import org.junit.jupiter.api.Test;

import java.math.BigDecimal;
import java.util.Random;

import static io.github.batchnorm4j.ptx.PtxHarness.asD;
import static io.github.batchnorm4j.ptx.PtxHarness.asF;
import static io.github.batchnorm4j.ptx.PtxHarness.d;
import static io.github.batchnorm4j.ptx.PtxHarness.f;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** Float instruction semantics against exact (BigDecimal) references: rounding modes, ftz, sat, NaN rules, cvt. */
class FloatSemanticsTest {
    private static final String[] MODES = {"rn", "rz", "rm", "rp"};

    /** The exact value rounded to float by mode (0 rn-even, 1 rz, 2 rm, 3 rp), found by bracketing. */
    static float roundRef(BigDecimal exact, int mode) {
        float lo = (float) exact.doubleValue();
        while (new BigDecimal(lo).compareTo(exact) > 0) lo = Math.nextDown(lo);
        while (new BigDecimal(Math.nextUp(lo)).compareTo(exact) <= 0) lo = Math.nextUp(lo);
        if (new BigDecimal(lo).compareTo(exact) == 0) return lo;
        float hi = Math.nextUp(lo);
        switch (mode) {
            case 1: return exact.signum() >= 0 ? lo : hi;
            case 2: return lo;
            case 3: return hi;
            default: {
                int c = exact.subtract(new BigDecimal(lo)).compareTo(new BigDecimal(hi).subtract(exact));
                if (c != 0) return c < 0 ? lo : hi;
                return (Float.floatToIntBits(lo) & 1) == 0 ? lo : hi;
            }
        }
    }

    static double roundRefD(BigDecimal exact, int mode) {
        double lo = exact.doubleValue();
        while (new BigDecimal(lo).compareTo(exact) > 0) lo = Math.nextDown(lo);
        while (new BigDecimal(Math.nextUp(lo)).compareTo(exact) <= 0) lo = Math.nextUp(lo);
        if (new BigDecimal(lo).compareTo(exact) == 0) return lo;
        double hi = Math.nextUp(lo);
        switch (mode) {
            case 1: return exact.signum() >= 0 ? lo : hi;
            case 2: return lo;
            case 3: return hi;
            default: {
                int c = exact.subtract(new BigDecimal(lo)).compareTo(new BigDecimal(hi).subtract(exact));
                if (c != 0) return c < 0 ? lo : hi;
                return (Double.doubleToLongBits(lo) & 1) == 0 ? lo : hi;
            }
        }
    }

    private static float randomFloat(Random r) {
        return (float) (r.nextGaussian() * Math.pow(2, r.nextInt(40) - 20));
    }

    private static long[][] inputs(int n, long seed) {
        Random r = new Random(seed);
        long[][] in = new long[n][];
        for (int t = 0; t < n; t++) in[t] = new long[]{f(randomFloat(r)), f(randomFloat(r)), f(randomFloat(r)), 0};
        return in;
    }

    @Test
    void f32ArithmeticInEveryRoundingModeIsExactlyRounded() {
        long[][] in = inputs(64, 5);
        for (int mode = 0; mode < 4; mode++) {
            String md = MODES[mode];
            String body = "cvt.u32.u64 %r0, %in0; mov.b32 %f0, %r0; cvt.u32.u64 %r1, %in1; mov.b32 %f1, %r1;"
                    + "cvt.u32.u64 %r2, %in2; mov.b32 %f2, %r2;"
                    + "add." + md + ".f32 %f3, %f0, %f1; mov.b32 %r3, %f3; cvt.u64.u32 %out0, %r3;"
                    + "mul." + md + ".f32 %f3, %f0, %f1; mov.b32 %r3, %f3; cvt.u64.u32 %out1, %r3;"
                    + "fma." + md + ".f32 %f3, %f0, %f1, %f2; mov.b32 %r3, %f3; cvt.u64.u32 %out2, %r3;"
                    + "div." + md + ".f32 %f3, %f0, %f1; mov.b32 %r3, %f3; cvt.u64.u32 %out3, %r3;";
            long[][] out = PtxHarness.run(body, in);
            for (int t = 0; t < in.length; t++) {
                BigDecimal a = new BigDecimal(asF(in[t][0])), b = new BigDecimal(asF(in[t][1])), c = new BigDecimal(asF(in[t][2]));
                assertEquals(roundRef(a.add(b), mode), asF(out[t][0]), "add." + md + " t=" + t);
                assertEquals(roundRef(a.multiply(b), mode), asF(out[t][1]), "mul." + md + " t=" + t);
                assertEquals(roundRef(a.multiply(b).add(c), mode), asF(out[t][2]), "fma." + md + " t=" + t);
                BigDecimal q = a.divide(b, new java.math.MathContext(80));
                assertEquals(roundRef(q, mode), asF(out[t][3]), "div." + md + " t=" + t);
            }
        }
    }

    @Test
    void f64ArithmeticInEveryRoundingMode() {
        Random r = new Random(8);
        long[][] in = new long[32][];
        for (int t = 0; t < 32; t++) in[t] = new long[]{d(r.nextGaussian() * 1e3), d(r.nextGaussian() * 1e-5), d(r.nextGaussian()), 0};
        for (int mode = 0; mode < 4; mode++) {
            String md = MODES[mode];
            String body = "mov.b64 %fd0, %in0; mov.b64 %fd1, %in1; mov.b64 %fd2, %in2;"
                    + "add." + md + ".f64 %fd3, %fd0, %fd1; mov.b64 %out0, %fd3;"
                    + "mul." + md + ".f64 %fd3, %fd0, %fd1; mov.b64 %out1, %fd3;"
                    + "fma." + md + ".f64 %fd3, %fd0, %fd1, %fd2; mov.b64 %out2, %fd3;"
                    + "sqrt." + md + ".f64 %fd3, %fd2; abs.f64 %fd4, %fd2; sqrt." + md + ".f64 %fd3, %fd4; mov.b64 %out3, %fd3;";
            long[][] out = PtxHarness.run(body, in);
            for (int t = 0; t < in.length; t++) {
                BigDecimal a = new BigDecimal(asD(in[t][0])), b = new BigDecimal(asD(in[t][1])), c = new BigDecimal(asD(in[t][2]));
                assertEquals(roundRefD(a.add(b), mode), asD(out[t][0]), "add." + md);
                assertEquals(roundRefD(a.multiply(b), mode), asD(out[t][1]), "mul." + md);
                assertEquals(roundRefD(a.multiply(b).add(c), mode), asD(out[t][2]), "fma." + md);
                BigDecimal s = c.abs().sqrt(new java.math.MathContext(60));
                assertEquals(roundRefD(s, mode), asD(out[t][3]), "sqrt." + md);
            }
        }
    }

    @Test
    void ftzFlushesSubnormalInputsAndResultsAndSatClamps() {
        float sub = Float.MIN_NORMAL / 4; // subnormal
        long[][] in = {{f(sub), f(1f), f(-sub), 0}, {f(Float.MIN_NORMAL), f(0.25f), f(2f), 0}, {f(Float.NaN), f(0.5f), f(-3f), 0}};
        String body = "cvt.u32.u64 %r0, %in0; mov.b32 %f0, %r0; cvt.u32.u64 %r1, %in1; mov.b32 %f1, %r1;"
                + "cvt.u32.u64 %r2, %in2; mov.b32 %f2, %r2;"
                + "mul.ftz.f32 %f3, %f0, %f1; mov.b32 %r3, %f3; cvt.u64.u32 %out0, %r3;"
                + "mul.f32 %f3, %f0, %f1; mov.b32 %r3, %f3; cvt.u64.u32 %out1, %r3;"
                + "add.sat.f32 %f3, %f1, %f2; mov.b32 %r3, %f3; cvt.u64.u32 %out2, %r3;"
                + "add.ftz.sat.f32 %f3, %f0, %f2; mov.b32 %r3, %f3; cvt.u64.u32 %out3, %r3;";
        long[][] out = PtxHarness.run(body, in);
        assertEquals(0f, asF(out[0][0]));                       // subnormal input flushed
        assertEquals(sub, asF(out[0][1]));                      // without ftz it survives
        assertEquals(0f, asF(out[1][0]));                       // MIN_NORMAL * 0.25 is subnormal: flushed
        assertEquals(Float.MIN_NORMAL / 4, asF(out[1][1]));
        assertEquals(1f, asF(out[0][2]));                       // 1 + (-sub) = 1 (rounded), sat keeps 1
        assertEquals(1f, asF(out[1][2]));                       // 0.25 + 2 clamps to 1
        assertEquals(0f, asF(out[2][2]));                       // 0.5 - 3 clamps to 0
        assertEquals(0f, asF(out[2][3]));                       // NaN + x saturates to 0
        assertEquals(Float.floatToRawIntBits(0f), (int) out[0][3]);
    }

    @Test
    void setpOrderedAndUnorderedComparisonsWithNaNAndCombine() {
        float[][] pairs = {{1f, 2f}, {2f, 1f}, {1f, 1f}, {Float.NaN, 1f}, {1f, Float.NaN}, {-0f, 0f}};
        String[] ops = {"eq", "ne", "lt", "le", "gt", "ge", "equ", "neu", "ltu", "leu", "gtu", "geu", "num", "nan"};
        long[][] in = new long[pairs.length][];
        for (int t = 0; t < pairs.length; t++) in[t] = new long[]{f(pairs[t][0]), f(pairs[t][1]), 0, 0};
        StringBuilder body = new StringBuilder("cvt.u32.u64 %r0, %in0; mov.b32 %f0, %r0; cvt.u32.u64 %r1, %in1; mov.b32 %f1, %r1;"
                + "mov.u64 %out0, 0; mov.u64 %out1, 0;");
        for (int k = 0; k < ops.length; k++) {
            body.append("setp.").append(ops[k]).append(".f32 %p0, %f0, %f1; selp.b64 %rd0, ").append(1L << k)
                    .append(", 0, %p0; or.b64 %out0, %out0, %rd0;");
        }
        // combine: p = (a < b) and !(a is NaN)  |  q = complement
        body.append("setp.nan.f32 %p1, %f0, %f0; setp.lt.and.f32 %p2|%p3, %f0, %f1, !%p1;"
                + "selp.b64 %out1, 1, 0, %p2; selp.b64 %out2, 1, 0, %p3;");
        long[][] out = PtxHarness.run(body.toString(), in);
        for (int t = 0; t < pairs.length; t++) {
            float a = pairs[t][0], b = pairs[t][1];
            boolean nan = Float.isNaN(a) || Float.isNaN(b);
            boolean[] expect = {!nan && a == b, !nan && a != b, !nan && a < b, !nan && a <= b, !nan && a > b,
                    !nan && a >= b, nan || a == b, nan || a != b, nan || a < b, nan || a <= b, nan || a > b,
                    nan || a >= b, !nan, nan};
            for (int k = 0; k < ops.length; k++) {
                assertEquals(expect[k], ((out[t][0] >>> k) & 1) == 1, "setp." + ops[k] + " " + a + " " + b);
            }
            boolean p = (!nan && a < b) && !Float.isNaN(a);
            boolean q = (!(!nan && a < b)) && !Float.isNaN(a);
            assertEquals(p ? 1 : 0, out[t][1], "setp.lt.and p " + a + " " + b);
            assertEquals(q ? 1 : 0, out[t][2], "setp.lt.and q " + a + " " + b);
        }
    }

    @Test
    void minMaxFollowPtxNaNRules() {
        long[][] in = {{f(Float.NaN), f(3f), 0, 0}, {f(2f), f(Float.NaN), 0, 0}, {f(Float.NaN), f(Float.NaN), 0, 0}, {f(-0f), f(0f), 0, 0}};
        String body = "cvt.u32.u64 %r0, %in0; mov.b32 %f0, %r0; cvt.u32.u64 %r1, %in1; mov.b32 %f1, %r1;"
                + "min.f32 %f2, %f0, %f1; mov.b32 %r2, %f2; cvt.u64.u32 %out0, %r2;"
                + "max.f32 %f2, %f0, %f1; mov.b32 %r2, %f2; cvt.u64.u32 %out1, %r2;";
        long[][] out = PtxHarness.run(body, in);
        assertEquals(3f, asF(out[0][0]));
        assertEquals(3f, asF(out[0][1]));
        assertEquals(2f, asF(out[1][0]));
        assertEquals(true, Float.isNaN(asF(out[2][0])));
        assertEquals(Float.floatToRawIntBits(-0f), (int) out[3][0]);
        assertEquals(Float.floatToRawIntBits(0f), (int) out[3][1]);
    }

    @Test
    void cvtFloatToIntRoundsEachWayAndSaturates() {
        float[] vals = {2.5f, 3.5f, -2.5f, -0.5f, 1.7f, -1.7f, Float.NaN, 3e9f, -3e9f, 1e20f, 255.6f, -7f};
        long[][] in = new long[vals.length][];
        for (int t = 0; t < vals.length; t++) in[t] = new long[]{f(vals[t]), 0, 0, 0};
        String body = "cvt.u32.u64 %r0, %in0; mov.b32 %f0, %r0;"
                + "cvt.rni.s32.f32 %r1, %f0; cvt.rzi.s32.f32 %r2, %f0; mov.b64 %out0, {%r1, %r2};"
                + "cvt.rmi.s32.f32 %r1, %f0; cvt.rpi.s32.f32 %r2, %f0; mov.b64 %out1, {%r1, %r2};"
                + "cvt.rni.u32.f32 %r1, %f0; cvt.rni.sat.u8.f32 %h0, %f0; cvt.u32.u16 %r2, %h0; mov.b64 %out2, {%r1, %r2};"
                + "cvt.rzi.s64.f32 %out3, %f0;";
        long[][] out = PtxHarness.run(body, in);
        for (int t = 0; t < vals.length; t++) {
            float v = vals[t];
            assertEquals(sat32(Math.rint(v)), (int) out[t][0], "rni " + v);
            assertEquals(sat32(v < 0 ? Math.ceil(v) : Math.floor(v)), (int) (out[t][0] >>> 32), "rzi " + v);
            assertEquals(sat32(Math.floor(v)), (int) out[t][1], "rmi " + v);
            assertEquals(sat32(Math.ceil(v)), (int) (out[t][1] >>> 32), "rpi " + v);
            double u = Float.isNaN(v) ? 0 : Math.max(0, Math.min(4294967295.0, Math.rint(v)));
            assertEquals((long) u, out[t][2] & 0xFFFFFFFFL, "rni.u32 " + v);
            double u8 = Float.isNaN(v) ? 0 : Math.max(0, Math.min(255, Math.rint(v)));
            assertEquals((long) u8, out[t][2] >>> 32, "rni.u8 " + v);
            assertEquals(Float.isNaN(v) ? 0L : (long) v, out[t][3], "rzi.s64 " + v);
        }
    }

    private static int sat32(double r) {
        if (Double.isNaN(r)) return 0;
        return (int) Math.max(Integer.MIN_VALUE, Math.min(Integer.MAX_VALUE, r));
    }

    @Test
    void cvtBetweenFloatWidthsAndFromIntegersRoundsByMode() {
        Random r = new Random(9);
        long[][] in = new long[32][];
        for (int t = 0; t < 32; t++) in[t] = new long[]{d(r.nextGaussian() * Math.pow(10, r.nextInt(20) - 10)), r.nextLong(), 0, 0};
        for (int mode = 0; mode < 4; mode++) {
            String md = MODES[mode];
            String body = "mov.b64 %fd0, %in0; cvt." + md + ".f32.f64 %f0, %fd0; mov.b32 %r0, %f0; cvt.u64.u32 %out0, %r0;"
                    + "cvt." + md + ".f32.u64 %f1, %in1; mov.b32 %r1, %f1; cvt.u64.u32 %out1, %r1;"
                    + "cvt." + md + ".f64.s64 %fd1, %in1; mov.b64 %out2, %fd1;"
                    + "cvt." + md + ".f32.s64 %f2, %in1; mov.b32 %r2, %f2; cvt.u64.u32 %out3, %r2;";
            long[][] out = PtxHarness.run(body, in);
            for (int t = 0; t < in.length; t++) {
                BigDecimal x = new BigDecimal(asD(in[t][0]));
                assertEquals(roundRef(x, mode), asF(out[t][0]), "cvt." + md + ".f32.f64");
                BigDecimal u = new BigDecimal(new java.math.BigInteger(Long.toUnsignedString(in[t][1])));
                assertEquals(roundRef(u, mode), asF(out[t][1]), "cvt." + md + ".f32.u64 " + Long.toUnsignedString(in[t][1]));
                BigDecimal s = BigDecimal.valueOf(in[t][1]);
                assertEquals(roundRefD(s, mode), asD(out[t][2]), "cvt." + md + ".f64.s64");
                assertEquals(roundRef(s, mode), asF(out[t][3]), "cvt." + md + ".f32.s64");
            }
        }
    }

    @Test
    void approximateFunctionsAreWithinTwoUlpOfDouble() {
        float[] vals = {0.3f, 1f, 2.5f, 7.25f, 100f, 1e-3f};
        long[][] in = new long[vals.length][];
        for (int t = 0; t < vals.length; t++) in[t] = new long[]{f(vals[t]), 0, 0, 0};
        String body = "cvt.u32.u64 %r0, %in0; mov.b32 %f0, %r0;"
                + "rsqrt.approx.f32 %f1, %f0; rcp.approx.ftz.f32 %f2, %f0; mov.b32 %r1, %f1; mov.b32 %r2, %f2; mov.b64 %out0, {%r1, %r2};"
                + "ex2.approx.f32 %f1, %f0; lg2.approx.f32 %f2, %f0; mov.b32 %r1, %f1; mov.b32 %r2, %f2; mov.b64 %out1, {%r1, %r2};"
                + "sin.approx.f32 %f1, %f0; cos.approx.f32 %f2, %f0; mov.b32 %r1, %f1; mov.b32 %r2, %f2; mov.b64 %out2, {%r1, %r2};"
                + "sqrt.approx.f32 %f1, %f0; div.full.f32 %f2, %f0, 0f40400000; mov.b32 %r1, %f1; mov.b32 %r2, %f2; mov.b64 %out3, {%r1, %r2};";
        long[][] out = PtxHarness.run(body, in);
        for (int t = 0; t < vals.length; t++) {
            double v = vals[t];
            double[] expect = {1 / Math.sqrt(v), 1 / v, Math.pow(2, v), Math.log(v) / Math.log(2), Math.sin(v), Math.cos(v),
                    Math.sqrt(v), v / 3};
            for (int k = 0; k < 8; k++) {
                float got = asF(out[t][k / 2] >>> (32 * (k % 2)));
                float e = (float) expect[k];
                assertEquals(e, got, 2 * Math.ulp(e), "approx function " + k + " of " + v);
            }
        }
    }
}
