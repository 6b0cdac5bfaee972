package io.github.batchnorm4j.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.batchnorm4j.ChannelStatistics;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.testing.Reference64;
import io.github.batchnorm4j.testing.TestData;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The channels-last statistics against the float64 reference at 1e−6 relative, on adversarial channels: a guard for
 * any faster summation scheme (float groups were tried and measured, see docs/cpu-performance.md; such a
 * scheme must pass this). Channel kinds (channel c is kind c % 8): plain N(0.5, 1);
 * first value an outlier 1e6 away from N(0, 1) (the old single-shift worry); |mean| = 1e4 with std 1; mean 1 with
 * std 1e−5 (a few hundred float ulps); constant (M2 must be exactly 0); an outlier −1e6 in the middle of the rows;
 * a step from mean 0 to mean 1e3 halfway down (all variance between groups); and a tiny scale, N(0, 1e−13). The
 * shapes give several groups per piece plus a tail (C = 3, 8, 64: 43, 16 and 2 rows per chunk), with 1 and 3 threads
 * (3: pieces with their own shifts, merged).
 */
class CpuStatisticsAccuracyTest {
    private static final Shape[] SHAPES = {
        Shape.channelsLast(4, 30, 30, 3), Shape.channelsLast(2, 40, 50, 8), Shape.channelsLast(4, 24, 24, 64),
    };

    @Test
    void adversarialChannelsMatchFloat64() {
        for (Shape shape : SHAPES) {
            float[] x = adversarial(shape, 99);
            for (int threads : new int[] {1, 3}) {
                try (CpuBatchNormOps ops = new CpuBatchNormOps(threads, 1)) {
                    assertMatches(shape, x, ops.statistics(shape, x), "threads " + threads);
                }
            }
        }
    }

    /**
     * Data whose squared deviations a float cannot hold (≈ 1e59, overflow beyond ≈ 3e38; or ≈ 1e−41, below the
     * smallest normal float), and a NaN: still 1e−6 accurate; the NaN poisons its own channel only.
     */
    @Test
    void outOfFloatSquareRangeAndNan() {
        Shape shape = Shape.channelsLast(2, 40, 50, 8);
        for (int kind = 0; kind < 3; kind++) {
            float[] x = adversarial(shape, 7 + kind);
            SplittableRandom rng = TestData.random(500 + kind);
            for (long j = 0; j < shape.reductionSize(); j++) {
                int i = Reference64.index(shape, 1, j);
                x[i] = kind == 0 ? (float) (1e30 * (rng.nextDouble() - 0.5)) // squared deviations ≈ 1e59
                        : (float) (1e-20 * (1 + rng.nextDouble()));      // variance ≈ 1e−41
            }
            if (kind == 2) x[Reference64.index(shape, 5, 1234)] = Float.NaN;
            for (int threads : new int[] {1, 3}) {
                try (CpuBatchNormOps ops = new CpuBatchNormOps(threads, 1)) {
                    ChannelStatistics st = ops.statistics(shape, x);
                    if (kind == 2) {
                        assertTrue(Double.isNaN(st.mean(5)) && Double.isNaN(st.m2(5)), "NaN channel: " + st);
                        assertMatches(shape, x, st, "NaN case, threads " + threads, 5); // the others
                    } else {
                        assertMatches(shape, x, st, "kind " + kind + ", threads " + threads);
                    }
                }
            }
        }
    }

    private static float[] adversarial(Shape shape, long seed) {
        SplittableRandom rng = TestData.random(seed);
        int m = (int) shape.reductionSize();
        float[] x = new float[shape.elementCountAsInt()];
        for (int c = 0; c < shape.channels(); c++) {
            float[] v = switch (c % 8) {
                case 0 -> TestData.normal(rng, m, 0.5, 1);
                case 1 -> TestData.normal(rng, m, 0, 1);
                case 2 -> TestData.normal(rng, m, c % 16 == 2 ? 1e4 : -1e4, 1);
                case 3 -> TestData.normal(rng, m, 1, 1e-5);
                case 4 -> constant(m, 2.75f);
                case 5 -> TestData.normal(rng, m, 0, 1);
                case 6 -> TestData.normal(rng, m, 0, 1);
                default -> TestData.normal(rng, m, 0, 1e-13);
            };
            if (c % 8 == 1) v[0] = 1e6f;
            if (c % 8 == 5) v[m / 2 + 3] = -1e6f;
            if (c % 8 == 6) for (int j = m / 2; j < m; j++) v[j] += 1e3f;
            for (int j = 0; j < m; j++) x[Reference64.index(shape, c, j)] = v[j];
        }
        return x;
    }

    private static float[] constant(int m, float value) {
        float[] v = new float[m];
        java.util.Arrays.fill(v, value);
        return v;
    }

    /** Mean within 1e−6·std (+ double rounding of |mean|), M2 within 1e−6 relative, constant channels exact. */
    private static void assertMatches(Shape shape, float[] x, ChannelStatistics st, String what, int... skip) {
        double[] mean = Reference64.mean(shape, x);
        double[] m2 = Reference64.m2(shape, x, mean);
        double n = shape.reductionSize();
        assertEquals(shape.reductionSize(), st.count(), what + ": count");
        channels:
        for (int c = 0; c < shape.channels(); c++) {
            for (int s : skip) if (s == c) continue channels;
            String at = shape + " " + what + " channel " + c + " (kind " + c % 8 + "): ";
            double std = Math.sqrt(m2[c] / n);
            assertTrue(Math.abs(st.mean(c) - mean[c]) <= 1e-6 * std + 1e-15 * Math.abs(mean[c]),
                    at + "mean " + st.mean(c) + " vs " + mean[c] + " (std " + std + ")");
            if (m2[c] == 0) {
                assertEquals(0.0, st.m2(c), at + "M2 of a constant channel");
            } else {
                assertTrue(Math.abs(st.m2(c) - m2[c]) <= 1e-6 * m2[c],
                        at + "M2 " + st.m2(c) + " vs " + m2[c] + " (relative error "
                                + Math.abs(st.m2(c) - m2[c]) / m2[c] + ")");
            }
        }
    }
}
