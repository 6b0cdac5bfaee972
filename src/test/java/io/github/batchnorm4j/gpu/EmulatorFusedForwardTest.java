package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.ReluMask;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.ptx.EmulatorOptions;
import io.github.batchnorm4j.testing.TestData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The fused forward kernels (bn_apply_relu*, cuda/batchnorm_forward.cu) on the device API, every check of the emulator
 * on: eval-mode y and mask bit for bit against a float32 reference written here (the kernel's arithmetic: sqrtf,
 * fmaf, one rounding to the storage type), training-mode y and mask bit for bit against the unfused float32 kernels of
 * the same statistics followed by the host epilogue ({@link ReluMask#apply}), NaN inputs passing through, outputs
 * poisoned before each run, in place, without a mask, and the same bits under shuffled block orders on 1, 108 and 132
 * emulated SMs. The shapes reach both ways of staging coefficients (by plane, and by channel when a tile sees every
 * channel), a period loop of several turns per warp, more work items than blocks, a partial last tile and a partial
 * last mask word.
 */
class EmulatorFusedForwardTest {
    private static final double EPS = 1e-5;
    private static final double MOMENTUM = 0.1;
    private static final int POISON_WORD = 0x5a5a5a5a;

    /** A shape and the emulated device it runs on (SM count, block order seed). */
    record Case(Shape shape, int sms, long seed) {
        @Override
        public String toString() {
            return shape + " on " + sms + " SMs";
        }
    }

    static List<Case> cases() {
        return List.of(
                // every block stages all C channels: partial tile, partial word in a warp's first turn
                new Case(Shape.channelsFirst(2, 3, 5, 7), 132, 3),
                // tile columns staged by plane; more items than blocks (1 SM)
                new Case(Shape.channelsFirst(2, 8, 28, 28), 1, 5),
                // tile columns that see every channel; 4 period turns per warp, the tail in the last
                new Case(Shape.channelsLast(785, 16), 108, 7),
                // 264 channels: plane staging that wraps at C, partial last tile
                new Case(Shape.channelsLast(2, 3, 5, 264), 132, 11),
                // all channels staged; the tail in a warp's eighth turn
                new Case(Shape.channelsLast(151, 48), 132, 13),
                // all channels staged, fewer tiles than warps, a last tile of 16 elements (every slot of a lane past the end)
                new Case(Shape.channelsLast(11, 48), 132, 17));
    }

    static Stream<Object[]> matrix() {
        return matrix(cases());
    }

    private static Stream<Object[]> matrix(List<Case> cases) {
        List<Object[]> out = new ArrayList<>();
        for (Case c : cases) {
            for (DType t : DType.values()) {
                for (boolean vec : new boolean[]{false, true}) {
                    if (vec && !LaunchGeometry.vectorizable(c.shape(), t)) continue;
                    out.add(new Object[]{c, t, vec});
                }
            }
        }
        return out.stream();
    }

    /** Inputs of one run: x (with a few NaNs), z (with a few NaNs), per-channel vectors. */
    private record Inputs(float[] x, float[] z, float[] gamma, float[] beta, float[] rm, float[] rv) {
        static Inputs of(Shape shape, DType dtype, long seed) {
            int n = shape.elementCountAsInt();
            int c = shape.channels();
            SplittableRandom rng = TestData.random(seed);
            float[] x = TestData.perChannelNormal(rng, shape);
            float[] z = TestData.normal(rng, n, 0, 1);
            for (int i = 0; i < n; i += 97) x[i] = Float.NaN;
            for (int i = 5; i < n; i += 89) z[i] = Float.NaN;
            if (dtype != DType.FLOAT32) {   // the values the 16-bit tensors hold
                x = dtype.decode(dtype.encode(x));
                z = dtype.decode(dtype.encode(z));
            }
            return new Inputs(x, z, TestData.uniform(rng, c, 0.5, 1.5), TestData.normal(rng, c, 0, 0.5),
                    TestData.normal(rng, c, 0, 1), TestData.uniform(rng, c, 0.5, 2));
        }
    }

    /** y (as float values of the storage type) and the mask words of one run. */
    record Result(float[] y, int[] mask, float[] saveMean, float[] saveInvstd) {
    }

    /**
     * Runs the fused forward on a fresh emulated device: training (with running statistics) or eval, with or without
     * the residual, the vector path unless {@code vec} is false (then the tensors sit 4 bytes past a 16-byte
     * boundary), y = x when {@code inPlace}, no mask when {@code wantMask} is false (the mask buffer then keeps its
     * poison).
     */
    static Result run(Case k, DType dtype, boolean vec, boolean training, boolean residual, boolean inPlace,
                      boolean wantMask, Inputs in) {
        Shape shape = k.shape();
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        int words = ReluMask.wordsAsInt(n);
        long bytes = (long) dtype.bytes() * n;
        long skew = vec ? 0 : 4;
        EmulatorOptions o = EmulatorOptions.defaults().withMultiprocessorCount(k.sms()).withBlockOrderSeed(k.seed());
        try (EmulatedDevice dev = new EmulatedDevice(o);
             DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev);
             DeviceBuffer bx = dev.allocate(bytes + 32); DeviceBuffer bz = dev.allocate(bytes + 32);
             DeviceBuffer by = dev.allocate(bytes + 32); DeviceBuffer bm = dev.allocate(4L * words);
             DeviceBuffer ch = dev.allocate(6 * 4096L)) {
            DeviceStream s = dev.defaultStream();
            DevicePointer px = bx.at(skew), pz = bz.at(skew), py = inPlace ? px : by.at(skew);
            DevicePointer[] cv = new DevicePointer[6];
            for (int i = 0; i < cv.length; i++) cv[i] = ch.at(4096L * i);
            upload(dev, dtype, in.x(), px);
            upload(dev, dtype, in.z(), pz);
            if (!inPlace) upload(dev, dtype, TestData.poisoned(n), py);
            int[] poison = new int[words];
            Arrays.fill(poison, POISON_WORD);
            dev.copyToDevice(poison, 0, bm.pointer(), words, s);
            dev.copyToDevice(in.gamma(), 0, cv[0], c, s);
            dev.copyToDevice(in.beta(), 0, cv[1], c, s);
            dev.copyToDevice(in.rm(), 0, cv[2], c, s);
            dev.copyToDevice(in.rv(), 0, cv[3], c, s);
            dev.copyToDevice(TestData.poisoned(c), 0, cv[4], c, s);
            dev.copyToDevice(TestData.poisoned(c), 0, cv[5], c, s);
            DevicePointer pzArg = residual ? pz : null;
            DevicePointer pm = wantMask ? bm.pointer() : null;
            if (training) {
                bn.forwardTrainingRelu(shape, dtype, px, pzArg, cv[0], cv[1], EPS, cv[2], cv[3], MOMENTUM, py, pm,
                        cv[4], cv[5], s);
            } else {
                bn.forwardInferenceRelu(shape, dtype, px, pzArg, cv[0], cv[1], cv[2], cv[3], EPS, py, pm, s);
            }
            String kernel = DeviceResidentBatchNorm.name("bn_apply_relu", dtype, vec);
            assertTrue(bn.lastOperationLaunches().stream().anyMatch(l -> l.kernel().equals(kernel)),
                    "expected " + kernel + " among " + bn.lastOperationLaunches());
            int[] mask = new int[words];
            dev.copyToHost(bm.pointer(), mask, 0, words, s);
            float[] mean = new float[c], invstd = new float[c];
            dev.copyToHost(cv[4], mean, 0, c, s);
            dev.copyToHost(cv[5], invstd, 0, c, s);
            return new Result(download(dev, dtype, py, n), mask, mean, invstd);
        }
    }

    private static void upload(Device dev, DType dtype, float[] v, DevicePointer p) {
        if (dtype == DType.FLOAT32) dev.copyToDevice(v, 0, p, v.length, dev.defaultStream());
        else dev.copyToDevice(dtype.encode(v), 0, p, v.length, dev.defaultStream());
    }

    private static float[] download(Device dev, DType dtype, DevicePointer p, int n) {
        if (dtype == DType.FLOAT32) {
            float[] f = TestData.poisoned(n);
            dev.copyToHost(p, f, 0, n, dev.defaultStream());
            return f;
        }
        short[] h = new short[n];
        dev.copyToHost(p, h, 0, n, dev.defaultStream());
        return dtype.decode(h);
    }

    /** The eval-mode fused op as the kernels compute it: float32 coefficients, fmaf, one rounding to dtype. */
    static Result evalReference(Shape shape, DType dtype, Inputs in, boolean residual) {
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        long inner = shape.inner();
        float[] y = new float[n];
        int[] mask = new int[ReluMask.wordsAsInt(n)];
        for (int i = 0; i < n; i++) {
            int ch = (int) ((i / inner) % c);
            float invstd = 1.0f / (float) Math.sqrt(in.rv()[ch] + (float) EPS);
            float a = in.gamma()[ch] * invstd;
            float v = Math.fma(in.x()[i] - in.rm()[ch], a, in.beta()[ch]);
            if (residual) v = v + in.z()[i];
            boolean pass = ReluMask.passes(v);
            y[i] = dtype == DType.FLOAT32 ? ReluMask.relu(v) : dtype.round(ReluMask.relu(v));
            if (pass) mask[i >>> 5] |= 1 << (i & 31);
        }
        return new Result(y, mask, null, null);
    }

    /** The CPU backend's fused eval forward on the same values. */
    static Result cpuEval(Shape shape, DType dtype, Inputs in, boolean residual) {
        int n = shape.elementCountAsInt();
        int[] mask = ReluMask.allocate(shape);
        float[] z = residual ? in.z() : null;
        try (io.github.batchnorm4j.cpu.CpuBatchNormOps cpu = new io.github.batchnorm4j.cpu.CpuBatchNormOps()) {
            if (dtype == DType.FLOAT32) {
                float[] y = new float[n];
                cpu.forwardInferenceRelu(shape, in.x(), z, in.gamma(), in.beta(), in.rm(), in.rv(), EPS, y, mask);
                return new Result(y, mask, null, null);
            }
            short[] y = new short[n];
            cpu.forwardInferenceRelu(shape, dtype, dtype.encode(in.x()), z == null ? null : dtype.encode(z),
                    in.gamma(), in.beta(), in.rm(), in.rv(), EPS, y, mask);
            return new Result(dtype.decode(y), mask, null, null);
        }
    }

    /**
     * The training-mode reference: the unfused float32 kernels (bn_stats_*, bn_apply_*) on the same values, then the
     * host epilogue and one rounding to dtype. Float32 statistics on the scalar path are those of the 16-bit scalar
     * kernels (same geometry, same arithmetic on the widened values); vector paths group 4 floats or 8 halves.
     */
    static Result trainingReference(Case k, DType dtype, boolean vec, Inputs in, boolean residual) {
        Shape shape = k.shape();
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        EmulatorOptions o = EmulatorOptions.defaults().withMultiprocessorCount(k.sms()).withBlockOrderSeed(k.seed());
        float[] y = TestData.poisoned(n);
        float[] mean = new float[c], invstd = new float[c];
        try (EmulatedDevice dev = new EmulatedDevice(o);
             DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev);
             DeviceBuffer bx = dev.allocate(4L * n + 32); DeviceBuffer by = dev.allocate(4L * n + 32);
             DeviceBuffer ch = dev.allocate(6 * 4096L)) {
            DeviceStream s = dev.defaultStream();
            long skew = vec ? 0 : 4;
            DevicePointer[] cv = new DevicePointer[6];
            for (int i = 0; i < cv.length; i++) cv[i] = ch.at(4096L * i);
            dev.copyToDevice(in.x(), 0, bx.at(skew), n, s);
            dev.copyToDevice(in.gamma(), 0, cv[0], c, s);
            dev.copyToDevice(in.beta(), 0, cv[1], c, s);
            dev.copyToDevice(in.rm(), 0, cv[2], c, s);
            dev.copyToDevice(in.rv(), 0, cv[3], c, s);
            bn.forwardTraining(shape, bx.at(skew), cv[0], cv[1], EPS, cv[2], cv[3], MOMENTUM, by.at(skew), cv[4],
                    cv[5], s);
            dev.copyToHost(by.at(skew), y, 0, n, s);
            dev.copyToHost(cv[4], mean, 0, c, s);
            dev.copyToHost(cv[5], invstd, 0, c, s);
        }
        int[] mask = new int[ReluMask.wordsAsInt(n)];
        ReluMask.apply(y, residual ? in.z() : null, y, mask, 0, n);
        if (dtype != DType.FLOAT32) y = dtype.decode(dtype.encode(y));
        return new Result(y, mask, mean, invstd);
    }

    @ParameterizedTest(name = "{0} {1} vec={2}")
    @MethodSource("matrix")
    void evalMatchesTheFloat32ReferenceBitForBit(Case k, DType dtype, boolean vec) {
        Inputs in = Inputs.of(k.shape(), dtype, k.shape().elementCount() + 17);
        for (boolean residual : new boolean[]{false, true}) {
            Result r = run(k, dtype, vec, false, residual, false, true, in);
            Result e = evalReference(k.shape(), dtype, in, residual);
            assertSameValues("eval y residual=" + residual, e.y(), r.y());
            assertArrayEquals(e.mask(), r.mask(), "eval mask residual=" + residual);
            // The CPU backend's coefficients may differ from bn_prepare's in the last bit: y within today's
            // forward tolerance (16-bit: 4 ulp of the type) at the scale of the normalized values, and the same mask
            // bits except where both y are that close to 0.
            Result cpu = cpuEval(k.shape(), dtype, in, residual);
            assertWithinUlps("CPU backend's eval y residual=" + residual, cpu, r, dtype);
        }
    }

    @ParameterizedTest(name = "{0} {1} vec={2}")
    @MethodSource("matrix")
    void trainingMatchesTheUnfusedKernelsAndTheEpilogue(Case k, DType dtype, boolean vec) {
        Inputs in = Inputs.of(k.shape(), dtype, k.shape().elementCount() + 29);
        // A NaN in x makes its channel's statistics NaN: training keeps the NaNs of z only (they pass through the add
        // and the ReLU); eval has both.
        Inputs clean = new Inputs(in.x().clone(), in.z(), in.gamma(), in.beta(), in.rm(), in.rv());
        for (int i = 0; i < clean.x().length; i += 97) clean.x()[i] = 1f + (float) i / clean.x().length;
        if (dtype != DType.FLOAT32) dtype.decode(dtype.encode(clean.x()), clean.x());
        boolean exact = dtype == DType.FLOAT32 || !vec;
        for (boolean residual : new boolean[]{false, true}) {
            Result r = run(k, dtype, vec, true, residual, false, true, clean);
            Result e = trainingReference(k, dtype, vec, clean, residual);
            if (exact) {
                assertSameValues("training y residual=" + residual, e.y(), r.y());
                assertArrayEquals(e.mask(), r.mask(), "training mask residual=" + residual);
                assertSameValues("saveMean", e.saveMean(), r.saveMean());
                assertSameValues("saveInvstd", e.saveInvstd(), r.saveInvstd());
            } else {
                // 16-bit vector statistics merge 8 halves per group, the float32 ones 4: the last bits may differ.
                assertNear(e.y(), r.y(), dtype);
                assertMaskOfY(r);
            }
        }
    }

    @ParameterizedTest(name = "{0} {1} vec={2}")
    @MethodSource("matrix")
    void inPlaceWithoutMaskAndUnderOtherBlockOrdersGivesTheSameBits(Case k, DType dtype, boolean vec) {
        Inputs in = Inputs.of(k.shape(), dtype, k.shape().elementCount() + 31);
        for (int i = 0; i < in.x().length; i += 97) in.x()[i] = 1f;   // finite statistics
        Result base = run(k, dtype, vec, true, true, false, true, in);
        Result inPlace = run(k, dtype, vec, true, true, true, true, in);
        assertSameValues("y = x", base.y(), inPlace.y());
        assertArrayEquals(base.mask(), inPlace.mask(), "mask, y = x");
        Result noMask = run(k, dtype, vec, true, true, false, false, in);
        assertSameValues("y without a mask", base.y(), noMask.y());
        assertSameValues("eval y without a mask or residual", evalReference(k.shape(), dtype, in, false).y(),
                run(k, dtype, vec, false, false, false, false, in).y());
        int[] poison = new int[base.mask().length];
        Arrays.fill(poison, POISON_WORD);
        assertArrayEquals(poison, noMask.mask(), "no mask wanted: the buffer is untouched");
        for (Case other : new Case[]{new Case(k.shape(), k.sms() == 108 ? 132 : 108, k.seed() + 100)}) {
            Result r = run(other, dtype, vec, true, true, false, true, in);
            assertSameValues("y on " + other, base.y(), r.y());
            assertArrayEquals(base.mask(), r.mask(), "mask on " + other);
        }
    }

    @Test
    void aMaskThatOverlapsYIsRefusedBeforeAnythingRuns() {
        Shape shape = Shape.channelsFirst(2, 3, 5, 7);
        int n = shape.elementCountAsInt();
        try (EmulatedDevice dev = new EmulatedDevice(EmulatorOptions.defaults());
             DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev);
             DeviceBuffer bx = dev.allocate(4L * n); DeviceBuffer by = dev.allocate(4L * n);
             DeviceBuffer ch = dev.allocate(4096)) {
            IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                    () -> bn.forwardInferenceRelu(shape, bx.pointer(), null, null, null, ch.at(0), ch.at(1024), EPS,
                            by.pointer(), by.at(64), null));
            assertTrue(e.getMessage().contains("mask") && e.getMessage().contains("y"), e.getMessage());
            assertEquals(0, bn.lastOperationLaunches().size());
            IllegalArgumentException z = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                    () -> bn.forwardTrainingRelu(shape, bx.pointer(), by.pointer(), null, null, EPS, null, null, 0.1,
                            by.pointer(), null, ch.at(0), ch.at(1024), null));
            assertTrue(z.getMessage().contains("z") && z.getMessage().contains("y"), z.getMessage());
        }
    }

    private static void assertSameValues(String what, float[] expected, float[] actual) {
        for (int i = 0; i < expected.length; i++) {
            boolean same = Float.isNaN(expected[i]) ? Float.isNaN(actual[i])
                    : Float.floatToRawIntBits(expected[i]) == Float.floatToRawIntBits(actual[i]);
            if (!same) fail(what + ": element " + i + " expected " + expected[i] + " got " + actual[i]);
        }
    }

    private static void assertNear(float[] expected, float[] actual, DType dtype) {
        double ulp = dtype == DType.FLOAT16 ? 0x1p-10 : 0x1p-7;
        for (int i = 0; i < expected.length; i++) {
            if (Float.isNaN(expected[i])) {
                assertTrue(Float.isNaN(actual[i]), "element " + i + ": expected NaN, got " + actual[i]);
                continue;
            }
            double tol = 2 * ulp * Math.max(Math.abs(expected[i]), 1e-3) + 1e-6;
            if (Math.abs(expected[i] - actual[i]) > tol) {
                fail("element " + i + ": expected " + expected[i] + " got " + actual[i] + " (tolerance " + tol + ")");
            }
        }
    }

    private static void assertWithinUlps(String what, Result expected, Result actual, DType dtype) {
        // float32: the suites' forward tolerance (Tolerances.FORWARD_RTOL); 16-bit: 4 ulp of the type.
        double tol = dtype == DType.FLOAT32 ? io.github.batchnorm4j.testing.Tolerances.FORWARD_RTOL
                : 4 * (dtype == DType.FLOAT16 ? 0x1p-10 : 0x1p-7);
        for (int i = 0; i < expected.y().length; i++) {
            float e = expected.y()[i], a = actual.y()[i];
            if (Float.isNaN(e) || Float.isNaN(a)) {
                assertTrue(Float.isNaN(e) && Float.isNaN(a), what + ": element " + i + " expected " + e + " got " + a);
                continue;
            }
            double t = tol * Math.max(1, Math.abs(e));
            if (Math.abs(e - a) > t) fail(what + ": element " + i + " expected " + e + " got " + a + " (tol " + t + ")");
            if (ReluMask.get(expected.mask(), i) != ReluMask.get(actual.mask(), i) && (e > t || a > t)) {
                fail(what + ": mask bit " + i + " differs with y " + e + " / " + a);
            }
        }
    }

    /** A set bit has y positive or NaN (or a positive v rounded to +0); a clear bit has y exactly +0. */
    private static void assertMaskOfY(Result r) {
        for (int i = 0; i < r.y().length; i++) {
            float y = r.y()[i];
            boolean bit = ReluMask.get(r.mask(), i);
            boolean ok = bit ? (Float.isNaN(y) || y >= 0f && Float.floatToRawIntBits(y) >= 0)
                    : Float.floatToRawIntBits(y) == 0;
            if (!ok) fail("element " + i + ": y = " + y + " with mask bit " + bit);
        }
        int n = r.y().length;
        if ((n & 31) != 0) {
            assertEquals(0, r.mask()[n >>> 5] >>> (n & 31), "bits past the last element must be 0");
        }
    }
}
