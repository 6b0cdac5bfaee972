package io.github.batchnorm4j.ptx;

import static io.github.batchnorm4j.ptx.PtxHarness.f;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DeviceException;
import io.github.batchnorm4j.gpu.DeviceModule;
import io.github.batchnorm4j.gpu.Dim3;
import io.github.batchnorm4j.gpu.KernelArgs;
import io.github.batchnorm4j.testing.HalfReference;
import io.github.batchnorm4j.testing.HalfReference.Mode;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * The emulator on every instruction nvcc emits for float16 and bfloat16 code (src/test/cuda/half_kernels.cu, compiled
 * for compute_75 like the shipped kernels), against {@link HalfReference}, which is written from the formats'
 * definitions and shares nothing with the emulator's {@code FloatOps}:
 * <ul>
 *   <li>widening, all 65,536 patterns each: {@code cvt.f32.f16} (exact; NaN becomes the canonical 0x7FFFFFFF, as
 *       NVIDIA's conversion does) and bfloat16's {@code mov.b32 %f, {0, %rs}} (exact, payload kept);</li>
 *   <li>narrowing with each rounding mode, on every edge case (each value of the format and its float32 neighbours,
 *       each tie and its neighbours, subnormal boundaries, overflow, NaN payloads) and 2^16 random float32 patterns:
 *       {@code cvt.{rn,rz,rm,rp}.f16.f32}, and the integer code nvcc emits for bfloat16 on compute_75;</li>
 *   <li>16-byte vector loads and stores of eight halves with the {@code mov.b32 {%rs, %rs}} unpacks and packs, 16-bit
 *       scalar loads and stores, and the pair conversions;</li>
 *   <li>the sm_80 forms nvcc emits for newer targets ({@code cvt.rn.bf16.f32}, {@code cvt.rn.f16x2.f32 d, a, b}), by
 *       hand-written PTX.</li>
 * </ul>
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class HalfInstructionsTest {
    private static final String PTX = TestPtx.load("half_kernels.ptx");
    private static final int BLOCK = 256;
    private static final Mode[] MODES = {Mode.NEAREST_EVEN, Mode.TOWARD_ZERO, Mode.DOWN, Mode.UP};
    /**
     * The kernels see the edge cases around every 61st pattern (and always the subnormal boundary, overflow and NaNs);
     * the conversion functions themselves see all of them, in Java ({@link #conversionFunctionsOnEveryEdgeCase}).
     */
    private static final int KERNEL_STRIDE = 61;

    private EmulatedDevice dev;
    private DeviceModule module;

    @BeforeAll
    void open() {
        dev = new EmulatedDevice(EmulatorOptions.defaults());
        module = dev.loadModule("half_kernels.ptx", PTX);
    }

    @AfterAll
    void close() {
        dev.close();
    }

    @Test
    void float16WidensExactlyForAllPatterns() {
        int[] out = widen("h2f", allPatterns());
        HalfReference ref = HalfReference.FLOAT16;
        for (int p = 0; p < 65536; p++) {
            double e = ref.value(p);
            if (Double.isNaN(e)) {
                if (out[p] != 0x7FFFFFFF) fail("cvt.f32.f16 of NaN " + hex(p) + ": expected 0x7FFFFFFF, got " + hex(out[p]));
            } else if (Double.compare(e, Float.intBitsToFloat(out[p])) != 0) {
                fail("cvt.f32.f16 " + hex(p) + ": expected " + e + ", got " + Float.intBitsToFloat(out[p]));
            }
        }
    }

    @Test
    void bfloat16WidensExactlyForAllPatterns() {
        int[] out = widen("b2f", allPatterns());
        HalfReference ref = HalfReference.BFLOAT16;
        for (int p = 0; p < 65536; p++) {
            double e = ref.value(p);
            if (Double.isNaN(e)) {
                // a move, not a conversion: the payload and sign stay
                if (out[p] != p << 16) fail("bf16 NaN " + hex(p) + ": expected bits " + hex(p << 16) + ", got " + hex(out[p]));
            } else if (Double.compare(e, Float.intBitsToFloat(out[p])) != 0) {
                fail("bf16 " + hex(p) + ": expected " + e + ", got " + Float.intBitsToFloat(out[p]));
            }
        }
    }

    @Test
    void float16NarrowsWithEachRoundingMode() {
        assertNarrowing("f2h_modes", HalfReference.FLOAT16);
    }

    @Test
    void bfloat16NarrowsWithEachRoundingMode() {
        assertNarrowing("f2b_modes", HalfReference.BFLOAT16);
    }

    private void assertNarrowing(String kernel, HalfReference ref) {
        float[] edges = ref.edgeFloatArray(KERNEL_STRIDE);
        SplittableRandom rng = new SplittableRandom(kernel.hashCode());
        float[] x = new float[edges.length + 4096];
        System.arraycopy(edges, 0, x, 0, edges.length);
        for (int i = edges.length; i < x.length; i++) x[i] = Float.intBitsToFloat(rng.nextInt());
        int n = x.length;
        short[] y;
        try (DeviceBuffer dx = dev.allocate(4L * n); DeviceBuffer dy = dev.allocate(8L * n)) {
            dev.copyToDevice(x, 0, dx.pointer(), n, dev.defaultStream());
            dev.launch(module.kernel(kernel), Dim3.of(ceilDiv(n, BLOCK)), Dim3.of(BLOCK), 0, dev.defaultStream(),
                    new KernelArgs().ptr(dx).ptr(dy).i32(n));
            y = copyShorts(dy, 4 * n);
        }
        for (int i = 0; i < n; i++) {
            for (int k = 0; k < 4; k++) {
                int got = y[4 * i + k] & 0xFFFF;
                int expected = Float.isNaN(x[i]) ? 0x7FFF : ref.round(x[i], MODES[k]);
                if (got != expected) {
                    fail(kernel + " " + MODES[k] + " of " + x[i] + " (" + hex(Float.floatToRawIntBits(x[i]))
                            + "): expected " + hex(expected) + " (" + ref.value(expected) + "), got " + hex(got) + " ("
                            + ref.value(got) + ")");
                }
            }
        }
    }

    /**
     * The emulator's conversion functions (what every cvt to .f16/.bf16 runs) on every edge case of each format with
     * each rounding mode, and on 2^18 random float32 patterns, against the reference.
     */
    @Test
    void conversionFunctionsOnEveryEdgeCase() {
        SplittableRandom rng = new SplittableRandom(11);
        int[] modes = {Op.RN, Op.RZ, Op.RM, Op.RP};
        for (HalfReference ref : HalfReference.values()) {
            float[] edges = ref.edgeFloatArray();
            float[] x = new float[edges.length + (1 << 18)];
            System.arraycopy(edges, 0, x, 0, edges.length);
            for (int i = edges.length; i < x.length; i++) x[i] = Float.intBitsToFloat(rng.nextInt());
            for (float v : x) {
                for (int k = 0; k < 4; k++) {
                    int got = ref == HalfReference.FLOAT16 ? FloatOps.floatToHalf(v, modes[k])
                            : FloatOps.doubleToBf16(v, modes[k]);
                    int expected = Float.isNaN(v) ? 0x7FFF : ref.round(v, MODES[k]);
                    if (got != expected) {
                        fail(ref + " " + MODES[k] + " of " + v + " (" + hex(Float.floatToRawIntBits(v)) + "): expected "
                                + hex(expected) + ", got " + hex(got));
                    }
                }
            }
        }
    }

    @Test
    void eightHalvesPerVectorLoadAndStore() {
        assertScale8("scale8_h", HalfReference.FLOAT16);
        assertScale8("scale8_b", HalfReference.BFLOAT16);
    }

    /** y = round(fma(x, a, b)) for 8 halves per 16-byte vector; inputs all finite patterns, including subnormals. */
    private void assertScale8(String kernel, HalfReference ref) {
        int vectors = 1000;
        short[] x = new short[8 * vectors];
        SplittableRandom rng = new SplittableRandom(7);
        for (int i = 0; i < x.length; i++) {
            int p;
            do {
                p = rng.nextInt(65536);
            } while (Double.isNaN(ref.value(p)));
            x[i] = (short) p;
        }
        float a = -1.75f;
        float b = 0.3f;
        short[] y;
        try (DeviceBuffer dx = dev.allocate(2L * x.length); DeviceBuffer dy = dev.allocate(2L * x.length)) {
            copyShorts(x, dx);
            dev.launch(module.kernel(kernel), Dim3.of(ceilDiv(vectors, BLOCK)), Dim3.of(BLOCK), 0,
                    dev.defaultStream(), new KernelArgs().ptr(dx).ptr(dy).i32(vectors).f32(a).f32(b));
            y = copyShorts(dy, x.length);
        }
        for (int i = 0; i < x.length; i++) {
            double r = Math.fma((float) ref.value(x[i]), a, b);
            int expected = Double.isNaN(r) ? 0x7FFF : ref.round((float) r, Mode.NEAREST_EVEN);
            if ((y[i] & 0xFFFF) != expected) {
                fail(kernel + " element " + i + " x = " + ref.value(x[i]) + ": expected " + hex(expected) + ", got "
                        + hex(y[i] & 0xFFFF));
            }
        }
    }

    @Test
    void pairConversionsPutTheFirstValueInTheLowHalf() {
        for (HalfReference ref : HalfReference.values()) {
            String kernel = ref == HalfReference.FLOAT16 ? "pair_h" : "pair_b";
            float[] x = ref.edgeFloatArray(4 * KERNEL_STRIDE);
            int pairs = x.length / 2;
            int[] out = new int[pairs];
            try (DeviceBuffer dx = dev.allocate(8L * pairs); DeviceBuffer dy = dev.allocate(4L * pairs)) {
                dev.copyToDevice(x, 0, dx.pointer(), 2 * pairs, dev.defaultStream());
                dev.launch(module.kernel(kernel), Dim3.of(ceilDiv(pairs, BLOCK)), Dim3.of(BLOCK), 0,
                        dev.defaultStream(), new KernelArgs().ptr(dx).ptr(dy).i32(pairs));
                dev.copyToHost(dy.pointer(), out, 0, pairs, dev.defaultStream());
            }
            for (int i = 0; i < pairs; i++) {
                int lo = narrow(ref, x[2 * i]);
                int hi = narrow(ref, x[2 * i + 1]);
                assertEquals(hex(lo | hi << 16), hex(out[i]), kernel + " of " + x[2 * i] + ", " + x[2 * i + 1]);
            }
        }
    }

    private static int narrow(HalfReference ref, float v) {
        return Float.isNaN(v) ? 0x7FFF : ref.round(v, Mode.NEAREST_EVEN);
    }

    // ---- forms nvcc emits for sm_80 and newer (hand-written PTX) -------------------------------------------------

    @Test
    void sm80ConversionFormsRoundLikeTheReference() {
        float[] vals = {1f + 0x1p-8f, 1f + 3 * 0x1p-8f, -1f / 3, 65520f, 0x1p-25f, 1e-40f, Float.MAX_VALUE,
                Float.NaN, Float.NEGATIVE_INFINITY, -0f, 3.0e38f, 0x1.fffp-15f};
        String body = "cvt.u32.u64 %r0, %in0; mov.b32 %f0, %r0; cvt.u32.u64 %r1, %in1; mov.b32 %f1, %r1;"
                + "cvt.rn.bf16.f32 %h0, %f0; cvt.u64.u16 %out0, %h0;"
                + "cvt.rz.bf16.f32 %h1, %f0; cvt.u64.u16 %out1, %h1;"
                + "cvt.rn.f16x2.f32 %r2, %f0, %f1; cvt.u64.u32 %out2, %r2;"
                + "cvt.rn.bf16x2.f32 %r3, %f0, %f1; cvt.u64.u32 %out3, %r3;";
        long[][] in = new long[vals.length][4];
        for (int t = 0; t < vals.length; t++) {
            in[t][0] = f(vals[t]);
            in[t][1] = f(vals[(t + 1) % vals.length]);
        }
        long[][] out = PtxHarness.run(body, in);
        HalfReference h = HalfReference.FLOAT16;
        HalfReference b = HalfReference.BFLOAT16;
        for (int t = 0; t < vals.length; t++) {
            float a = vals[t];
            float c = vals[(t + 1) % vals.length];
            assertEquals(hex(narrow(b, a)), hex((int) out[t][0]), "cvt.rn.bf16.f32 " + a);
            assertEquals(hex(Float.isNaN(a) ? 0x7FFF : b.round(a, Mode.TOWARD_ZERO)), hex((int) out[t][1]),
                    "cvt.rz.bf16.f32 " + a);
            assertEquals(hex(narrow(h, a) << 16 | narrow(h, c)), hex((int) out[t][2]), "cvt.rn.f16x2.f32 " + a + ", " + c);
            assertEquals(hex(narrow(b, a) << 16 | narrow(b, c)), hex((int) out[t][3]), "cvt.rn.bf16x2.f32 " + a + ", " + c);
        }
    }

    @Test
    void bfloat16WidensByCvtAndDoubleNarrowsWithoutDoubleRounding() {
        // cvt.f32.bf16 (sm_90): exact; NaN canonical. cvt.rn.f16.f64 of 1 + 2^-11 + 2^-40: a float detour would make
        // it the tie 1 + 2^-11 and round to 1; the exact value rounds up to 1 + 2^-10.
        int[] pats = {0x3F80, 0x0001, 0x8080, 0x7F80, 0xFFC1, 0x7F81};
        long[][] in = new long[pats.length][4];
        for (int t = 0; t < pats.length; t++) {
            in[t][0] = pats[t];
            in[t][1] = Double.doubleToRawLongBits(1 + 0x1p-11 + 0x1p-40 * (t + 1));
        }
        long[][] out = PtxHarness.run("cvt.u16.u64 %h0, %in0; cvt.f32.bf16 %f0, %h0; mov.b32 %r0, %f0;"
                + "cvt.u64.u32 %out0, %r0; mov.b64 %fd0, %in1; cvt.rn.f16.f64 %h1, %fd0; cvt.u64.u16 %out1, %h1;", in);
        for (int t = 0; t < pats.length; t++) {
            double e = HalfReference.BFLOAT16.value(pats[t]);
            int got = (int) out[t][0];
            if (Double.isNaN(e)) assertEquals(hex(0x7FFFFFFF), hex(got), "cvt.f32.bf16 NaN");
            else assertEquals(e, Float.intBitsToFloat(got), "cvt.f32.bf16 " + hex(pats[t]));
            assertEquals(hex(0x3C01), hex((int) out[t][1]), "cvt.rn.f16.f64");
        }
    }

    @Test
    void sixteenBitArithmeticIsReportedUnsupported() {
        for (String insn : new String[] {"add.rn.f16 %h2, %h0, %h1;", "fma.rn.bf16 %h2, %h0, %h1, %h0;",
                "add.f16x2 %r2, %r0, %r1;", "cvt.rn.relu.f16.f32 %h2, %f0;", "mul.rn.bf16x2 %r2, %r0, %r1;"}) {
            DeviceException e = assertThrows(DeviceException.class,
                    () -> PtxHarness.run("mov.b16 %h0, 0; mov.b16 %h1, 0; mov.b32 %r0, 0; mov.b32 %r1, 0;"
                            + "mov.f32 %f0, 0f00000000;" + insn, new long[1][4]));
            assertTrue(e.getMessage().contains("unsupported instruction"), insn + ": " + e.getMessage());
        }
    }

    // ---- helpers --------------------------------------------------------------------------------------------------

    private int[] widen(String kernel, short[] x) {
        int n = x.length;
        int[] out = new int[n];
        try (DeviceBuffer dx = dev.allocate(2L * n); DeviceBuffer dy = dev.allocate(4L * n)) {
            copyShorts(x, dx);
            dev.copyToDevice(new int[n], 0, dy.pointer(), n, dev.defaultStream());
            dev.launch(module.kernel(kernel), Dim3.of(ceilDiv(n, BLOCK)), Dim3.of(BLOCK), 0, dev.defaultStream(),
                    new KernelArgs().ptr(dx).ptr(dy).i32(n));
            dev.copyToHost(dy.pointer(), out, 0, n, dev.defaultStream());
        }
        return out;
    }

    private static short[] allPatterns() {
        short[] s = new short[65536];
        for (int p = 0; p < s.length; p++) s[p] = (short) p;
        return s;
    }

    /** Little-endian pairs of shorts as ints (the device copies ints); n even. */
    private void copyShorts(short[] s, DeviceBuffer to) {
        int[] w = new int[s.length / 2];
        for (int i = 0; i < w.length; i++) w[i] = (s[2 * i] & 0xFFFF) | (s[2 * i + 1] << 16);
        dev.copyToDevice(w, 0, to.pointer(), w.length, dev.defaultStream());
    }

    private short[] copyShorts(DeviceBuffer from, int n) {
        int[] w = new int[n / 2];
        dev.copyToHost(from.pointer(), w, 0, w.length, dev.defaultStream());
        short[] s = new short[n];
        for (int i = 0; i < w.length; i++) {
            s[2 * i] = (short) w[i];
            s[2 * i + 1] = (short) (w[i] >>> 16);
        }
        return s;
    }

    private static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }

    private static String hex(int v) {
        return String.format("0x%X", v);
    }
}
