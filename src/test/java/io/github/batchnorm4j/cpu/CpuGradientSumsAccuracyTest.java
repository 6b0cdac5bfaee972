package io.github.batchnorm4j.cpu;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.testing.Reference64;
import io.github.batchnorm4j.testing.TestData;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The channels-last gradient sums accumulate in float groups (see ElementLoops.gradientSumsChannelsLast); Σdy is
 * compensated (two-sum) so that it stays as accurate as a double sum even when it cancels. This case makes a plain
 * float sum fail: dy alternates between about +1e4 and −1e4 down each channel, so the float partial sums swing between
 * ≈ 1e4 (ulp 2^−10) and ≈ 0, and every add at 1e4 drops the small parts, while the exact Σdy is only the sum of those
 * small parts (≈ 1). Measured: plain float groups (planted) err by 1e−2 relative (0.028 of 2.92), the compensated
 * sum by 0.
 */
class CpuGradientSumsAccuracyTest {
    @Test
    void channelsLastSumOfDyStaysExactUnderCancellation() {
        // C = 8: 16 rows per chunk, 256 chunks, 16 flushes of the float accumulators, and a tail of 6 rows (an even
        // row count, so the ±1e4 cancel).
        Shape shape = Shape.channelsLast(4102, 8);
        int c = shape.channels();
        SplittableRandom rng = TestData.random(2024);
        float[] x = TestData.normal(rng, shape.elementCountAsInt(), 0.5, 1);
        float[] dy = new float[x.length];
        for (int i = 0; i < dy.length; i++) {
            double sign = (i / c) % 2 == 0 ? 1 : -1; // alternate down each channel (rows), not across channels
            dy[i] = (float) (sign * 1e4 + (rng.nextDouble() - 0.5) * 0.1);
        }
        float[] mean = new float[c];
        float[] invstd = new float[c];
        java.util.Arrays.fill(invstd, 1f);
        for (int k = 0; k < c; k++) mean[k] = x[k];
        for (int threads : new int[] {1, 3}) {
            try (CpuBatchNormOps ops = new CpuBatchNormOps(threads, 1)) {
                float[] dx = TestData.poisoned(x.length);
                float[] dgamma = TestData.poisoned(c);
                float[] dbeta = TestData.poisoned(c);
                ops.backwardTraining(shape, x, dy, null, mean, invstd, dx, dgamma, dbeta);
                Reference64.Backward e = Reference64.backwardTraining(shape, x, dy, null, mean, invstd);
                for (int k = 0; k < c; k++) {
                    double err = Math.abs(dbeta[k] - e.dbeta()[k]);
                    // float32 output rounding of dbeta is 6e-8 relative; allow 1e-6.
                    assertTrue(err <= 1e-6 * Math.abs(e.dbeta()[k]),
                            "dbeta[" + k + "] threads " + threads + ": expected " + e.dbeta()[k] + ", got " + dbeta[k]
                                    + " (error " + err + ")");
                }
            }
        }
    }
}
