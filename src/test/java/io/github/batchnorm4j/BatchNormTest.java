package io.github.batchnorm4j;

import static io.github.batchnorm4j.testing.Messages.assertRejected;
import static io.github.batchnorm4j.testing.Tolerances.assertDx;
import static io.github.batchnorm4j.testing.Tolerances.assertForward;
import static io.github.batchnorm4j.testing.Tolerances.assertGradient;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.batchnorm4j.cpu.CpuBatchNormOps;
import io.github.batchnorm4j.testing.Reference64;
import io.github.batchnorm4j.testing.TestData;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The stateful layer: running-statistic semantics over several steps against a float64 chain of
 * {@link Reference64} (PyTorch's rules: momentum, cumulative average, Keras decay mapping, untracked statistics, eval
 * mode), backward in both modes, and that a failing call commits nothing.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class BatchNormTest {
    private static final int C = 3;
    private static final int STEPS = 4;
    private BatchNormOps ops;

    @BeforeAll
    void open() {
        ops = new CpuBatchNormOps(2);
    }

    @AfterAll
    void close() {
        ops.close();
    }

    private static Shape shape(Layout layout) {
        return layout == Layout.CHANNELS_FIRST ? Shape.channelsFirst(4, C, 5, 3) : Shape.channelsLast(4, 5, 3, C);
    }

    /** A fresh batch for step k: each step has different per-channel means, so the running statistics move. */
    private static float[] batch(Shape shape, int step) {
        return TestData.perChannelNormal(TestData.random(1000 + step * 17L + shape.hashCode()), shape);
    }

    /** Runs STEPS training forwards and checks y, saved and running statistics against a float64 chain. */
    private void checkRunningStatistics(BatchNorm bn, Shape shape, double[] factors) {
        SplittableRandom rng = TestData.random(5);
        if (bn.gamma() != null) {
            System.arraycopy(TestData.uniform(rng, C, 0.5, 1.5), 0, bn.gamma(), 0, C);
            System.arraycopy(TestData.normal(rng, C, 0, 1), 0, bn.beta(), 0, C);
        }
        double[] rm = {0, 0, 0};
        double[] rv = {1, 1, 1};
        for (int step = 0; step < STEPS; step++) {
            float[] x = batch(shape, step);
            Reference64.Forward e = Reference64.forwardTraining(shape, Reference64.wide(x),
                    Reference64.wide(bn.gamma()), Reference64.wide(bn.beta()), bn.options().eps(), rm, rv,
                    factors[step]);
            float[] y = TestData.poisoned(x.length);

            bn.forward(shape, x, y);

            assertForward("y at step " + step, e.y(), y);
            assertForward("savedMean at step " + step, e.mean(), bn.savedMean());
            assertForward("savedInvstd at step " + step, e.invstd(), bn.savedInvstd());
            assertForward("runningMean at step " + step, e.runningMean(), bn.runningMean());
            assertForward("runningVar at step " + step, e.runningVar(), bn.runningVar());
            assertEquals(step + 1, bn.numBatchesTracked(), "numBatchesTracked");
            rm = e.runningMean();
            rv = e.runningVar();
        }
    }

    @ParameterizedTest
    @EnumSource(Layout.class)
    void momentumPointOneOverSeveralSteps(Layout layout) {
        BatchNorm bn = BatchNorm.builder(C).build(ops);
        checkRunningStatistics(bn, shape(layout), new double[] {0.1, 0.1, 0.1, 0.1});
    }

    @ParameterizedTest
    @EnumSource(Layout.class)
    void cumulativeMomentumIsTheAverageOfBatchStatistics(Layout layout) {
        Shape shape = shape(layout);
        BatchNorm bn = BatchNorm.builder(C).cumulativeMomentum().build(ops);
        checkRunningStatistics(bn, shape, new double[] {1, 1 / 2.0, 1 / 3.0, 1 / 4.0});
        // Independently: the cumulative running mean is the plain average of the batch means.
        double[] avg = new double[C];
        double[] avgVar = new double[C];
        long m = shape.reductionSize();
        for (int step = 0; step < STEPS; step++) {
            float[] x = batch(shape, step);
            double[] mean = Reference64.mean(shape, x);
            double[] m2 = Reference64.m2(shape, x, mean);
            for (int c = 0; c < C; c++) {
                avg[c] += mean[c] / STEPS;
                avgVar[c] += m2[c] / (m - 1) / STEPS;
            }
        }
        assertForward("runningMean = average of batch means", avg, bn.runningMean());
        assertForward("runningVar = average of unbiased batch variances", avgVar, bn.runningVar());
    }

    @Test
    void kerasMomentumIsADecay() {
        BatchNormOptions keras = BatchNormOptions.builder().kerasMomentum(0.9).build();
        assertEquals(0.1, keras.momentum(), 1e-15);
        assertEquals(0.01, BatchNormOptions.builder().kerasMomentum(0.99).build().momentum(), 1e-15);
        Shape shape = shape(Layout.CHANNELS_LAST);
        BatchNorm bn = BatchNorm.builder(C).kerasMomentum(0.9).build(ops);
        checkRunningStatistics(bn, shape, new double[] {0.1, 0.1, 0.1, 0.1});
    }

    @ParameterizedTest
    @EnumSource(Layout.class)
    void evalModeUsesRunningStatisticsAndChangesNothing(Layout layout) {
        Shape shape = shape(layout);
        BatchNorm bn = BatchNorm.builder(C).build(ops);
        bn.forward(shape, batch(shape, 0));
        bn.forward(shape, batch(shape, 1));
        float[] rm = bn.runningMean().clone();
        float[] rv = bn.runningVar().clone();
        float[] sm = bn.savedMean();
        float[] x = batch(shape, 2);
        float[] y = TestData.poisoned(x.length);

        bn.eval().forward(shape, x, y);

        assertForward("eval y", Reference64.forwardEval(shape, x, bn.gamma(), bn.beta(), rm, rv, bn.options().eps()), y);
        assertArrayEquals(rm, bn.runningMean(), "runningMean");
        assertArrayEquals(rv, bn.runningVar(), "runningVar");
        assertArrayEquals(sm, bn.savedMean(), "savedMean");
        assertEquals(2, bn.numBatchesTracked(), "numBatchesTracked");
    }

    @ParameterizedTest
    @EnumSource(Layout.class)
    void untrackedStatisticsMeanBatchStatisticsInEvalMode(Layout layout) {
        Shape shape = shape(layout);
        BatchNorm bn = BatchNorm.builder(C).trackRunningStats(false).build(ops);
        assertNull(bn.runningMean());
        assertNull(bn.runningVar());
        float[] x = batch(shape, 3);
        float[] dy = TestData.normal(TestData.random(3), x.length, 0, 1);
        float[] y = TestData.poisoned(x.length);

        bn.eval().forward(shape, x, y);

        Reference64.Forward e = Reference64.forwardTraining(shape, x, bn.gamma(), bn.beta(), bn.options().eps(),
                null, null, 0);
        assertForward("eval y with batch statistics", e.y(), y);
        assertEquals(0, bn.numBatchesTracked(), "numBatchesTracked is not counted without running statistics");

        // Backward goes through the batch statistics that forward used.
        float[] dx = TestData.poisoned(x.length);
        bn.backward(shape, x, dy, dx);
        Reference64.Backward b = Reference64.backwardTraining(shape, x, dy, bn.gamma(), e.mean(), e.invstd());
        assertDx(b, dx);
        assertGradient("gammaGrad", b.dgamma(), bn.gammaGrad());
        assertGradient("betaGrad", b.dbeta(), bn.betaGrad());

        bn.train().forward(shape, x, y);
        assertEquals(0, bn.numBatchesTracked(), "numBatchesTracked is not counted without running statistics");
    }

    @ParameterizedTest
    @EnumSource(Layout.class)
    void backwardInBothModes(Layout layout) {
        Shape shape = shape(layout);
        BatchNorm bn = BatchNorm.builder(C).build(ops);
        SplittableRandom rng = TestData.random(9);
        System.arraycopy(TestData.uniform(rng, C, 0.5, 1.5), 0, bn.gamma(), 0, C);
        float[] x = batch(shape, 0);
        float[] dy = TestData.normal(rng, x.length, 0, 1);
        bn.forward(shape, x);
        float[] dx = TestData.poisoned(x.length);
        TestData.poison(bn.gammaGrad(), bn.betaGrad());

        bn.backward(shape, x, dy, dx);

        Reference64.Backward t = Reference64.backwardTraining(shape, x, dy, bn.gamma(), bn.savedMean(),
                bn.savedInvstd());
        assertDx(t, dx);
        assertGradient("gammaGrad", t.dgamma(), bn.gammaGrad());
        assertGradient("betaGrad", t.dbeta(), bn.betaGrad());

        bn.eval();
        TestData.poison(dx, bn.gammaGrad(), bn.betaGrad());
        bn.backward(shape, x, dy, dx);
        Reference64.Backward e = Reference64.backwardEval(shape, x, dy, bn.gamma(), bn.runningMean(),
                bn.runningVar(), bn.options().eps());
        assertDx(e, dx);
        assertGradient("gammaGrad", e.dgamma(), bn.gammaGrad());
        assertGradient("betaGrad", e.dbeta(), bn.betaGrad());
    }

    @Test
    void affineOffHasNoParameters() {
        Shape shape = shape(Layout.CHANNELS_FIRST);
        BatchNorm bn = BatchNorm.builder(C).affine(false).build(ops);
        assertNull(bn.gamma());
        assertNull(bn.betaGrad());
        float[] x = batch(shape, 0);
        float[] y = bn.forward(shape, x);
        assertForward("y", Reference64.forwardTraining(shape, x, null, null, bn.options().eps(), null, null, 0).y(), y);
        float[] dy = TestData.normal(TestData.random(4), x.length, 0, 1);
        float[] dx = bn.backward(shape, x, dy);
        assertDx(Reference64.backwardTraining(shape, x, dy, null, bn.savedMean(), bn.savedInvstd()), dx);
    }

    // ---- failing calls commit nothing ---------------------------------------------------------------------------

    @Test
    void failingCallsLeaveStateUntouched() {
        Shape shape = shape(Layout.CHANNELS_FIRST);
        BatchNorm bn = BatchNorm.builder(C).build(ops);
        float[] x = batch(shape, 0);
        bn.forward(shape, x);
        bn.forward(shape, batch(shape, 1));
        float[] dy = TestData.normal(TestData.random(1), x.length, 0, 1);
        bn.backward(shape, batch(shape, 1), dy);

        Snapshot before = new Snapshot(bn);
        failsWith(bn, before, "shape", () -> bn.forward(Shape.channelsFirst(4, C + 1, 5, 3),
                new float[4 * (C + 1) * 15]));
        failsWith(bn, before, "shape", () -> bn.forward(null, x));
        failsWith(bn, before, "expected more than 1 value per channel when training",
                () -> bn.forward(Shape.channelsLast(1, C), new float[] {1, 2, 3}));
        failsWith(bn, before, "expected more than 1 value per channel when training",
                () -> bn.forward(Shape.channelsFirst(1, C, 1, 1), new float[] {1, 2, 3}));
        failsWith(bn, before, "x", () -> bn.forward(shape, new float[x.length - 1]));
        failsWith(bn, before, "x", () -> bn.forward(shape, null));
        failsWith(bn, before, "dy", () -> bn.backward(shape, x, new float[3]));
        failsWith(bn, before, "shape", () -> bn.backward(shape(Layout.CHANNELS_LAST), x, dy));
        bn.eval();
        failsWith(bn, before, "x", () -> bn.forward(shape, new float[x.length + 1]));
        failsWith(bn, before, "dy", () -> bn.backward(shape, x, new float[x.length + 1]));
        bn.train();
        // The same layer still works and commits a good call.
        bn.forward(shape, x);
        assertEquals(before.tracked + 1, bn.numBatchesTracked(), "numBatchesTracked after a good call");
    }

    private static final class Snapshot {
        final float[] runningMean;
        final float[] runningVar;
        final float[] savedMean;
        final float[] savedInvstd;
        final float[] gammaGrad;
        final float[] betaGrad;
        final long tracked;

        Snapshot(BatchNorm bn) {
            runningMean = bn.runningMean().clone();
            runningVar = bn.runningVar().clone();
            savedMean = bn.savedMean();
            savedInvstd = bn.savedInvstd();
            gammaGrad = bn.gammaGrad().clone();
            betaGrad = bn.betaGrad().clone();
            tracked = bn.numBatchesTracked();
        }

        void assertSame(BatchNorm bn, String after) {
            assertArrayEquals(runningMean, bn.runningMean(), "runningMean after " + after);
            assertArrayEquals(runningVar, bn.runningVar(), "runningVar after " + after);
            assertArrayEquals(savedMean, bn.savedMean(), "savedMean after " + after);
            assertArrayEquals(savedInvstd, bn.savedInvstd(), "savedInvstd after " + after);
            assertArrayEquals(gammaGrad, bn.gammaGrad(), "gammaGrad after " + after);
            assertArrayEquals(betaGrad, bn.betaGrad(), "betaGrad after " + after);
            assertEquals(tracked, bn.numBatchesTracked(), "numBatchesTracked after " + after);
        }
    }

    private static void failsWith(BatchNorm bn, Snapshot before, String argument, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage() != null && e.getMessage().contains(argument),
                "the message should name '" + argument + "', got: " + e.getMessage());
        before.assertSame(bn, "a call rejected with: " + e.getMessage());
    }

    // ---- options ------------------------------------------------------------------------------------------------

    @Test
    void optionsAreValidated() {
        BatchNormOptions d = BatchNormOptions.defaults();
        assertEquals(1e-5, d.eps());
        assertEquals(0.1, d.momentum());
        assertTrue(d.affine() && d.trackRunningStats() && !d.isCumulative());
        for (double eps : new double[] {0, -1e-5, Double.NaN, Double.POSITIVE_INFINITY}) {
            assertRejected("eps", () -> BatchNormOptions.builder().eps(eps));
            assertRejected("eps", () -> BatchNorm.builder(C).eps(eps));
        }
        for (double m : new double[] {-0.1, 1.5, Double.NaN}) {
            assertRejected("momentum", () -> BatchNormOptions.builder().momentum(m));
            assertRejected("kerasMomentum", () -> BatchNormOptions.builder().kerasMomentum(m));
        }
        assertRejected("numFeatures", () -> BatchNorm.builder(0).build(ops));
        assertRejected("numBatchesTracked", () -> BatchNorm.builder(C).build(ops).setNumBatchesTracked(-1));
        assertThrows(IllegalStateException.class, () -> BatchNormOptions.builder().cumulativeMomentum().build()
                .momentum());
        assertEquals(0.25, BatchNormOptions.builder().cumulativeMomentum().build().momentumFactor(4));
        assertThrows(IllegalStateException.class,
                () -> BatchNorm.builder(C).build(ops).backward(shape(Layout.CHANNELS_FIRST),
                        new float[180], new float[180]),
                "backward in training mode before any forward");
    }

}
