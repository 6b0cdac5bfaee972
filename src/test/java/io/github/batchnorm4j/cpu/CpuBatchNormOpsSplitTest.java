package io.github.batchnorm4j.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.BatchNormOpsContractTest;
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

    @Test
    void threadCountIsValidated() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new CpuBatchNormOps(0));
        assertEquals("threads: expected >= 1, got 0", e.getMessage());
        try (CpuBatchNormOps one = new CpuBatchNormOps(1)) {
            assertEquals(1, one.threads());
        }
    }
}
