package io.github.batchnorm4j;

import static io.github.batchnorm4j.testing.Messages.assertRejected;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.batchnorm4j.cpu.CpuBatchNormOps;
import io.github.batchnorm4j.testing.TestData;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * The layer with a fused ReLU ({@link Activation#RELU}): its forward and backward are the fused operations with the
 * layer's state (running statistics, saved statistics, the mask kept between forward and backward), in training and
 * eval mode, with and without a residual; a failing call keeps the last mask; misuse is refused.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class BatchNormReluLayerTest {
    private static final int C = 3;
    private final Shape shape = Shape.channelsFirst(4, C, 5, 3);   // 180 elements: a partial last mask word
    private BatchNormOps ops;

    @BeforeAll
    void open() {
        ops = new CpuBatchNormOps(2);
    }

    @AfterAll
    void close() {
        ops.close();
    }

    private BatchNorm layer() {
        BatchNorm bn = BatchNorm.builder(C).momentum(0.2).activation(Activation.RELU).build(ops);
        SplittableRandom rng = TestData.random(3);
        System.arraycopy(TestData.uniform(rng, C, 0.5, 1.5), 0, bn.gamma(), 0, C);
        System.arraycopy(TestData.normal(rng, C, 0, 1), 0, bn.beta(), 0, C);
        return bn;
    }

    @Test
    void trainingStepIsTheFusedOperationsWithTheLayersState() {
        SplittableRandom rng = TestData.random(11);
        float[] x = TestData.perChannelNormal(rng, shape);
        float[] z = TestData.normal(rng, x.length, 0, 1);
        float[] dy = TestData.normal(rng, x.length, 0, 1);
        BatchNorm bn = layer();
        assertEquals(Activation.RELU, bn.activation());
        float[] y = TestData.poisoned(x.length);
        bn.forward(shape, x, z, y);
        float[] dx = TestData.poisoned(x.length);
        float[] dz = TestData.poisoned(x.length);
        bn.backward(shape, x, dy, dx, dz);

        // The same through the functional operations.
        float[] rm = new float[C];
        float[] rv = {1, 1, 1};
        float[] ey = new float[x.length];
        int[] mask = ReluMask.allocate(shape);
        float[] sm = new float[C];
        float[] si = new float[C];
        ops.forwardTrainingRelu(shape, x, z, bn.gamma(), bn.beta(), 1e-5, rm, rv, 0.2, ey, mask, sm, si);
        float[] edx = new float[x.length];
        float[] edz = new float[x.length];
        float[] dg = new float[C];
        float[] db = new float[C];
        ops.backwardTrainingRelu(shape, x, dy, mask, bn.gamma(), sm, si, edx, edz, dg, db);

        assertArrayEquals(ey, y, "y");
        assertArrayEquals(mask, bn.lastMask(), "mask");
        assertArrayEquals(rm, bn.runningMean(), "runningMean");
        assertArrayEquals(rv, bn.runningVar(), "runningVar");
        assertEquals(1, bn.numBatchesTracked());
        assertArrayEquals(edx, dx, "dx");
        assertArrayEquals(edz, dz, "dz");
        assertArrayEquals(dg, bn.gammaGrad(), "gammaGrad");
        assertArrayEquals(db, bn.betaGrad(), "betaGrad");
        long passed = ReluMask.count(mask, x.length);
        assertTrue(passed > 20 && passed < x.length - 20, "a mix of passed and blocked elements: " + passed);
    }

    @Test
    void evalModeUsesRunningStatisticsAndItsOwnMask() {
        SplittableRandom rng = TestData.random(12);
        float[] x = TestData.perChannelNormal(rng, shape);
        float[] dy = TestData.normal(rng, x.length, 0, 1);
        BatchNorm bn = layer();
        bn.forward(shape, x);                    // one training step moves the running statistics
        bn.eval();
        float[] y = bn.forward(shape, x);
        float[] dx = bn.backward(shape, x, dy);

        float[] ey = new float[x.length];
        int[] mask = ReluMask.allocate(shape);
        ops.forwardInferenceRelu(shape, x, null, bn.gamma(), bn.beta(), bn.runningMean(), bn.runningVar(), 1e-5, ey,
                mask);
        float[] edx = new float[x.length];
        ops.backwardInferenceRelu(shape, x, dy, mask, bn.gamma(), bn.runningMean(), bn.runningVar(), 1e-5, edx, null,
                new float[C], new float[C]);
        assertArrayEquals(ey, y, "eval y");
        assertArrayEquals(mask, bn.lastMask(), "eval mask");
        assertArrayEquals(edx, dx, "eval dx");
        for (float v : y) assertTrue(v >= 0, "relu output");
    }

    @Test
    void backwardNeedsAForwardOfTheSameShapeAndMode() {
        float[] x = TestData.perChannelNormal(TestData.random(13), shape);
        BatchNorm bn = layer();
        assertNull(bn.lastMask());
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> bn.backward(shape, x, x.clone()));
        assertTrue(e.getMessage().contains("the last forward was none"), e.getMessage());
        bn.forward(shape, x);
        bn.eval();
        e = assertThrows(IllegalStateException.class, () -> bn.backward(shape, x, x.clone()));
        assertTrue(e.getMessage().contains("needs the mask of a eval forward"), e.getMessage());
    }

    @Test
    void aFailingForwardKeepsTheLastMask() {
        float[] x = TestData.perChannelNormal(TestData.random(14), shape);
        BatchNorm bn = layer();
        bn.forward(shape, x);
        int[] before = bn.lastMask();
        float[] bad = new float[x.length - 1];
        assertRejected("z: expected 180 elements", () -> bn.forward(shape, x, bad, new float[x.length]));
        assertArrayEquals(before, bn.lastMask());
        assertEquals(1, bn.numBatchesTracked(), "no state committed by the failing call");
    }

    @Test
    void aResidualNeedsAReluLayer() {
        BatchNorm plain = BatchNorm.builder(C).build(ops);
        float[] x = TestData.perChannelNormal(TestData.random(15), shape);
        assertThrows(IllegalStateException.class, () -> plain.forward(shape, x, x.clone(), new float[x.length]));
        plain.forward(shape, x);
        assertThrows(IllegalStateException.class, () -> plain.backward(shape, x, x.clone(), new float[x.length],
                new float[x.length]));
        assertNull(plain.lastMask());
        assertRejected("activation must not be null", () -> BatchNorm.builder(C).activation(null));
        assertEquals(Activation.RELU, Activation.parse("ReLU"));
        assertRejected("activation: expected none or relu, got sigmoid", () -> Activation.parse("sigmoid"));
    }
}
