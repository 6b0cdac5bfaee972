package io.github.batchnorm4j;

import static io.github.batchnorm4j.testing.Tolerances.FORWARD_RTOL;
import static io.github.batchnorm4j.testing.Tolerances.assertClose;
import static io.github.batchnorm4j.testing.Tolerances.assertDbeta;
import static io.github.batchnorm4j.testing.Tolerances.assertDgamma;
import static io.github.batchnorm4j.testing.Tolerances.assertForward;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.batchnorm4j.testing.HalfTolerances;
import io.github.batchnorm4j.testing.Reference64;
import io.github.batchnorm4j.testing.TestData;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The contract of {@link BatchNormOps}' 16-bit operations for any backend: x, y, dy, dx as float16 or bfloat16 bit
 * patterns, per-channel tensors float32. Each case draws float32 inputs as {@link BatchNormOpsContractTest} does,
 * rounds them to the storage type, and compares the backend with the float64 {@link Reference64} run on the
 * <em>rounded</em> inputs (the same values the backend sees):
 * <ul>
 *   <li>y and dx: {@link HalfTolerances} (half an ulp of the storage type plus twice the float32 tolerance);</li>
 *   <li>float32 outputs (saved mean/invstd, running statistics, partial statistics, dgamma, dbeta): the float32
 *       tolerances of {@link io.github.batchnorm4j.testing.Tolerances}, unchanged: the 16-bit input costs them
 *       nothing, since the inputs are exact float32 values and the accumulation is float32 or wider.</li>
 * </ul>
 * Outputs are poisoned with the storage type's NaN before each call. A backend's test extends this class and
 * implements {@link #openOps()}; a slow backend overrides {@link #shapes()}.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
public abstract class MixedPrecisionContractTest {
    protected static final double EPS = 1e-5;
    protected static final double MOMENTUM = 0.1;

    private BatchNormOps ops;

    /** Opens the backend under test; called once per test class. */
    protected abstract BatchNormOps openOps();

    /** The shapes; by default the float32 contract's matrix (both layouts, the edge shapes). */
    protected List<Shape> shapes() {
        return BatchNormOpsContractTest.CONTRACT_SHAPES;
    }

    /** The storage types under test: float16 and bfloat16. */
    protected List<DType> dtypes() {
        return List.of(DType.FLOAT16, DType.BFLOAT16);
    }

    /** The operations of {@link BatchNormOps}, for {@link #supports}. */
    protected enum Op {
        STATISTICS, FORWARD_TRAINING, FORWARD_INFERENCE, NORMALIZE, BACKWARD_TRAINING, BACKWARD_INFERENCE
    }

    /**
     * Whether the backend computes {@code op} in {@code dtype} (all by default). An unsupported one is skipped by the
     * tests, must still validate its arguments, and must throw {@link UnsupportedOperationException}.
     */
    protected boolean supports(DType dtype, Op op) {
        return true;
    }

    private void require(DType dtype, Op... ops) {
        for (Op op : ops) {
            assumeTrue(supports(dtype, op), () -> this.ops.name() + " does not implement " + op + " in " + dtype);
        }
    }

    /** Whether {@code shape} is run in {@code dtype} (all of them by default; a slow backend may thin the matrix). */
    protected boolean runs(DType dtype, Shape shape) {
        return true;
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

    /**
     * (dtype, shape, affine): every shape in every dtype, affine on and off alternating along the matrix (and
     * opposite between the two dtypes), so each dtype sees each shape once and both affine settings on both layouts:
     * half the cases of the full product, for the test-time budget.
     */
    Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        List<Shape> shapes = shapes();
        for (DType t : dtypes()) {
            for (int i = 0; i < shapes.size(); i++) {
                if (runs(t, shapes.get(i))) out.add(Arguments.of(t, shapes.get(i), (i + t.ordinal()) % 2 == 0));
            }
        }
        return out.stream();
    }

    Stream<Arguments> shapeCases() {
        List<Arguments> out = new ArrayList<>();
        for (DType t : dtypes()) {
            for (Shape s : shapes()) if (runs(t, s)) out.add(Arguments.of(t, s));
        }
        return out.stream();
    }

    Stream<Arguments> layoutCases() {
        List<Arguments> out = new ArrayList<>();
        for (DType t : dtypes()) for (Layout l : Layout.values()) out.add(Arguments.of(t, l));
        return out.stream();
    }

    // ---- inputs -------------------------------------------------------------------------------------------------

    /** One case's inputs: x and dy rounded to the storage type, and their exact float32 values. */
    protected static final class Inputs {
        final Shape shape;
        final DType dtype;
        final short[] x;
        final short[] dy;
        final float[] xf;
        final float[] dyf;
        final float[] gamma;
        final float[] beta;
        final float[] runningMean;
        final float[] runningVar;

        Inputs(DType dtype, Shape shape, boolean affine, long salt) {
            this(dtype, shape, affine, salt, null);
        }

        /** With {@code x32} given, x is that array rounded; otherwise drawn per channel as in the float32 contract. */
        Inputs(DType dtype, Shape shape, boolean affine, long salt, float[] x32) {
            this.shape = shape;
            this.dtype = dtype;
            SplittableRandom rng = TestData.random(shape.hashCode() * 31L + (affine ? 1 : 0) + salt * 1_000_003L
                    + dtype.ordinal() * 7919L);
            int n = shape.elementCountAsInt();
            int c = shape.channels();
            float[] xd = x32 != null ? x32 : TestData.perChannelNormal(rng, shape);
            float[] dyd = TestData.normal(rng, n, 0, 1);
            x = dtype.encode(xd);
            dy = dtype.encode(dyd);
            xf = dtype.decode(x);
            dyf = dtype.decode(dy);
            gamma = affine ? TestData.uniform(rng, c, 0.5, 1.5) : null;
            beta = affine ? TestData.normal(rng, c, 0, 1) : null;
            runningMean = TestData.normal(rng, c, 0, 1);
            runningVar = TestData.uniform(rng, c, 0.5, 2);
        }
    }

    /** A 16-bit tensor filled with the type's NaN: an element the backend does not write fails. */
    protected static short[] poisoned(DType dtype, int n) {
        short[] a = new short[n];
        Arrays.fill(a, dtype.encode(Float.NaN));
        return a;
    }

    // ---- forward --------------------------------------------------------------------------------------------------

    @ParameterizedTest(name = "{0} {1} affine={2}")
    @MethodSource("cases")
    void forwardTrainingMatchesReference(DType dtype, Shape shape, boolean affine) {
        require(dtype, Op.FORWARD_TRAINING);
        Inputs in = new Inputs(dtype, shape, affine, 1);
        assertForwardTraining(in);
    }

    @ParameterizedTest(name = "{0} {1} affine={2}")
    @MethodSource("cases")
    void forwardInferenceMatchesReference(DType dtype, Shape shape, boolean affine) {
        require(dtype, Op.FORWARD_INFERENCE);
        Inputs in = new Inputs(dtype, shape, affine, 3);
        double[] e = Reference64.forwardEval(shape, in.xf, in.gamma, in.beta, in.runningMean, in.runningVar, EPS);
        short[] y = poisoned(dtype, in.x.length);
        short[] x = in.x.clone();

        ops.forwardInference(shape, dtype, x, in.gamma, in.beta, in.runningMean, in.runningVar, EPS, y);

        HalfTolerances.assertY("y", dtype, e, y);
        assertArrayEquals(in.x, x, "x must not be modified");
    }

    @ParameterizedTest(name = "{0} {1} affine={2}")
    @MethodSource("cases")
    void normalizeMatchesReference(DType dtype, Shape shape, boolean affine) {
        require(dtype, Op.NORMALIZE);
        Inputs in = new Inputs(dtype, shape, affine, 4);
        SplittableRandom rng = TestData.random(shape.hashCode() + 4);
        float[] mean = TestData.normal(rng, shape.channels(), 0, 2);
        float[] invstd = TestData.uniform(rng, shape.channels(), 0.3, 3);
        double[] e = Reference64.normalize(shape, in.xf, in.gamma, in.beta, Reference64.wide(mean),
                Reference64.wide(invstd));
        short[] y = poisoned(dtype, in.x.length);

        ops.normalize(shape, dtype, in.x, in.gamma, in.beta, mean, invstd, y);

        HalfTolerances.assertY("y", dtype, e, y);
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("shapeCases")
    void statisticsMatchReference(DType dtype, Shape shape) {
        require(dtype, Op.STATISTICS);
        Inputs in = new Inputs(dtype, shape, false, 5);
        double[] mean = Reference64.mean(shape, in.xf);

        ChannelStatistics st = ops.statistics(shape, dtype, in.x);

        assertEquals(shape.reductionSize(), st.count(), "count");
        assertClose("mean", mean, st.means(), FORWARD_RTOL);
        assertClose("m2", Reference64.m2(shape, in.xf, mean), st.m2s(), FORWARD_RTOL);
    }

    // ---- backward -------------------------------------------------------------------------------------------------

    @ParameterizedTest(name = "{0} {1} affine={2}")
    @MethodSource("cases")
    void backwardTrainingMatchesReference(DType dtype, Shape shape, boolean affine) {
        require(dtype, Op.BACKWARD_TRAINING);
        Inputs in = new Inputs(dtype, shape, affine, 7);
        Reference64.Forward f = Reference64.forwardTraining(shape, in.xf, in.gamma, in.beta, EPS, null, null, 0);
        float[] saveMean = BatchNormOpsContractTest.toFloat(f.mean());
        float[] saveInvstd = BatchNormOpsContractTest.toFloat(f.invstd());
        Reference64.Backward e = Reference64.backwardTraining(shape, in.xf, in.dyf, in.gamma, saveMean, saveInvstd);

        assertBackwardTraining(in, saveMean, saveInvstd, e);
    }

    @ParameterizedTest(name = "{0} {1} affine={2}")
    @MethodSource("cases")
    void backwardInferenceMatchesReference(DType dtype, Shape shape, boolean affine) {
        require(dtype, Op.BACKWARD_INFERENCE);
        Inputs in = new Inputs(dtype, shape, affine, 9);
        Reference64.Backward e = Reference64.backwardEval(shape, in.xf, in.dyf, in.gamma, in.runningMean,
                in.runningVar, EPS);
        short[] dx = poisoned(dtype, in.x.length);
        float[] dgamma = TestData.poisoned(shape.channels());
        float[] dbeta = TestData.poisoned(shape.channels());
        short[] dy = in.dy.clone();

        ops.backwardInference(shape, dtype, in.x, dy, in.gamma, in.runningMean, in.runningVar, EPS, dx, dgamma,
                dbeta);

        HalfTolerances.assertDx(dtype, e, dx);
        assertDgamma(e, dgamma);
        assertDbeta(e, dbeta);
        assertArrayEquals(in.dy, dy, "dy must not be modified");
    }

    /** Forward then backward through the backend's own saved statistics, as a training step does. */
    @ParameterizedTest(name = "{0} {1} affine={2}")
    @MethodSource("cases")
    void trainingStepThroughSavedStatistics(DType dtype, Shape shape, boolean affine) {
        require(dtype, Op.FORWARD_TRAINING, Op.BACKWARD_TRAINING);
        Inputs in = new Inputs(dtype, shape, affine, 10);
        short[] y = poisoned(dtype, in.x.length);
        float[] saveMean = TestData.poisoned(shape.channels());
        float[] saveInvstd = TestData.poisoned(shape.channels());
        ops.forwardTraining(shape, dtype, in.x, in.gamma, in.beta, EPS, null, null, 0, y, saveMean, saveInvstd);

        Reference64.Forward f = Reference64.forwardTraining(shape, in.xf, in.gamma, in.beta, EPS, null, null, 0);
        Reference64.Backward e = Reference64.backwardTraining(shape, in.xf, in.dyf, in.gamma, f.mean(), f.invstd());
        assertBackwardTraining(in, saveMean, saveInvstd, e);
    }

    // ---- numerics -----------------------------------------------------------------------------------------------

    /**
     * |mean| ≫ std: 1e4 with std 1 in bfloat16 (whose ulp at 1e4 is 64, so x takes a few values per channel) and 1e2
     * with std 1 in float16 (ulp 0.0625); the shifted accumulation must keep full float32 accuracy on the rounded
     * values, and y (of order 1) must be within half a 16-bit ulp.
     */
    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("layoutCases")
    void largeMeanSmallSpreadKeepsFullAccuracy(DType dtype, Layout layout) {
        require(dtype, Op.FORWARD_TRAINING, Op.BACKWARD_TRAINING);
        Shape shape = layout == Layout.CHANNELS_FIRST ? Shape.channelsFirst(4, 3, 17, 19)
                : Shape.channelsLast(4, 17, 19, 3);
        double scale = dtype == DType.BFLOAT16 ? 1e4 : 1e2;
        SplittableRandom rng = TestData.random(1_0000 + layout.ordinal() + 10 * dtype.ordinal());
        float[] x32 = new float[shape.elementCountAsInt()];
        double[] centers = {scale, -scale, 1.5 * scale};
        for (int c = 0; c < shape.channels(); c++) {
            float[] v = TestData.normal(rng, (int) shape.reductionSize(), centers[c], 1.0);
            for (int j = 0; j < v.length; j++) x32[Reference64.index(shape, c, j)] = v[j];
        }
        Inputs in = new Inputs(dtype, shape, true, 11, x32);
        float[][] saved = assertForwardTraining(in);
        float[] saveMean = saved[0];
        float[] saveInvstd = saved[1];

        if (supports(dtype, Op.STATISTICS)) {
            ChannelStatistics st = ops.statistics(shape, dtype, in.x);
            double[] mean = Reference64.mean(shape, in.xf);
            assertClose("m2", Reference64.m2(shape, in.xf, mean), st.m2s(), FORWARD_RTOL);
        }

        Reference64.Backward b = Reference64.backwardTraining(shape, in.xf, in.dyf, in.gamma, saveMean, saveInvstd);
        assertBackwardTraining(in, saveMean, saveInvstd, b);
    }

    /** A constant channel: var = 0, y = beta rounded to the storage type, bit for bit; dx finite. */
    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("layoutCases")
    void zeroVarianceChannel(DType dtype, Layout layout) {
        require(dtype, Op.FORWARD_TRAINING, Op.BACKWARD_TRAINING);
        Shape shape = layout == Layout.CHANNELS_FIRST ? Shape.channelsFirst(3, 4, 5, 7)
                : Shape.channelsLast(3, 5, 7, 4);
        SplittableRandom rng = TestData.random(3_000 + layout.ordinal());
        float[] x32 = TestData.perChannelNormal(rng, shape);
        int constant = 2;
        for (long j = 0; j < shape.reductionSize(); j++) x32[Reference64.index(shape, constant, j)] = 2.75f;
        Inputs in = new Inputs(dtype, shape, true, 12, x32);
        short[] y = poisoned(dtype, in.x.length);
        float[] saveMean = TestData.poisoned(shape.channels());
        float[] saveInvstd = TestData.poisoned(shape.channels());

        ops.forwardTraining(shape, dtype, in.x, in.gamma, in.beta, EPS, in.runningMean.clone(), in.runningVar.clone(),
                MOMENTUM, y, saveMean, saveInvstd);

        short want = dtype.encode(in.beta[constant]);
        for (long j = 0; j < shape.reductionSize(); j++) {
            int i = Reference64.index(shape, constant, j);
            if (y[i] != want) fail("y of the constant channel at " + i + ": expected " + dtype.decode(want) + ", got "
                    + dtype.decode(y[i]));
        }
        Reference64.Forward f = Reference64.forwardTraining(shape, in.xf, in.gamma, in.beta, EPS, null, null, 0);
        HalfTolerances.assertY("y", dtype, f.y(), y);
        Reference64.Backward b = Reference64.backwardTraining(shape, in.xf, in.dyf, in.gamma, f.mean(), f.invstd());
        short[] dx = assertBackwardTraining(in, saveMean, saveInvstd, b);
        for (int i = 0; i < dx.length; i++) assertTrue(Float.isFinite(dtype.decode(dx[i])), "dx[" + i + "]");
    }

    /** A 16-bit NaN in x: training poisons its channel, eval only its element; everything else within tolerance. */
    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("layoutCases")
    void nanInXPropagates(DType dtype, Layout layout) {
        require(dtype, Op.FORWARD_TRAINING, Op.FORWARD_INFERENCE);
        Shape shape = layout == Layout.CHANNELS_FIRST ? Shape.channelsFirst(3, 4, 5, 7)
                : Shape.channelsLast(3, 5, 7, 4);
        Inputs in = new Inputs(dtype, shape, true, 13);
        int nanChannel = 1;
        int nanAt = Reference64.index(shape, nanChannel, 17);
        in.x[nanAt] = dtype.encode(Float.NaN);
        in.xf[nanAt] = Float.NaN;

        Reference64.Forward e = Reference64.forwardTraining(shape, in.xf, in.gamma, in.beta, EPS, null, null, 0);
        short[] y = poisoned(dtype, in.x.length);
        ops.forwardTraining(shape, dtype, in.x, in.gamma, in.beta, EPS, null, null, 0, y,
                TestData.poisoned(shape.channels()), TestData.poisoned(shape.channels()));
        HalfTolerances.assertY("training y", dtype, e.y(), y); // NaN exactly where the reference has NaN

        double[] ee = Reference64.forwardEval(shape, in.xf, in.gamma, in.beta, in.runningMean, in.runningVar, EPS);
        short[] ye = poisoned(dtype, in.x.length);
        ops.forwardInference(shape, dtype, in.x, in.gamma, in.beta, in.runningMean, in.runningVar, EPS, ye);
        HalfTolerances.assertY("eval y", dtype, ee, ye);
        int nan = 0;
        for (short v : ye) if (Float.isNaN(dtype.decode(v))) nan++;
        assertEquals(1, nan, "eval: only the NaN element's output is NaN");
    }

    /**
     * float16 overflow: with gamma = 3e4 some y exceed 65504 and must become ±Inf (round to nearest: from the tie at
     * 65520 up); the others must be right. bfloat16 has float32's range, so it has no such case here.
     */
    @Test
    void float16OverflowBecomesInfinity() {
        if (!dtypes().contains(DType.FLOAT16)) return;
        Shape shape = Shape.channelsLast(64, 5, 4);
        DType dtype = DType.FLOAT16;
        require(dtype, Op.FORWARD_INFERENCE);
        Inputs in = new Inputs(dtype, shape, true, 14);
        float[] gamma = new float[shape.channels()];
        Arrays.fill(gamma, 3e4f);
        double[] e = Reference64.forwardEval(shape, in.xf, gamma, in.beta, in.runningMean, in.runningVar, EPS);
        short[] y = poisoned(dtype, in.x.length);

        ops.forwardInference(shape, dtype, in.x, gamma, in.beta, in.runningMean, in.runningVar, EPS, y);

        int inf = 0;
        double[] finiteExpected = e.clone();
        for (int i = 0; i < e.length; i++) {
            float got = dtype.decode(y[i]);
            if (Math.abs(e[i]) > 65600) {
                float signedInf = e[i] > 0 ? Float.POSITIVE_INFINITY : Float.NEGATIVE_INFINITY;
                assertEquals(signedInf, got, "y[" + i + "] = " + e[i]);
                inf++;
                finiteExpected[i] = got;
            } else if (Math.abs(e[i]) > 65400) {
                finiteExpected[i] = got; // near the threshold float32's error may decide; either side is right
            }
        }
        assertTrue(inf > 10, "the case must overflow somewhere: " + inf);
        HalfTolerances.assertY("y", dtype, finiteExpected, y);
    }

    /** Each operation a backend says it lacks for a type throws UnsupportedOperationException naming the backend. */
    @Test
    void unsupportedOperationsThrowUnsupportedOperationException() {
        Shape shape = Shape.channelsFirst(2, 3, 4);
        int n = shape.elementCountAsInt();
        for (DType dtype : dtypes()) {
            Inputs in = new Inputs(dtype, shape, true, 16);
            float[] ch = TestData.uniform(TestData.random(dtype.ordinal()), 3, 0.5, 1.5);
            for (Op op : Op.values()) {
                if (supports(dtype, op)) continue;
                Executable call = switch (op) {
                    case STATISTICS -> () -> ops.statistics(shape, dtype, in.x);
                    case FORWARD_TRAINING -> () -> ops.forwardTraining(shape, dtype, in.x, null, null, EPS, null, null,
                            0, new short[n], new float[3], new float[3]);
                    case FORWARD_INFERENCE -> () -> ops.forwardInference(shape, dtype, in.x, null, null, ch,
                            ch.clone(), EPS, new short[n]);
                    case NORMALIZE -> () -> ops.normalize(shape, dtype, in.x, null, null, ch, ch.clone(),
                            new short[n]);
                    case BACKWARD_TRAINING -> () -> ops.backwardTraining(shape, dtype, in.x, in.dy, null, ch,
                            ch.clone(), new short[n], null, null);
                    case BACKWARD_INFERENCE -> () -> ops.backwardInference(shape, dtype, in.x, in.dy, null, ch,
                            ch.clone(), EPS, new short[n], null, null);
                };
                UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, call,
                        op + " in " + dtype);
                assertTrue(e.getMessage() != null && e.getMessage().contains(ops.name()), e.getMessage());
            }
        }
    }

    // ---- bad input ----------------------------------------------------------------------------------------------

    @Test
    void badInputIsRejectedWithoutChangingState() {
        Shape shape = Shape.channelsFirst(2, 3, 4);
        DType dtype = dtypes().get(0);
        Inputs in = new Inputs(dtype, shape, true, 15);
        int n = in.x.length;
        short[] y = poisoned(dtype, n);
        short[] dx = poisoned(dtype, n);
        float[] rm = in.runningMean.clone();
        float[] rv = in.runningVar.clone();
        float[] sm = TestData.poisoned(3);
        float[] si = TestData.poisoned(3);
        Object[] state = {y, dx, rm, rv, sm, si};
        float[] g = in.gamma;
        float[] b = in.beta;
        short[] x = in.x;
        short[] dy = in.dy;

        rejects("dtype", state, () -> ops.forwardTraining(shape, null, x, g, b, EPS, rm, rv, MOMENTUM, y, sm, si));
        rejects("dtype: expected float16 or bfloat16", state,
                () -> ops.forwardTraining(shape, DType.FLOAT32, x, g, b, EPS, rm, rv, MOMENTUM, y, sm, si));
        rejects("x", state, () -> ops.forwardTraining(shape, dtype, new short[n + 1], g, b, EPS, rm, rv, MOMENTUM, y,
                sm, si));
        rejects("y", state, () -> ops.forwardTraining(shape, dtype, x, g, b, EPS, rm, rv, MOMENTUM, new short[n - 1],
                sm, si));
        rejects("y must not be the same array as x", state,
                () -> ops.forwardTraining(shape, dtype, y, g, b, EPS, rm, rv, MOMENTUM, y, sm, si));
        rejects("gamma", state, () -> ops.forwardTraining(shape, dtype, x, new float[2], b, EPS, rm, rv, MOMENTUM, y,
                sm, si));
        rejects("runningVar", state, () -> ops.forwardTraining(shape, dtype, x, g, b, EPS, rm, new float[4], MOMENTUM,
                y, sm, si));
        rejects("expected more than 1 value per channel", state, () -> ops.forwardTraining(Shape.channelsLast(1, 3),
                dtype, new short[3], null, null, EPS, null, null, 0, new short[3], new float[3], new float[3]));
        rejects("eps", state, () -> ops.forwardInference(shape, dtype, x, g, b, rm, rv, -1, y));
        rejects("mean", state, () -> ops.normalize(shape, dtype, x, g, b, new float[2], si, y));
        rejects("x", state, () -> ops.statistics(shape, dtype, new short[1]));
        rejects("dtype", state, () -> ops.statistics(shape, DType.FLOAT32, x));
        rejects("dy", state, () -> ops.backwardTraining(shape, dtype, x, new short[3], g, rm, rv, dx, null, null));
        rejects("dx must not be the same array as dy", state,
                () -> ops.backwardTraining(shape, dtype, x, dx, g, rm, rv, dx, null, null));
        rejects("dgamma", state, () -> ops.backwardTraining(shape, dtype, x, dy, g, rm, rv, dx, new float[1], null));
        rejects("dx must not be the same array as x", state,
                () -> ops.backwardInference(shape, dtype, dx, dy, g, rm, rv, EPS, dx, null, null));
        rejects("runningMean", state, () -> ops.backwardInference(shape, dtype, x, dy, g, null, rv, EPS, dx, null,
                null));
    }

    private static void rejects(String message, Object[] state, Executable call) {
        Object[] before = new Object[state.length];
        for (int i = 0; i < state.length; i++) before[i] = copy(state[i]);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call,
                "expected IllegalArgumentException with '" + message + "'");
        if (e.getMessage() == null || !e.getMessage().contains(message)) {
            fail("the message should contain '" + message + "', got: " + e.getMessage());
        }
        for (int i = 0; i < state.length; i++) {
            boolean same = state[i] instanceof short[] ? Arrays.equals((short[]) before[i], (short[]) state[i])
                    : Arrays.equals((float[]) before[i], (float[]) state[i]);
            if (!same) fail("a call rejected with '" + message + "' modified state array #" + i);
        }
    }

    private static Object copy(Object a) {
        return a instanceof short[] ? ((short[]) a).clone() : ((float[]) a).clone();
    }

    // ---- helpers --------------------------------------------------------------------------------------------------

    /** Runs forwardTraining with running statistics and checks every output; returns {saveMean, saveInvstd}. */
    private float[][] assertForwardTraining(Inputs in) {
        Shape shape = in.shape;
        Reference64.Forward e = Reference64.forwardTraining(shape, in.xf, in.gamma, in.beta, EPS,
                in.runningMean, in.runningVar, MOMENTUM);
        float[] rm = in.runningMean.clone();
        float[] rv = in.runningVar.clone();
        short[] y = poisoned(in.dtype, in.x.length);
        float[] saveMean = TestData.poisoned(shape.channels());
        float[] saveInvstd = TestData.poisoned(shape.channels());
        short[] x = in.x.clone();

        ops.forwardTraining(shape, in.dtype, x, in.gamma, in.beta, EPS, rm, rv, MOMENTUM, y, saveMean, saveInvstd);

        HalfTolerances.assertY("y", in.dtype, e.y(), y);
        assertForward("saveMean", e.mean(), saveMean);
        assertForward("saveInvstd", e.invstd(), saveInvstd);
        assertForward("runningMean", e.runningMean(), rm);
        assertForward("runningVar", e.runningVar(), rv);
        assertArrayEquals(in.x, x, "x must not be modified");
        return new float[][] {saveMean, saveInvstd};
    }

    private short[] assertBackwardTraining(Inputs in, float[] saveMean, float[] saveInvstd,
                                           Reference64.Backward expected) {
        short[] dx = poisoned(in.dtype, in.x.length);
        float[] dgamma = TestData.poisoned(in.shape.channels());
        float[] dbeta = TestData.poisoned(in.shape.channels());
        ops.backwardTraining(in.shape, in.dtype, in.x, in.dy, in.gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
        HalfTolerances.assertDx(in.dtype, expected, dx);
        assertDgamma(expected, dgamma);
        assertDbeta(expected, dbeta);
        return dx;
    }
}
