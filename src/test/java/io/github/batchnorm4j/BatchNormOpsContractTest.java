package io.github.batchnorm4j;

import static io.github.batchnorm4j.testing.Tolerances.FORWARD_RTOL;
import static io.github.batchnorm4j.testing.Tolerances.assertClose;
import static io.github.batchnorm4j.testing.Tolerances.assertDbeta;
import static io.github.batchnorm4j.testing.Tolerances.assertDgamma;
import static io.github.batchnorm4j.testing.Tolerances.assertDx;
import static io.github.batchnorm4j.testing.Tolerances.assertForward;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.batchnorm4j.testing.Reference64;
import io.github.batchnorm4j.testing.TestData;
import io.github.batchnorm4j.testing.Tolerances;
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
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The contract of {@link BatchNormOps} (docs/design.md §1), checked against the float64 {@link Reference64} for any
 * backend. A backend's test extends this class and implements {@link #openOps()}; a slow backend (the PTX emulator)
 * overrides {@link #shapes()} with a smaller matrix.
 *
 * <p>Every case draws fresh random inputs from a seed derived from the case, poisons every output with NaN before the
 * call (an unwritten element fails), and compares with {@link Tolerances}. The backend is opened once per class and
 * closed after all tests.
 *
 * <p>A backend that does not implement every operation (cuDNN has no statistics, normalize or eval-mode backward)
 * says so in {@link #supports}: the tests of those operations are skipped with that reason, argument validation is
 * still required of them, and calling them must throw {@link UnsupportedOperationException}.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
public abstract class BatchNormOpsContractTest {
    protected static final double EPS = 1e-5;
    protected static final double MOMENTUM = 0.1;

    private BatchNormOps ops;

    /** Opens the backend under test; called once per test class. */
    protected abstract BatchNormOps openOps();

    /** The operations of {@link BatchNormOps}, for {@link #supports}. */
    protected enum Op { STATISTICS, FORWARD_TRAINING, FORWARD_INFERENCE, NORMALIZE, BACKWARD_TRAINING, BACKWARD_INFERENCE }

    /** Whether the backend computes {@code op} (default: every operation). */
    protected boolean supports(Op op) {
        return true;
    }

    /** Skips the calling test, with the reason, unless the backend computes {@code op}. */
    private void requires(Op op) {
        assumeTrue(supports(op), () -> ops.name() + " does not implement " + op);
    }

    /**
     * The shape matrix of docs/design.md §6: C = 1, 3, 4, 5, 4099; M = 2; inner = 1 and odd; N = 1 with spatial &gt; 1;
     * rows not a multiple of 32 or 256; channels-last with C % 4 ≠ 0; plain [N, C].
     */
    protected List<Shape> shapes() {
        return CONTRACT_SHAPES;
    }

    /** The shape matrix of {@link #shapes()}, also used by the 16-bit contract ({@code MixedPrecisionContractTest}). */
    public static final List<Shape> CONTRACT_SHAPES = List.of(
        // channels-first
        Shape.channelsFirst(2, 3, 5, 7),       // inner = 35 (odd), C = 3
        Shape.channelsFirst(1, 1, 300),        // C = 1, N = 1 with spatial > 1
        Shape.channelsFirst(4, 4, 9, 9),       // C = 4, inner = 81
        Shape.channelsFirst(3, 5, 1),          // inner = 1, C = 5
        Shape.channelsFirst(1, 4, 2),          // M = 2 (N = 1, spatial 2)
        Shape.channelsFirst(2, 4099, 3),       // C = 4099, inner = 3
        Shape.channelsFirst(5, 3, 13, 17),     // M = 1105: not a multiple of 32/256
        Shape.channelsFirst(8, 5, 33, 31),     // M = 8184: enough work to split across threads/blocks
        Shape.channelsFirst(2, 2, 3, 5, 7),    // NCDHW
        // channels-last
        Shape.channelsLast(2, 3),              // plain [N, C] with M = 2
        Shape.channelsLast(7, 5),              // plain, C = 5
        Shape.channelsLast(300, 1),            // C = 1
        Shape.channelsLast(3, 5, 7, 3),        // NHWC, C = 3
        Shape.channelsLast(2, 9, 9, 4),        // NHWC, C = 4
        Shape.channelsLast(1, 17, 19, 5),      // N = 1 with spatial > 1, C % 4 != 0
        Shape.channelsLast(2, 7, 4099),        // C = 4099, rows = 14
        Shape.channelsLast(4, 33, 31, 6),      // rows = 4092: not a multiple of 32/256
        Shape.channelsLast(2, 3, 5, 7, 3));    // NDHWC

    @BeforeAll
    void openBackend() {
        ops = openOps();
    }

    @AfterAll
    void closeBackend() {
        if (ops != null) ops.close();
    }

    /** The backend under test. */
    protected final BatchNormOps ops() {
        return ops;
    }

    /** (shape, affine) for every shape of the matrix. */
    Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        for (Shape s : shapes()) {
            out.add(Arguments.of(s, true));
            out.add(Arguments.of(s, false));
        }
        return out.stream();
    }

    /** Shapes of the matrix with N ≥ 2 (so x can be split into two batches along N). */
    Stream<Shape> splittableShapes() {
        return shapes().stream().filter(s -> s.batch() >= 2);
    }

    // ---- inputs -------------------------------------------------------------------------------------------------

    /** The inputs of one case, drawn from a seed derived from the case. */
    protected static final class Inputs {
        final Shape shape;
        final float[] x;
        final float[] dy;
        final float[] gamma;
        final float[] beta;
        final float[] runningMean;
        final float[] runningVar;

        Inputs(Shape shape, boolean affine, long salt) {
            this.shape = shape;
            SplittableRandom rng = TestData.random(shape.hashCode() * 31L + (affine ? 1 : 0) + salt * 1_000_003L);
            int n = shape.elementCountAsInt();
            int c = shape.channels();
            x = TestData.perChannelNormal(rng, shape);
            dy = TestData.normal(rng, n, 0, 1);
            gamma = affine ? TestData.uniform(rng, c, 0.5, 1.5) : null;
            beta = affine ? TestData.normal(rng, c, 0, 1) : null;
            runningMean = TestData.normal(rng, c, 0, 1);
            runningVar = TestData.uniform(rng, c, 0.5, 2);
        }
    }

    // ---- forward --------------------------------------------------------------------------------------------------

    @ParameterizedTest(name = "{0} affine={1}")
    @MethodSource("cases")
    void forwardTrainingMatchesReference(Shape shape, boolean affine) {
        Inputs in = new Inputs(shape, affine, 1);
        Reference64.Forward e = Reference64.forwardTraining(shape, in.x, in.gamma, in.beta, EPS,
                in.runningMean, in.runningVar, MOMENTUM);
        float[] rm = in.runningMean.clone();
        float[] rv = in.runningVar.clone();
        float[] y = TestData.poisoned(in.x.length);
        float[] saveMean = TestData.poisoned(shape.channels());
        float[] saveInvstd = TestData.poisoned(shape.channels());
        float[] x = in.x.clone();

        ops.forwardTraining(shape, x, in.gamma, in.beta, EPS, rm, rv, MOMENTUM, y, saveMean, saveInvstd);

        assertForward("y", e.y(), y);
        assertForward("saveMean", e.mean(), saveMean);
        assertForward("saveInvstd", e.invstd(), saveInvstd);
        assertForward("runningMean", e.runningMean(), rm);
        assertForward("runningVar", e.runningVar(), rv);
        assertArrayEquals(in.x, x, "x must not be modified");
    }

    @ParameterizedTest(name = "{0} affine={1}")
    @MethodSource("cases")
    void forwardTrainingWithoutRunningStatistics(Shape shape, boolean affine) {
        Inputs in = new Inputs(shape, affine, 2);
        Reference64.Forward e = Reference64.forwardTraining(shape, in.x, in.gamma, in.beta, EPS, null, null, 0);
        float[] y = TestData.poisoned(in.x.length);
        float[] saveMean = TestData.poisoned(shape.channels());
        float[] saveInvstd = TestData.poisoned(shape.channels());

        // Momentum is ignored without running statistics, even an invalid one.
        ops.forwardTraining(shape, in.x, in.gamma, in.beta, EPS, null, null, Double.NaN, y, saveMean, saveInvstd);

        assertForward("y", e.y(), y);
        assertForward("saveMean", e.mean(), saveMean);
        assertForward("saveInvstd", e.invstd(), saveInvstd);
    }

    @ParameterizedTest(name = "{0} affine={1}")
    @MethodSource("cases")
    void forwardInferenceMatchesReference(Shape shape, boolean affine) {
        Inputs in = new Inputs(shape, affine, 3);
        double[] e = Reference64.forwardEval(shape, in.x, in.gamma, in.beta, in.runningMean, in.runningVar, EPS);
        float[] rm = in.runningMean.clone();
        float[] rv = in.runningVar.clone();
        float[] y = TestData.poisoned(in.x.length);

        ops.forwardInference(shape, in.x, in.gamma, in.beta, rm, rv, EPS, y);

        assertForward("y", e, y);
        assertArrayEquals(in.runningMean, rm, "runningMean must not be modified in eval mode");
        assertArrayEquals(in.runningVar, rv, "runningVar must not be modified in eval mode");
    }

    @ParameterizedTest(name = "{0} affine={1}")
    @MethodSource("cases")
    void normalizeMatchesReference(Shape shape, boolean affine) {
        requires(Op.NORMALIZE);
        Inputs in = new Inputs(shape, affine, 4);
        SplittableRandom rng = TestData.random(shape.hashCode() + 4);
        float[] mean = TestData.normal(rng, shape.channels(), 0, 2);
        float[] invstd = TestData.uniform(rng, shape.channels(), 0.3, 3);
        double[] e = Reference64.normalize(shape, in.x, in.gamma, in.beta, Tolerances.toDouble(mean),
                Tolerances.toDouble(invstd));
        float[] y = TestData.poisoned(in.x.length);

        ops.normalize(shape, in.x, in.gamma, in.beta, mean, invstd, y);

        assertForward("y", e, y);
    }

    // ---- statistics ---------------------------------------------------------------------------------------------

    @ParameterizedTest(name = "{0}")
    @MethodSource("shapes")
    void statisticsMatchReference(Shape shape) {
        requires(Op.STATISTICS);
        Inputs in = new Inputs(shape, false, 5);
        double[] mean = Reference64.mean(shape, in.x);
        double[] m2 = Reference64.m2(shape, in.x, mean);

        ChannelStatistics st = ops.statistics(shape, in.x);

        assertEquals(shape.reductionSize(), st.count(), "count");
        assertEquals(shape.channels(), st.channels(), "channels");
        assertClose("mean", mean, st.means(), FORWARD_RTOL);
        assertClose("m2", m2, st.m2s(), FORWARD_RTOL);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("splittableShapes")
    void statisticsOfTwoHalvesMergeToTheWhole(Shape shape) {
        requires(Op.STATISTICS);
        Inputs in = new Inputs(shape, false, 6);
        long[] dims = shape.dims();
        long n1 = dims[0] / 2;
        long n2 = dims[0] - n1;
        // The batch axis is outermost in both layouts, so each half is a contiguous prefix/suffix of x.
        long[] d1 = dims.clone();
        long[] d2 = dims.clone();
        d1[0] = n1;
        d2[0] = n2;
        Shape s1 = Shape.of(shape.layout(), d1);
        Shape s2 = Shape.of(shape.layout(), d2);
        float[] x1 = Arrays.copyOfRange(in.x, 0, s1.elementCountAsInt());
        float[] x2 = Arrays.copyOfRange(in.x, s1.elementCountAsInt(), in.x.length);

        ChannelStatistics merged = ops.statistics(s1, x1).merge(ops.statistics(s2, x2));

        double[] mean = Reference64.mean(shape, in.x);
        assertEquals(shape.reductionSize(), merged.count(), "count");
        assertClose("merged mean", mean, merged.means(), FORWARD_RTOL);
        assertClose("merged m2", Reference64.m2(shape, in.x, mean), merged.m2s(), FORWARD_RTOL);
    }

    // ---- backward -------------------------------------------------------------------------------------------------

    @ParameterizedTest(name = "{0} affine={1}")
    @MethodSource("cases")
    void backwardTrainingMatchesReference(Shape shape, boolean affine) {
        Inputs in = new Inputs(shape, affine, 7);
        // Saved statistics as a forward pass would have saved them (float32), fed identically to both sides.
        Reference64.Forward f = Reference64.forwardTraining(shape, in.x, in.gamma, in.beta, EPS, null, null, 0);
        float[] saveMean = toFloat(f.mean());
        float[] saveInvstd = toFloat(f.invstd());
        Reference64.Backward e = Reference64.backwardTraining(shape, in.x, in.dy, in.gamma, saveMean, saveInvstd);

        assertBackwardTraining(shape, in.x, in.dy, in.gamma, saveMean, saveInvstd, e);
    }

    @ParameterizedTest(name = "{0} affine={1}")
    @MethodSource("cases")
    void backwardTrainingWithoutParameterGradients(Shape shape, boolean affine) {
        Inputs in = new Inputs(shape, affine, 8);
        Reference64.Forward f = Reference64.forwardTraining(shape, in.x, in.gamma, in.beta, EPS, null, null, 0);
        float[] saveMean = toFloat(f.mean());
        float[] saveInvstd = toFloat(f.invstd());
        Reference64.Backward e = Reference64.backwardTraining(shape, in.x, in.dy, in.gamma, saveMean, saveInvstd);
        float[] dx = TestData.poisoned(in.x.length);

        ops.backwardTraining(shape, in.x, in.dy, in.gamma, saveMean, saveInvstd, dx, null, null);

        assertDx(e, dx);
    }

    @ParameterizedTest(name = "{0} affine={1}")
    @MethodSource("cases")
    void backwardInferenceMatchesReference(Shape shape, boolean affine) {
        requires(Op.BACKWARD_INFERENCE);
        Inputs in = new Inputs(shape, affine, 9);
        assertBackwardInference(in, in.dy);
    }

    /** Forward then backward through the backend's own saved statistics, as a training step does. */
    @ParameterizedTest(name = "{0} affine={1}")
    @MethodSource("cases")
    void trainingStepThroughSavedStatistics(Shape shape, boolean affine) {
        Inputs in = new Inputs(shape, affine, 10);
        float[] y = TestData.poisoned(in.x.length);
        float[] saveMean = TestData.poisoned(shape.channels());
        float[] saveInvstd = TestData.poisoned(shape.channels());
        ops.forwardTraining(shape, in.x, in.gamma, in.beta, EPS, null, null, 0, y, saveMean, saveInvstd);

        // Against the exact float64 statistics, not the backend's rounded ones.
        Reference64.Forward f = Reference64.forwardTraining(shape, in.x, in.gamma, in.beta, EPS, null, null, 0);
        Reference64.Backward e = Reference64.backwardTraining(shape, in.x, in.dy, in.gamma, f.mean(), f.invstd());
        assertBackwardTraining(shape, in.x, in.dy, in.gamma, saveMean, saveInvstd, e);
    }

    // ---- numerics -----------------------------------------------------------------------------------------------

    /** |mean| = 1e4 with std = 1: E[x²] − E[x]² would lose every digit; full float32 accuracy is required. */
    @ParameterizedTest
    @EnumSource(Layout.class)
    void largeMeanSmallSpreadKeepsFullAccuracy(Layout layout) {
        Shape shape = layout == Layout.CHANNELS_FIRST ? Shape.channelsFirst(4, 3, 17, 19)
                : Shape.channelsLast(4, 17, 19, 3);
        SplittableRandom rng = TestData.random(1_0000 + layout.ordinal());
        float[] x = new float[shape.elementCountAsInt()];
        double[] centers = {1e4, -1e4, 1.5e4};
        for (int c = 0; c < shape.channels(); c++) {
            float[] v = TestData.normal(rng, (int) shape.reductionSize(), centers[c], 1.0);
            for (int j = 0; j < v.length; j++) x[Reference64.index(shape, c, j)] = v[j];
        }
        Inputs in = new Inputs(shape, true, 11);
        Reference64.Forward e = Reference64.forwardTraining(shape, x, in.gamma, in.beta, EPS,
                in.runningMean, in.runningVar, MOMENTUM);
        float[] rm = in.runningMean.clone();
        float[] rv = in.runningVar.clone();
        float[] y = TestData.poisoned(x.length);
        float[] saveMean = TestData.poisoned(shape.channels());
        float[] saveInvstd = TestData.poisoned(shape.channels());

        ops.forwardTraining(shape, x, in.gamma, in.beta, EPS, rm, rv, MOMENTUM, y, saveMean, saveInvstd);

        assertForward("y", e.y(), y);
        assertForward("saveMean", e.mean(), saveMean);
        assertForward("saveInvstd", e.invstd(), saveInvstd);
        assertForward("runningMean", e.runningMean(), rm);
        assertForward("runningVar", e.runningVar(), rv);

        if (supports(Op.STATISTICS)) {
            ChannelStatistics st = ops.statistics(shape, x);
            double[] m2 = Reference64.m2(shape, x, e.mean());
            assertClose("m2", m2, st.m2s(), FORWARD_RTOL);
        }

        // Against the statistics the backend saved: the float32 saved mean of 1e4 is off by up to 5e-4 std, which
        // moves dgamma by 5e-4·Σdy; backward is specified to reuse the saved statistics, so that is the reference.
        Reference64.Backward b = Reference64.backwardTraining(shape, x, in.dy, in.gamma, saveMean, saveInvstd);
        assertBackwardTraining(shape, x, in.dy, in.gamma, saveMean, saveInvstd, b);
    }

    /**
     * Σdy nearly cancels in every channel: dy = ±1 alternating down each channel plus N(0, 1e−4) noise, so |dbeta| ≈
     * 1e−4·√M ≈ 3e−3 while Σ|dy| ≈ M = 1024. A float32 sum resolves dbeta only to a few ulps of Σ|dy| (≈ 1e−4 here),
     * not to 1e−4·|dbeta| nor to 1e−4·rms(dbeta) ≈ 3e−7; {@link Tolerances#assertChannelSum} judges each channel on
     * its Σ|dy|, which a correct float32 backend meets on every seed.
     */
    @ParameterizedTest
    @EnumSource(Layout.class)
    void nearlyCancellingSumOfDy(Layout layout) {
        Shape shape = layout == Layout.CHANNELS_FIRST ? Shape.channelsFirst(4, 3, 16, 16)
                : Shape.channelsLast(4, 16, 16, 3);
        Inputs in = new Inputs(shape, true, 12);
        float[] noise = TestData.normal(TestData.random(2_000 + layout.ordinal()), in.x.length, 0, 1e-4);
        float[] dy = new float[in.x.length];
        for (int c = 0; c < shape.channels(); c++) {
            for (long j = 0; j < shape.reductionSize(); j++) {
                int i = Reference64.index(shape, c, j);
                dy[i] = (float) ((j % 2 == 0 ? 1.0 : -1.0) + noise[i]);
            }
        }
        Reference64.Forward f = Reference64.forwardTraining(shape, in.x, in.gamma, in.beta, EPS, null, null, 0);
        float[] saveMean = toFloat(f.mean());
        float[] saveInvstd = toFloat(f.invstd());
        Reference64.Backward e = Reference64.backwardTraining(shape, in.x, dy, in.gamma, saveMean, saveInvstd);
        for (int c = 0; c < shape.channels(); c++) {
            assertTrue(Math.abs(e.dbeta()[c]) < 1e-4 * e.sumAbsDy()[c], "Σdy cancels in channel " + c);
        }

        assertBackwardTraining(shape, in.x, dy, in.gamma, saveMean, saveInvstd, e);

        if (supports(Op.BACKWARD_INFERENCE)) assertBackwardInference(in, dy);
    }

    /** A constant channel: var = 0, invstd = 1/sqrt(eps), y = beta exactly, dx finite. */
    @ParameterizedTest
    @EnumSource(Layout.class)
    void zeroVarianceChannel(Layout layout) {
        Shape shape = layout == Layout.CHANNELS_FIRST ? Shape.channelsFirst(3, 4, 5, 7)
                : Shape.channelsLast(3, 5, 7, 4);
        Inputs in = new Inputs(shape, true, 12);
        int constant = 2;
        for (long j = 0; j < shape.reductionSize(); j++) in.x[Reference64.index(shape, constant, j)] = 2.75f;
        Reference64.Forward e = Reference64.forwardTraining(shape, in.x, in.gamma, in.beta, EPS,
                in.runningMean, in.runningVar, MOMENTUM);
        float[] rm = in.runningMean.clone();
        float[] rv = in.runningVar.clone();
        float[] y = TestData.poisoned(in.x.length);
        float[] saveMean = TestData.poisoned(shape.channels());
        float[] saveInvstd = TestData.poisoned(shape.channels());

        ops.forwardTraining(shape, in.x, in.gamma, in.beta, EPS, rm, rv, MOMENTUM, y, saveMean, saveInvstd);

        assertForward("y", e.y(), y);
        for (long j = 0; j < shape.reductionSize(); j++) {
            int i = Reference64.index(shape, constant, j);
            assertEquals(in.beta[constant], y[i], 1e-6 * Math.abs(in.beta[constant]), "y of the constant channel at " + i);
        }
        assertForward("saveInvstd", e.invstd(), saveInvstd);
        assertForward("runningVar", e.runningVar(), rv);

        Reference64.Backward b = Reference64.backwardTraining(shape, in.x, in.dy, in.gamma, e.mean(), e.invstd());
        float[] dx = assertBackwardTraining(shape, in.x, in.dy, in.gamma, saveMean, saveInvstd, b);
        for (int i = 0; i < dx.length; i++) assertTrue(Float.isFinite(dx[i]), "dx[" + i + "] = " + dx[i]);
    }

    /** NaN in x: training poisons its whole channel (it enters the mean), eval only its own element; others exact. */
    @ParameterizedTest
    @EnumSource(Layout.class)
    void nanInXPropagates(Layout layout) {
        Shape shape = layout == Layout.CHANNELS_FIRST ? Shape.channelsFirst(3, 4, 5, 7)
                : Shape.channelsLast(3, 5, 7, 4);
        Inputs in = new Inputs(shape, true, 13);
        int nanChannel = 1;
        int nanAt = Reference64.index(shape, nanChannel, 17);
        in.x[nanAt] = Float.NaN;

        Reference64.Forward e = Reference64.forwardTraining(shape, in.x, in.gamma, in.beta, EPS,
                in.runningMean, in.runningVar, MOMENTUM);
        float[] rm = in.runningMean.clone();
        float[] rv = in.runningVar.clone();
        float[] y = TestData.poisoned(in.x.length);
        float[] saveMean = TestData.poisoned(shape.channels());
        float[] saveInvstd = TestData.poisoned(shape.channels());
        ops.forwardTraining(shape, in.x, in.gamma, in.beta, EPS, rm, rv, MOMENTUM, y, saveMean, saveInvstd);
        for (long j = 0; j < shape.reductionSize(); j++) {
            assertTrue(Float.isNaN(y[Reference64.index(shape, nanChannel, j)]), "training y of the NaN channel");
        }
        assertForward("y", e.y(), y); // NaN where the reference has NaN, exact elsewhere
        assertForward("saveMean", e.mean(), saveMean);
        assertForward("runningMean", e.runningMean(), rm);
        assertForward("runningVar", e.runningVar(), rv);

        double[] ee = Reference64.forwardEval(shape, in.x, in.gamma, in.beta, in.runningMean, in.runningVar, EPS);
        float[] ye = TestData.poisoned(in.x.length);
        ops.forwardInference(shape, in.x, in.gamma, in.beta, in.runningMean, in.runningVar, EPS, ye);
        assertTrue(Float.isNaN(ye[nanAt]), "eval y at the NaN");
        assertForward("eval y", ee, ye);
        int finite = 0;
        for (float v : ye) if (Float.isFinite(v)) finite++;
        assertEquals(ye.length - 1, finite, "eval: only the NaN element's output is NaN");
    }

    /** The operations the backend does not compute (none for most). */
    Stream<Op> unsupportedOps() {
        return Arrays.stream(Op.values()).filter(op -> !supports(op));
    }

    /** An operation the backend does not compute throws UnsupportedOperationException naming the backend. */
    @ParameterizedTest(allowZeroInvocations = true)
    @MethodSource("unsupportedOps")
    void unsupportedOperationsSaySo(Op op) {
        Shape shape = Shape.channelsFirst(2, 3, 4);
        Inputs in = new Inputs(shape, true, 18);
        float[] out = TestData.poisoned(in.x.length);
        float[] c1 = TestData.poisoned(3);
        float[] c2 = TestData.poisoned(3);
        Executable call = switch (op) {
            case STATISTICS -> () -> ops.statistics(shape, in.x);
            case FORWARD_TRAINING -> () -> ops.forwardTraining(shape, in.x, in.gamma, in.beta, EPS, null, null, 0,
                    out, c1, c2);
            case FORWARD_INFERENCE -> () -> ops.forwardInference(shape, in.x, in.gamma, in.beta, in.runningMean,
                    in.runningVar, EPS, out);
            case NORMALIZE -> () -> ops.normalize(shape, in.x, in.gamma, in.beta, in.runningMean, in.runningVar, out);
            case BACKWARD_TRAINING -> () -> ops.backwardTraining(shape, in.x, in.dy, in.gamma, in.runningMean,
                    in.runningVar, out, c1, c2);
            case BACKWARD_INFERENCE -> () -> ops.backwardInference(shape, in.x, in.dy, in.gamma, in.runningMean,
                    in.runningVar, EPS, out, c1, c2);
        };
        UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, call, op.name());
        assertTrue(e.getMessage() != null && e.getMessage().contains(ops.name()), e.getMessage());
    }

    // ---- bad input ----------------------------------------------------------------------------------------------

    /** Every bad input of docs/design.md §1: IllegalArgumentException naming the argument, and no array changed. */
    @Test
    void badForwardTrainingInputIsRejectedWithoutChangingState() {
        Shape shape = Shape.channelsFirst(2, 3, 4);
        Inputs in = new Inputs(shape, true, 14);
        int n = in.x.length;
        float[] rm = in.runningMean.clone();
        float[] rv = in.runningVar.clone();
        float[] y = TestData.poisoned(n);
        float[] sm = TestData.poisoned(3);
        float[] si = TestData.poisoned(3);
        float[][] state = {rm, rv, y, sm, si};
        float[] x = in.x;
        float[] g = in.gamma;
        float[] b = in.beta;

        rejects("shape", state, () -> ops.forwardTraining(null, x, g, b, EPS, rm, rv, MOMENTUM, y, sm, si));
        rejects("x", state, () -> ops.forwardTraining(shape, null, g, b, EPS, rm, rv, MOMENTUM, y, sm, si));
        rejects("x", state, () -> ops.forwardTraining(shape, new float[n + 1], g, b, EPS, rm, rv, MOMENTUM, y, sm, si));
        rejects("x", state, () -> ops.forwardTraining(Shape.channelsFirst(2, 3, 5), x, g, b, EPS, rm, rv, MOMENTUM,
                y, sm, si));
        rejects("gamma", state, () -> ops.forwardTraining(shape, x, new float[4], b, EPS, rm, rv, MOMENTUM, y, sm, si));
        rejects("beta", state, () -> ops.forwardTraining(shape, x, g, new float[2], EPS, rm, rv, MOMENTUM, y, sm, si));
        rejects("eps", state, () -> ops.forwardTraining(shape, x, g, b, 0, rm, rv, MOMENTUM, y, sm, si));
        rejects("eps", state, () -> ops.forwardTraining(shape, x, g, b, -1e-5, rm, rv, MOMENTUM, y, sm, si));
        rejects("eps", state, () -> ops.forwardTraining(shape, x, g, b, Double.NaN, rm, rv, MOMENTUM, y, sm, si));
        rejects("eps", state, () -> ops.forwardTraining(shape, x, g, b, Double.POSITIVE_INFINITY, rm, rv, MOMENTUM,
                y, sm, si));
        rejects("momentum", state, () -> ops.forwardTraining(shape, x, g, b, EPS, rm, rv, -0.1, y, sm, si));
        rejects("momentum", state, () -> ops.forwardTraining(shape, x, g, b, EPS, rm, rv, 1.1, y, sm, si));
        rejects("momentum", state, () -> ops.forwardTraining(shape, x, g, b, EPS, rm, rv, Double.NaN, y, sm, si));
        rejects("runningMean", state, () -> ops.forwardTraining(shape, x, g, b, EPS, new float[4], rv, MOMENTUM,
                y, sm, si));
        rejects("runningVar", state, () -> ops.forwardTraining(shape, x, g, b, EPS, rm, new float[2], MOMENTUM,
                y, sm, si));
        rejects("runningVar", state, () -> ops.forwardTraining(shape, x, g, b, EPS, rm, null, MOMENTUM, y, sm, si));
        rejects("y", state, () -> ops.forwardTraining(shape, x, g, b, EPS, rm, rv, MOMENTUM, null, sm, si));
        rejects("y", state, () -> ops.forwardTraining(shape, x, g, b, EPS, rm, rv, MOMENTUM, new float[n - 1],
                sm, si));
        rejects("saveMean", state, () -> ops.forwardTraining(shape, x, g, b, EPS, rm, rv, MOMENTUM, y, null, si));
        rejects("saveInvstd", state, () -> ops.forwardTraining(shape, x, g, b, EPS, rm, rv, MOMENTUM, y, sm,
                new float[2]));
    }

    @ParameterizedTest
    @EnumSource(Layout.class)
    void trainingWithOneValuePerChannelIsRejected(Layout layout) {
        Shape shape = layout == Layout.CHANNELS_FIRST ? Shape.channelsFirst(1, 3, 1) : Shape.channelsLast(1, 3);
        Inputs in = new Inputs(shape, true, 15);
        float[] rm = in.runningMean.clone();
        float[] rv = in.runningVar.clone();
        float[] y = TestData.poisoned(3);
        float[] sm = TestData.poisoned(3);
        float[] si = TestData.poisoned(3);
        float[] dx = TestData.poisoned(3);
        float[][] state = {rm, rv, y, sm, si, dx};

        rejects("expected more than 1 value per channel when training", state,
                () -> ops.forwardTraining(shape, in.x, in.gamma, in.beta, EPS, rm, rv, MOMENTUM, y, sm, si));
        rejects("expected more than 1 value per channel when training", state,
                () -> ops.backwardTraining(shape, in.x, in.dy, in.gamma, in.runningMean, in.runningVar, dx, null,
                        null));
        // Eval mode is fine with M = 1.
        ops.forwardInference(shape, in.x, in.gamma, in.beta, rm, rv, EPS, y);
        assertForward("eval y with M = 1",
                Reference64.forwardEval(shape, in.x, in.gamma, in.beta, rm, rv, EPS), y);
    }

    @Test
    void badInferenceNormalizeAndStatisticsInputIsRejected() {
        Shape shape = Shape.channelsLast(2, 5, 3);
        Inputs in = new Inputs(shape, true, 16);
        int n = in.x.length;
        float[] y = TestData.poisoned(n);
        float[][] state = {y};
        float[] rm = in.runningMean;
        float[] rv = in.runningVar;

        rejects("runningMean", state, () -> ops.forwardInference(shape, in.x, in.gamma, in.beta, null, rv, EPS, y));
        rejects("runningVar", state, () -> ops.forwardInference(shape, in.x, in.gamma, in.beta, rm, new float[4],
                EPS, y));
        rejects("eps", state, () -> ops.forwardInference(shape, in.x, in.gamma, in.beta, rm, rv, -1, y));
        rejects("eps", state, () -> ops.forwardInference(shape, in.x, in.gamma, in.beta, rm, rv, Double.NaN, y));
        rejects("gamma", state, () -> ops.forwardInference(shape, in.x, new float[2], in.beta, rm, rv, EPS, y));
        rejects("y", state, () -> ops.forwardInference(shape, in.x, in.gamma, in.beta, rm, rv, EPS, new float[1]));
        rejects("x", state, () -> ops.forwardInference(shape, new float[n - 3], in.gamma, in.beta, rm, rv, EPS, y));
        rejects("mean", state, () -> ops.normalize(shape, in.x, in.gamma, in.beta, new float[2], rv, y));
        rejects("invstd", state, () -> ops.normalize(shape, in.x, in.gamma, in.beta, rm, null, y));
        rejects("beta", state, () -> ops.normalize(shape, in.x, in.gamma, new float[4], rm, rv, y));
        rejects("x", state, () -> ops.statistics(shape, new float[n + 3]));
        rejects("x", state, () -> ops.statistics(shape, null));
        rejects("shape", state, () -> ops.statistics(null, in.x));
    }

    @Test
    void badBackwardInputIsRejected() {
        Shape shape = Shape.channelsFirst(2, 3, 4);
        Inputs in = new Inputs(shape, true, 17);
        int n = in.x.length;
        float[] dx = TestData.poisoned(n);
        float[] dg = TestData.poisoned(3);
        float[] db = TestData.poisoned(3);
        float[][] state = {dx, dg, db};
        float[] sm = in.runningMean;
        float[] si = in.runningVar;
        float[] x = in.x;
        float[] dy = in.dy;
        float[] g = in.gamma;

        rejects("dy", state, () -> ops.backwardTraining(shape, x, null, g, sm, si, dx, dg, db));
        rejects("dy", state, () -> ops.backwardTraining(shape, x, new float[n + 1], g, sm, si, dx, dg, db));
        rejects("x", state, () -> ops.backwardTraining(shape, new float[1], dy, g, sm, si, dx, dg, db));
        rejects("gamma", state, () -> ops.backwardTraining(shape, x, dy, new float[1], sm, si, dx, dg, db));
        rejects("saveMean", state, () -> ops.backwardTraining(shape, x, dy, g, new float[2], si, dx, dg, db));
        rejects("saveInvstd", state, () -> ops.backwardTraining(shape, x, dy, g, sm, null, dx, dg, db));
        rejects("dx", state, () -> ops.backwardTraining(shape, x, dy, g, sm, si, new float[n + 1], dg, db));
        rejects("dgamma", state, () -> ops.backwardTraining(shape, x, dy, g, sm, si, dx, new float[4], db));
        rejects("dbeta", state, () -> ops.backwardTraining(shape, x, dy, g, sm, si, dx, dg, new float[2]));
        rejects("runningMean", state, () -> ops.backwardInference(shape, x, dy, g, new float[5], si, EPS, dx, dg, db));
        rejects("runningVar", state, () -> ops.backwardInference(shape, x, dy, g, sm, null, EPS, dx, dg, db));
        rejects("eps", state, () -> ops.backwardInference(shape, x, dy, g, sm, si, 0, dx, dg, db));
        rejects("dx", state, () -> ops.backwardInference(shape, x, dy, g, sm, si, EPS, null, dg, db));
        rejects("dy", state, () -> ops.backwardInference(shape, x, new float[3], g, sm, si, EPS, dx, dg, db));
    }

    /**
     * Asserts that the call throws IllegalArgumentException whose message contains {@code argument}, and that none of
     * the {@code state} arrays changed (bitwise, so NaN poison must stay NaN).
     */
    protected static void rejects(String argument, float[][] state, Executable call) {
        float[][] before = new float[state.length][];
        for (int i = 0; i < state.length; i++) before[i] = state[i].clone();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call,
                "expected IllegalArgumentException naming '" + argument + "'");
        if (e.getMessage() == null || !e.getMessage().contains(argument)) {
            fail("the message should name '" + argument + "', got: " + e.getMessage());
        }
        for (int i = 0; i < state.length; i++) {
            if (!Arrays.equals(before[i], state[i])) {
                fail("a call rejected for '" + argument + "' modified state array #" + i + " (" + e.getMessage() + ")");
            }
        }
    }

    /**
     * Runs backwardTraining with the given saved statistics into NaN-poisoned outputs and checks dx, dgamma and dbeta
     * against {@code expected}; returns dx.
     */
    private float[] assertBackwardTraining(Shape shape, float[] x, float[] dy, float[] gamma, float[] saveMean,
                                           float[] saveInvstd, Reference64.Backward expected) {
        float[] dx = TestData.poisoned(x.length);
        float[] dgamma = TestData.poisoned(shape.channels());
        float[] dbeta = TestData.poisoned(shape.channels());
        ops.backwardTraining(shape, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
        assertDx(expected, dx);
        assertDgamma(expected, dgamma);
        assertDbeta(expected, dbeta);
        return dx;
    }

    /**
     * Runs backwardInference with the case's running statistics and the given dy into NaN-poisoned outputs and checks
     * dx, dgamma and dbeta against the float64 reference.
     */
    private void assertBackwardInference(Inputs in, float[] dy) {
        Shape shape = in.shape;
        Reference64.Backward e = Reference64.backwardEval(shape, in.x, dy, in.gamma, in.runningMean, in.runningVar,
                EPS);
        float[] dx = TestData.poisoned(in.x.length);
        float[] dgamma = TestData.poisoned(shape.channels());
        float[] dbeta = TestData.poisoned(shape.channels());
        ops.backwardInference(shape, in.x, dy, in.gamma, in.runningMean, in.runningVar, EPS, dx, dgamma, dbeta);
        assertDx(e, dx);
        assertDgamma(e, dgamma);
        assertDbeta(e, dbeta);
    }

    protected static float[] toFloat(double[] a) {
        float[] f = new float[a.length];
        for (int i = 0; i < a.length; i++) f[i] = (float) a[i];
        return f;
    }
}
