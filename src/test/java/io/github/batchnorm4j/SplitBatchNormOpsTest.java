package io.github.batchnorm4j;

import io.github.batchnorm4j.cpu.CpuBatchNormOps;
import io.github.batchnorm4j.testing.TestData;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link SplitBatchNormOps} with a single piece is the fused operation, bit for bit on the CPU; and its own argument
 * rules (merged statistics and sums must match C and count more than one value).
 */
class SplitBatchNormOpsTest {
    private final Shape shape = Shape.channelsFirst(3, 4, 7);

    @Test
    void onePieceIsTheFusedForwardAndBackwardBitForBit() {
        SplittableRandom rng = TestData.random(5);
        float[] x = TestData.perChannelNormal(rng, shape);
        float[] dy = TestData.normal(rng, x.length, 0, 1);
        float[] gamma = TestData.uniform(rng, 4, 0.5, 1.5);
        float[] beta = TestData.uniform(rng, 4, -1, 1);
        try (CpuBatchNormOps cpu = new CpuBatchNormOps(3)) {
            float[] y1 = new float[x.length], m1 = new float[4], i1 = new float[4], rm1 = new float[4], rv1 = {1, 1, 1, 1};
            cpu.forwardTraining(shape, x, gamma, beta, 1e-5, rm1, rv1, 0.1, y1, m1, i1);
            float[] y2 = TestData.poisoned(x.length), m2 = TestData.poisoned(4), i2 = TestData.poisoned(4);
            float[] rm2 = new float[4], rv2 = {1, 1, 1, 1};
            cpu.forwardWithStatistics(shape, x, cpu.statistics(shape, x), gamma, beta, 1e-5, rm2, rv2, 0.1, y2, m2, i2);
            assertArrayEquals(y1, y2);
            assertArrayEquals(m1, m2);
            assertArrayEquals(i1, i2);
            assertArrayEquals(rm1, rm2);
            assertArrayEquals(rv1, rv2);

            float[] dx1 = new float[x.length], dg = new float[4], db = new float[4];
            cpu.backwardTraining(shape, x, dy, gamma, m1, i1, dx1, dg, db);
            GradientSums sums = cpu.gradientSums(shape, x, dy, m1, i1);
            assertEquals(shape.reductionSize(), sums.count());
            float[] dx2 = TestData.poisoned(x.length);
            cpu.backwardWithSums(shape, x, dy, gamma, m1, i1, sums, dx2);
            assertArrayEquals(dx1, dx2);
            for (int c = 0; c < 4; c++) {
                assertEquals(dg[c], (float) sums.sumDyXhat(c));
                assertEquals(db[c], (float) sums.sumDy(c));
            }
        }
    }

    @Test
    void mergedStatisticsAndSumsMustFitTheShapeAndCountMoreThanOneValue() {
        float[] x = new float[shape.elementCountAsInt()];
        float[] y = TestData.poisoned(x.length);
        try (CpuBatchNormOps cpu = new CpuBatchNormOps(1)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cpu.forwardWithStatistics(
                    shape, x, ChannelStatistics.empty(3), null, null, 1e-5, null, null, 0, y, new float[4],
                    new float[4]));
            assertEquals("statistics: expected 4 channels (of " + shape + "), got 3", e.getMessage());
            ChannelStatistics one = new ChannelStatistics(1, new double[4], new double[4]);
            e = assertThrows(IllegalArgumentException.class, () -> cpu.forwardWithStatistics(shape, x, one, null, null,
                    1e-5, null, null, 0, y, new float[4], new float[4]));
            assertEquals("statistics (count): expected more than 1 value per channel when training, got 1",
                    e.getMessage());
            assertTrue(Float.isNaN(y[0]), "nothing written");
            e = assertThrows(IllegalArgumentException.class, () -> cpu.backwardWithSums(shape, x, x, null,
                    new float[4], new float[4], GradientSums.empty(4), new float[x.length]));
            assertEquals("sums (count): expected more than 1 value per channel when training, got 0", e.getMessage());
            // A piece of one value is fine when the merged statistics count more.
            Shape single = Shape.channelsLast(1, 4);
            ChannelStatistics two = new ChannelStatistics(2, new double[] {0, 0, 0, 0}, new double[] {2, 2, 2, 2});
            float[] ys = new float[4];
            cpu.forwardWithStatistics(single, new float[] {1, 1, 1, 1}, two, null, null, 1e-12, null, null, 0, ys,
                    new float[4], new float[4]);
            assertArrayEquals(new float[] {1, 1, 1, 1}, ys, 1e-6f);
        }
    }

    @Test
    void gradientSumsAddInOrder() {
        GradientSums a = new GradientSums(3, new double[] {1, 2}, new double[] {3, 4});
        GradientSums b = new GradientSums(5, new double[] {10, 20}, new double[] {30, 40});
        GradientSums s = a.add(b);
        assertEquals(8, s.count());
        assertArrayEquals(new double[] {11, 22}, s.sumDys());
        assertArrayEquals(new double[] {33, 44}, s.sumDyXhats());
        assertThrows(IllegalArgumentException.class, () -> a.add(GradientSums.empty(3)));
        assertThrows(IllegalArgumentException.class, () -> new GradientSums(-1, new double[1], new double[1]));
    }
}
