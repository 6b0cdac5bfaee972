package io.github.batchnorm4j;

import static io.github.batchnorm4j.testing.Tolerances.FORWARD_RTOL;
import static io.github.batchnorm4j.testing.Tolerances.assertClose;
import static io.github.batchnorm4j.testing.Tolerances.assertDbeta;
import static io.github.batchnorm4j.testing.Tolerances.assertDgamma;
import static io.github.batchnorm4j.testing.Tolerances.assertDx;
import static io.github.batchnorm4j.testing.Tolerances.assertForward;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.batchnorm4j.testing.HalfTolerances;
import io.github.batchnorm4j.testing.Messages;
import io.github.batchnorm4j.testing.Reference64;
import io.github.batchnorm4j.testing.TestData;
import io.github.batchnorm4j.testing.Tolerances;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The contract of the fused batch norm + (add) + ReLU operations of {@link BatchNormOps} ({@code forwardTrainingRelu}
 * and the three others), for any backend: against the float64 {@link Reference64} (y = relu(bn(x) + z), the mask,
 * dx, dgamma, dbeta, dz = dy gated by the mask), and bit for bit against the backend's own unfused operation followed
 * by the epilogue (the fused kernels promise the unfused op's bits).
 *
 * <p>The mask is judged element by element: where the float64 pre-activation v is farther from 0 than the forward
 * tolerance, the bit must be the sign of v; within it either bit is right (float32 may round v to either side), but it
 * must agree with y (y = v exactly where the bit is 1, +0 where it is 0). Bits past the last element must be 0.
 * Backward takes an arbitrary mask (random bits), so gating is tested independently of the forward.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
public abstract class FusedReluContractTest {
    protected static final double EPS = 1e-5;
    protected static final double MOMENTUM = 0.1;

    private BatchNormOps ops;

    /** Opens the backend under test; called once per test class. */
    protected abstract BatchNormOps openOps();

    /** Whether the backend computes eval-mode backward (cuDNN does not). */
    protected boolean supportsBackwardInference() {
        return true;
    }

    /**
     * Shapes: both layouts, C = 1 and many channels, element counts not a multiple of 32 (a partial last mask word),
     * inner = 1, plain [N, C]; a slow backend overrides this with fewer.
     */
    protected List<Shape> shapes() {
        return List.of(
                Shape.channelsFirst(2, 3, 5, 7),      // 210 elements: a partial last word
                Shape.channelsFirst(1, 1, 300),
                Shape.channelsFirst(3, 5, 1),         // inner = 1
                Shape.channelsFirst(4, 4, 9, 9),
                Shape.channelsFirst(8, 5, 33, 31),
                Shape.channelsLast(7, 5),             // plain [N, C]
                Shape.channelsLast(300, 1),
                Shape.channelsLast(2, 9, 9, 4),
                Shape.channelsLast(1, 17, 19, 5),
                Shape.channelsLast(4, 33, 31, 6));
    }

    @BeforeAll
    void openBackend() {
        ops = openOps();
    }

    @AfterAll
    void closeBackend() {
        if (ops != null) ops.close();
    }

    protected final BatchNormOps ops() {
        return ops;
    }

    /** (shape, affine, residual): each shape with and without a residual, affine alternating. */
    Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        int k = 0;
        for (Shape s : shapes()) {
            out.add(Arguments.of(s, k % 2 == 0, true));
            out.add(Arguments.of(s, k % 2 == 1, false));
            k++;
        }
        return out.stream();
    }

    /** The inputs of one case from a seed derived from it; z (the residual) is null when not wanted. */
    protected static final class Inputs {
        final float[] x;
        final float[] z;
        final float[] dy;
        final float[] gamma;
        final float[] beta;
        final float[] runningMean;
        final float[] runningVar;
        final int[] mask;   // random bits (backward), padding bits 0

        Inputs(Shape shape, boolean affine, boolean residual, long salt) {
            SplittableRandom rng = TestData.random(shape.hashCode() * 31L + (affine ? 1 : 0) + (residual ? 2 : 0)
                    + salt * 1_000_003L);
            int n = shape.elementCountAsInt();
            int c = shape.channels();
            x = TestData.perChannelNormal(rng, shape);
            z = residual ? TestData.normal(rng, n, 0.2, 1) : null;
            dy = TestData.normal(rng, n, 0, 1);
            gamma = affine ? TestData.uniform(rng, c, 0.5, 1.5) : null;
            beta = affine ? TestData.normal(rng, c, 0, 1) : null;
            runningMean = TestData.normal(rng, c, 0, 1);
            runningVar = TestData.uniform(rng, c, 0.5, 2);
            mask = ReluMask.allocate(shape);
            for (int i = 0; i < n; i++) if (rng.nextBoolean()) mask[i >>> 5] |= 1 << (i & 31);
        }
    }

    /** A mask poisoned with every bit set, so unwritten words and padding bits show. */
    static int[] poisonedMask(Shape shape) {
        int[] m = ReluMask.allocate(shape);
        java.util.Arrays.fill(m, -1);
        return m;
    }

    // ---- forward --------------------------------------------------------------------------------------------------

    @ParameterizedTest(name = "{0} affine={1} residual={2}")
    @MethodSource("cases")
    void forwardTrainingMatchesReferenceAndTheUnfusedOp(Shape shape, boolean affine, boolean residual) {
        Inputs in = new Inputs(shape, affine, residual, 1);
        Reference64.Forward e = Reference64.forwardTraining(shape, in.x, in.gamma, in.beta, EPS, in.runningMean,
                in.runningVar, MOMENTUM);
        double[] v = Reference64.preActivation(e.y(), Reference64.wide(in.z));
        float[] rm = in.runningMean.clone();
        float[] rv = in.runningVar.clone();
        float[] y = TestData.poisoned(in.x.length);
        int[] mask = poisonedMask(shape);
        float[] saveMean = TestData.poisoned(shape.channels());
        float[] saveInvstd = TestData.poisoned(shape.channels());
        float[] x = in.x.clone();
        float[] z = in.z == null ? null : in.z.clone();

        ops.forwardTrainingRelu(shape, x, z, in.gamma, in.beta, EPS, rm, rv, MOMENTUM, y, mask, saveMean, saveInvstd);

        assertY(v, y, mask, shape);
        assertForward("saveMean", e.mean(), saveMean);
        assertForward("saveInvstd", e.invstd(), saveInvstd);
        assertForward("runningMean", e.runningMean(), rm);
        assertForward("runningVar", e.runningVar(), rv);
        assertArrayEquals(in.x, x, "x must not be modified");
        if (z != null) assertArrayEquals(in.z, z, "z must not be modified");

        // The unfused op and the epilogue on the same backend: the same bits.
        float[] yu = TestData.poisoned(in.x.length);
        float[] rmu = in.runningMean.clone();
        float[] rvu = in.runningVar.clone();
        float[] smu = new float[shape.channels()];
        float[] siu = new float[shape.channels()];
        ops.forwardTraining(shape, in.x, in.gamma, in.beta, EPS, rmu, rvu, MOMENTUM, yu, smu, siu);
        int[] mu = ReluMask.allocate(shape);
        ReluMask.apply(yu, in.z, yu, mu, 0, yu.length);
        assertSameBits("y vs unfused + epilogue", yu, y);
        assertArrayEquals(mu, mask, "mask vs unfused + epilogue");
        assertSameBits("saveMean vs unfused", smu, saveMean);
        assertSameBits("saveInvstd vs unfused", siu, saveInvstd);
        assertSameBits("runningMean vs unfused", rmu, rm);
        assertSameBits("runningVar vs unfused", rvu, rv);
    }

    @ParameterizedTest(name = "{0} affine={1} residual={2}")
    @MethodSource("cases")
    void forwardInferenceMatchesReferenceAndTheUnfusedOp(Shape shape, boolean affine, boolean residual) {
        Inputs in = new Inputs(shape, affine, residual, 2);
        double[] bn = Reference64.forwardEval(shape, in.x, in.gamma, in.beta, in.runningMean, in.runningVar, EPS);
        double[] v = Reference64.preActivation(bn, Reference64.wide(in.z));
        float[] y = TestData.poisoned(in.x.length);
        int[] mask = poisonedMask(shape);

        ops.forwardInferenceRelu(shape, in.x, in.z, in.gamma, in.beta, in.runningMean, in.runningVar, EPS, y, mask);

        assertY(v, y, mask, shape);
        float[] yu = TestData.poisoned(in.x.length);
        ops.forwardInference(shape, in.x, in.gamma, in.beta, in.runningMean, in.runningVar, EPS, yu);
        int[] mu = ReluMask.allocate(shape);
        ReluMask.apply(yu, in.z, yu, mu, 0, yu.length);
        assertSameBits("y vs unfused + epilogue", yu, y);
        assertArrayEquals(mu, mask, "mask vs unfused + epilogue");

        // Without a mask (not wanted): the same y.
        float[] y2 = TestData.poisoned(in.x.length);
        ops.forwardInferenceRelu(shape, in.x, in.z, in.gamma, in.beta, in.runningMean, in.runningVar, EPS, y2, null);
        assertSameBits("y without a mask", y, y2);
    }

    // ---- backward -------------------------------------------------------------------------------------------------

    @ParameterizedTest(name = "{0} affine={1} residual={2}")
    @MethodSource("cases")
    void backwardTrainingMatchesReferenceAndTheUnfusedOp(Shape shape, boolean affine, boolean residual) {
        Inputs in = new Inputs(shape, affine, residual, 3);
        Reference64.Forward f = Reference64.forwardTraining(shape, in.x, in.gamma, in.beta, EPS, null, null, 0);
        float[] saveMean = toFloat(f.mean());
        float[] saveInvstd = toFloat(f.invstd());
        boolean[] passed = Reference64.bits(in.mask, in.x.length);
        double[] g = Reference64.gate(Reference64.wide(in.dy), passed);
        Reference64.Backward e = Reference64.backwardTraining(shape, Reference64.wide(in.x), g,
                Reference64.wide(in.gamma), Reference64.wide(saveMean), Reference64.wide(saveInvstd));
        float[] dx = TestData.poisoned(in.x.length);
        float[] dz = residual ? TestData.poisoned(in.x.length) : null;
        float[] dgamma = TestData.poisoned(shape.channels());
        float[] dbeta = TestData.poisoned(shape.channels());
        float[] dy = in.dy.clone();
        int[] mask = in.mask.clone();

        ops.backwardTrainingRelu(shape, in.x, dy, mask, in.gamma, saveMean, saveInvstd, dx, dz, dgamma, dbeta);

        assertDx(e, dx);
        assertDgamma(e, dgamma);
        assertDbeta(e, dbeta);
        if (dz != null) assertGated(in.dy, passed, dz);
        assertArrayEquals(in.dy, dy, "dy must not be modified");
        assertArrayEquals(in.mask, mask, "mask must not be modified");

        float[] gu = new float[in.x.length];
        ReluMask.gate(in.dy, in.mask, gu, 0, gu.length);
        float[] dxu = TestData.poisoned(in.x.length);
        float[] dgu = new float[shape.channels()];
        float[] dbu = new float[shape.channels()];
        ops.backwardTraining(shape, in.x, gu, in.gamma, saveMean, saveInvstd, dxu, dgu, dbu);
        assertSameBits("dx vs gating + unfused", dxu, dx);
        assertSameBits("dgamma vs gating + unfused", dgu, dgamma);
        assertSameBits("dbeta vs gating + unfused", dbu, dbeta);
    }

    @ParameterizedTest(name = "{0} affine={1} residual={2}")
    @MethodSource("cases")
    void backwardInferenceMatchesReference(Shape shape, boolean affine, boolean residual) {
        org.junit.jupiter.api.Assumptions.assumeTrue(supportsBackwardInference(),
                () -> ops.name() + " has no eval-mode backward");
        Inputs in = new Inputs(shape, affine, residual, 4);
        boolean[] passed = Reference64.bits(in.mask, in.x.length);
        double[] g = Reference64.gate(Reference64.wide(in.dy), passed);
        Reference64.Backward e = Reference64.backwardEval(shape, Reference64.wide(in.x), g,
                Reference64.wide(in.gamma), Reference64.wide(in.runningMean), Reference64.wide(in.runningVar), EPS);
        float[] dx = TestData.poisoned(in.x.length);
        float[] dz = residual ? TestData.poisoned(in.x.length) : null;
        float[] dgamma = TestData.poisoned(shape.channels());
        float[] dbeta = TestData.poisoned(shape.channels());

        ops.backwardInferenceRelu(shape, in.x, in.dy, in.mask, in.gamma, in.runningMean, in.runningVar, EPS, dx, dz,
                dgamma, dbeta);

        assertDx(e, dx);
        assertDgamma(e, dgamma);
        assertDbeta(e, dbeta);
        if (dz != null) assertGated(in.dy, passed, dz);
    }

    /** A training step: fused forward, then fused backward through the forward's own mask and saved statistics. */
    @ParameterizedTest(name = "{0} affine={1} residual={2}")
    @MethodSource("cases")
    void trainingStepThroughTheForwardsMask(Shape shape, boolean affine, boolean residual) {
        Inputs in = new Inputs(shape, affine, residual, 5);
        int n = in.x.length;
        float[] y = new float[n];
        int[] mask = ReluMask.allocate(shape);
        float[] saveMean = new float[shape.channels()];
        float[] saveInvstd = new float[shape.channels()];
        ops.forwardTrainingRelu(shape, in.x, in.z, in.gamma, in.beta, EPS, null, null, 0, y, mask, saveMean,
                saveInvstd);
        float[] dx = TestData.poisoned(n);
        float[] dz = TestData.poisoned(n);
        float[] dgamma = TestData.poisoned(shape.channels());
        float[] dbeta = TestData.poisoned(shape.channels());
        ops.backwardTrainingRelu(shape, in.x, in.dy, mask, in.gamma, saveMean, saveInvstd, dx, dz, dgamma, dbeta);

        // Against float64 statistics, with the backend's mask (its own bits near v = 0 are as right as the reference's).
        Reference64.Forward f = Reference64.forwardTraining(shape, in.x, in.gamma, in.beta, EPS, null, null, 0);
        boolean[] passed = Reference64.bits(mask, n);
        for (int i = 0; i < n; i++) assertEquals(y[i] > 0 || Float.isNaN(y[i]), passed[i], "mask agrees with y at " + i);
        Reference64.Backward e = Reference64.backwardTraining(shape, Reference64.wide(in.x),
                Reference64.gate(Reference64.wide(in.dy), passed), Reference64.wide(in.gamma), f.mean(), f.invstd());
        assertDx(e, dx);
        assertDgamma(e, dgamma);
        assertDbeta(e, dbeta);
        assertGated(in.dy, passed, dz);
    }

    // ---- 16-bit storage ---------------------------------------------------------------------------------------------

    Stream<Arguments> halfCases() {
        List<Arguments> out = new ArrayList<>();
        List<Shape> s = shapes();
        for (DType t : new DType[] {DType.FLOAT16, DType.BFLOAT16}) {
            out.add(Arguments.of(s.get(0), t, true));
            out.add(Arguments.of(s.get(s.size() - 1), t, false));
        }
        return out.stream();
    }

    @ParameterizedTest(name = "{0} {1} residual={2}")
    @MethodSource("halfCases")
    void sixteenBitForwardAndBackward(Shape shape, DType dtype, boolean residual) {
        Inputs in = new Inputs(shape, true, residual, 6);
        int n = in.x.length;
        short[] x = dtype.encode(in.x);
        short[] z = in.z == null ? null : dtype.encode(in.z);
        short[] dy = dtype.encode(in.dy);
        float[] xw = dtype.decode(x);
        double[] zw = z == null ? null : Reference64.wide(dtype.decode(z));

        Reference64.Forward e = Reference64.forwardTraining(shape, xw, in.gamma, in.beta, EPS, null, null, 0);
        double[] v = Reference64.preActivation(e.y(), zw);
        short[] y = new short[n];
        java.util.Arrays.fill(y, (short) 0x7E00);
        int[] mask = poisonedMask(shape);
        float[] saveMean = TestData.poisoned(shape.channels());
        float[] saveInvstd = TestData.poisoned(shape.channels());
        ops.forwardTrainingRelu(shape, dtype, x, z, in.gamma, in.beta, EPS, null, null, 0, y, mask, saveMean,
                saveInvstd);
        HalfTolerances.assertStored("y", dtype, Reference64.relu(v), y, FORWARD_RTOL, Tolerances.rms(v));
        assertMaskMatches(v, mask, shape, HalfTolerances.widen(dtype, y));
        assertForward("saveMean", e.mean(), saveMean);

        boolean[] passed = Reference64.bits(mask, n);
        double[] g = Reference64.gate(Reference64.wide(dtype.decode(dy)), passed);
        Reference64.Backward b = Reference64.backwardTraining(shape, Reference64.wide(xw), g,
                Reference64.wide(in.gamma), Reference64.wide(saveMean), Reference64.wide(saveInvstd));
        short[] dx = new short[n];
        short[] dz = residual ? new short[n] : null;
        float[] dgamma = TestData.poisoned(shape.channels());
        float[] dbeta = TestData.poisoned(shape.channels());
        ops.backwardTrainingRelu(shape, dtype, x, dy, mask, in.gamma, saveMean, saveInvstd, dx, dz, dgamma, dbeta);
        HalfTolerances.assertDx(dtype, b, dx);
        assertDgamma(b, dgamma);
        assertDbeta(b, dbeta);
        if (dz != null) {
            for (int i = 0; i < n; i++) {
                short want = passed[i] ? dy[i] : 0;
                if (dz[i] != want) fail("dz[" + i + "]: expected bits " + want + ", got " + dz[i]);
            }
        }
    }

    // ---- NaN, validation ------------------------------------------------------------------------------------------

    /** NaN in x poisons its channel in training; the mask lets NaN through (PyTorch's threshold_backward does). */
    @Test
    void nanPassesTheReluAndItsMaskBit() {
        Shape shape = Shape.channelsFirst(3, 4, 5, 7);
        Inputs in = new Inputs(shape, true, false, 7);
        int nanChannel = 2;
        in.x[Reference64.index(shape, nanChannel, 5)] = Float.NaN;
        float[] y = TestData.poisoned(in.x.length);
        int[] mask = poisonedMask(shape);
        ops.forwardTrainingRelu(shape, in.x, null, in.gamma, in.beta, EPS, null, null, 0, y, mask,
                new float[4], new float[4]);
        boolean[] passed = Reference64.bits(mask, in.x.length);
        for (long j = 0; j < shape.reductionSize(); j++) {
            int i = Reference64.index(shape, nanChannel, j);
            assertTrue(Float.isNaN(y[i]), "y of the NaN channel at " + i);
            assertTrue(passed[i], "mask bit of a NaN at " + i);
        }
        for (int i = 0; i < y.length; i++) {
            if (!Float.isNaN(y[i])) assertTrue(y[i] >= 0 && Float.floatToRawIntBits(y[i]) != 0x80000000, "y[" + i + "]");
        }
    }

    @Test
    void badArgumentsAreRejectedNamingThem() {
        Shape shape = Shape.channelsFirst(2, 3, 5, 7);   // 210 elements: 7 words
        int n = shape.elementCountAsInt();
        Inputs in = new Inputs(shape, true, true, 8);
        float[] y = new float[n];
        float[] sm = new float[3];
        float[] si = new float[3];
        Messages.assertRejected("mask: expected 7 elements", () -> ops.forwardTrainingRelu(shape, in.x, in.z, null,
                null, EPS, null, null, 0, y, new int[6], sm, si));
        Messages.assertRejected("z: expected 210 elements", () -> ops.forwardTrainingRelu(shape, in.x, new float[209],
                null, null, EPS, null, null, 0, y, new int[7], sm, si));
        Messages.assertRejected("y must not be the same array as z", () -> ops.forwardTrainingRelu(shape, in.x,
                in.z, null, null, EPS, null, null, 0, in.z, new int[7], sm, si));
        Messages.assertRejected("expected more than 1 value per channel", () -> ops.forwardTrainingRelu(
                Shape.channelsLast(1, 3), new float[3], null, null, null, EPS, null, null, 0, new float[3], new int[1],
                new float[3], new float[3]));
        Messages.assertRejected("mask must not be null", () -> ops.backwardTrainingRelu(shape, in.x, in.dy, null,
                null, sm, si, new float[n], null, null, null));
        float[] dx = new float[n];
        Messages.assertRejected("dz must not be the same array as dx", () -> ops.backwardTrainingRelu(shape, in.x,
                in.dy, in.mask, null, sm, si, dx, dx, null, null));
        Messages.assertRejected("dz must not be the same array as dy", () -> ops.backwardInferenceRelu(shape, in.x,
                in.dy, in.mask, null, in.runningMean, in.runningVar, EPS, dx, in.dy, null, null));
        Messages.assertRejected("dtype", () -> ops.forwardInferenceRelu(shape, DType.FLOAT32, new short[n], null,
                null, null, in.runningMean, in.runningVar, EPS, new short[n], null));
        float[] before = y.clone();
        assertArrayEquals(before, y, "a rejected call writes nothing");
    }

    // ---- assertions -------------------------------------------------------------------------------------------------

    /** y = relu(v) within the forward tolerance on v's scale, and the mask consistent with v and y. */
    private static void assertY(double[] v, float[] y, int[] mask, Shape shape) {
        assertClose("y", Reference64.relu(v), Tolerances.toDouble(y), FORWARD_RTOL, Tolerances.rms(v));
        assertMaskMatches(v, mask, shape, Tolerances.toDouble(y));
    }

    /**
     * Where |v| exceeds the tolerance the bit is the sign of v; everywhere the bit agrees with y (1: y is v, so
     * y &gt; 0 or NaN; 0: y is +0); the padding bits of the last word are 0.
     */
    static void assertMaskMatches(double[] v, int[] mask, Shape shape, double[] y) {
        int n = v.length;
        assertEquals(ReluMask.words(n), mask.length, "mask words");
        double atol = FORWARD_RTOL * Tolerances.rms(v);
        boolean[] bit = Reference64.bits(mask, n);
        int wrong = 0;
        int first = -1;
        for (int i = 0; i < n; i++) {
            boolean sure = Double.isNaN(v[i]) || Math.abs(v[i]) > atol + FORWARD_RTOL * Math.abs(v[i]);
            boolean want = !(v[i] <= 0);
            boolean consistent = bit[i] ? (y[i] > 0 || Double.isNaN(y[i])) : y[i] == 0 && 1 / y[i] > 0;
            if (sure && bit[i] != want || !consistent) {
                if (first < 0) first = i;
                wrong++;
            }
        }
        if (wrong > 0) {
            fail("mask: " + wrong + " of " + n + " bits wrong for " + shape + "; first at " + first + ": v = "
                    + v[first] + ", y = " + y[first] + ", bit " + bit[first]);
        }
        int rest = n % 32;
        if (rest != 0) assertEquals(0, mask[mask.length - 1] >>> rest, "padding bits of the last mask word");
    }

    /** dz is exactly dy where the bit is 1 and +0 elsewhere. */
    private static void assertGated(float[] dy, boolean[] passed, float[] dz) {
        for (int i = 0; i < dy.length; i++) {
            float want = passed[i] ? dy[i] : 0f;
            if (Float.floatToRawIntBits(want) != Float.floatToRawIntBits(dz[i])) {
                fail("dz[" + i + "]: expected " + want + ", got " + dz[i]);
            }
        }
    }

    static void assertSameBits(String what, float[] expected, float[] actual) {
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToIntBits(expected[i]) != Float.floatToIntBits(actual[i])) {
                fail(what + ": first difference at " + i + ": " + expected[i] + " vs " + actual[i]);
            }
        }
    }

    private static float[] toFloat(double[] a) {
        float[] f = new float[a.length];
        for (int i = 0; i < a.length; i++) f[i] = (float) a[i];
        return f;
    }
}
