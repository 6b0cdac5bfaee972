package io.github.batchnorm4j.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.BatchNormOpsContractTest;
import io.github.batchnorm4j.ChannelStatistics;
import io.github.batchnorm4j.GradientSums;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.testing.TestData;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The CPU backend with 3 threads and no minimum piece size, so that even the small shapes of the contract are cut
 * into several pieces, with boundaries inside channel runs and rows: the partial-merge and piece-walk code runs on
 * every shape. Also: results are deterministic (bitwise) from call to call.
 */
class CpuBatchNormOpsSplitTest extends BatchNormOpsContractTest {
    @Override
    protected BatchNormOps openOps() {
        return new CpuBatchNormOps(3, 1);
    }

    @Test
    void resultsAreBitwiseDeterministic() {
        for (Shape shape : new Shape[] {Shape.channelsFirst(4, 3, 37, 41), Shape.channelsLast(4, 37, 41, 3)}) {
            SplittableRandom rng = TestData.random(77);
            float[] x = TestData.perChannelNormal(rng, shape);
            float[] dy = TestData.normal(rng, x.length, 0, 1);
            float[][] first = run(shape, x, dy);
            for (int rep = 0; rep < 5; rep++) {
                float[][] again = run(shape, x, dy);
                for (int i = 0; i < first.length; i++) assertArrayEquals(first[i], again[i], "output #" + i);
            }
        }
    }

    private float[][] run(Shape shape, float[] x, float[] dy) {
        int c = shape.channels();
        float[] y = TestData.poisoned(x.length);
        float[] sm = TestData.poisoned(c);
        float[] si = TestData.poisoned(c);
        float[] rm = new float[c];
        float[] rv = new float[c];
        ops().forwardTraining(shape, x, null, null, EPS, rm, rv, MOMENTUM, y, sm, si);
        float[] dx = TestData.poisoned(x.length);
        float[] dg = TestData.poisoned(c);
        float[] db = TestData.poisoned(c);
        ops().backwardTraining(shape, x, dy, null, sm, si, dx, dg, db);
        return new float[][] {y, sm, si, rm, rv, dx, dg, db};
    }

    /**
     * The elementwise passes run in chunks that any thread may take (CpuBatchNormOps.runElementwise: front to back for
     * eval, normalize and backwardWithSums; from each piece's end after a first pass, forwardWithStatistics and the
     * training backward). With the same statistics 3 threads must give the bits of 1 thread, and the training
     * backward's dx (reversed chunks) the bits of backwardWithSums (front-to-back chunks) from the same sums: the
     * shapes give each piece many chunks (16 Ki elements front to back, 64 Ki reversed) and a ragged last one, so a
     * chunk skipped, cut short or given the wrong range shows (outputs are poisoned with NaN first).
     */
    @Test
    void chunkedElementwisePassesGiveTheBitsOfOneThread() {
        for (Shape shape : new Shape[] {Shape.channelsFirst(3, 5, 211, 199), Shape.channelsLast(3, 211, 199, 5)}) {
            SplittableRandom rng = TestData.random(78);
            float[] x = TestData.perChannelNormal(rng, shape);
            float[] dy = TestData.normal(rng, x.length, 0, 1);
            int c = shape.channels();
            float[] gamma = TestData.normal(rng, c, 1, 0.5);
            float[] beta = TestData.normal(rng, c, 0, 1);
            float[] rm = TestData.normal(rng, c, 0, 1);
            float[] rv = new float[c];
            for (int k = 0; k < c; k++) rv[k] = 0.5f + k;
            try (CpuBatchNormOps one = new CpuBatchNormOps(1); CpuBatchNormOps three = new CpuBatchNormOps(3, 1)) {
                ChannelStatistics st = one.statistics(shape, x);
                float[][] expected = elementwise(one, shape, x, dy, gamma, beta, rm, rv, st);
                float[][] actual = elementwise(three, shape, x, dy, gamma, beta, rm, rv, st);
                for (int i = 0; i < expected.length; i++) {
                    assertArrayEquals(expected[i], actual[i], shape + ": output #" + i);
                }
                float[] sm = TestData.poisoned(c);
                float[] si = TestData.poisoned(c);
                three.forwardTraining(shape, x, gamma, beta, EPS, null, null, 0, TestData.poisoned(x.length), sm, si);
                float[] dxTraining = TestData.poisoned(x.length);
                three.backwardTraining(shape, x, dy, gamma, sm, si, dxTraining, null, null);
                float[] dxWithSums = TestData.poisoned(x.length);
                three.backwardWithSums(shape, x, dy, gamma, sm, si, three.gradientSums(shape, x, dy, sm, si),
                        dxWithSums);
                assertArrayEquals(dxWithSums, dxTraining, shape + ": dx, reversed chunks");
            }
        }
    }

    /** forwardInference, normalize, forwardWithStatistics (y) and backwardWithSums (dx) with fixed statistics. */
    private static float[][] elementwise(CpuBatchNormOps ops, Shape shape, float[] x, float[] dy, float[] gamma,
                                         float[] beta, float[] rm, float[] rv, ChannelStatistics st) {
        int c = shape.channels();
        float[] eval = TestData.poisoned(x.length);
        ops.forwardInference(shape, x, gamma, beta, rm, rv, EPS, eval);
        float[] invstd = new float[c];
        for (int k = 0; k < c; k++) invstd[k] = 1 / rv[k];
        float[] norm = TestData.poisoned(x.length);
        ops.normalize(shape, x, gamma, beta, rm, invstd, norm);
        float[] y = TestData.poisoned(x.length);
        float[] sm = TestData.poisoned(c);
        float[] si = TestData.poisoned(c);
        ops.forwardWithStatistics(shape, x, st, gamma, beta, EPS, null, null, 0, y, sm, si);
        float[] dx = TestData.poisoned(x.length);
        double[] sumDy = new double[c];
        double[] sumDyXhat = new double[c];
        for (int k = 0; k < c; k++) {
            sumDy[k] = 1000.5 * (k - 2);
            sumDyXhat[k] = -321.25 * (k + 1);
        }
        ops.backwardWithSums(shape, x, dy, gamma, sm, si, new GradientSums(st.count(), sumDy, sumDyXhat), dx);
        return new float[][] {eval, norm, y, sm, si, dx};
    }

    @Test
    void threadCountIsValidated() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new CpuBatchNormOps(0));
        assertEquals("threads: expected >= 1, got 0", e.getMessage());
        try (CpuBatchNormOps one = new CpuBatchNormOps(1)) {
            assertEquals(1, one.threads());
        }
    }
}
