package io.github.batchnorm4j.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.batchnorm4j.DType;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Mixed-precision training on the CPU backend: every op that writes a 16-bit tensor rounds once to its type (the
 * values stored are values of the type, and equal the float32 result rounded), the loss scaling of {@link GradScaler},
 * and the {@link Mlp} in float16/bfloat16 against the same network in float32.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class MixedPrecisionTrainingTest {
    private CpuTrainBackend be;

    @BeforeAll
    void open() {
        be = new CpuTrainBackend();
    }

    @AfterAll
    void close() {
        be.close();
    }

    private static float[] random(Random r, int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (r.nextGaussian() * scale);
        return a;
    }

    private float[] values(Tensor t) {
        float[] v = new float[t.size()];
        be.download(t, v);
        return v;
    }

    /** Each element of {@code got} is {@code dtype.round} of the float32 result (no other rounding happened). */
    private static void assertRounded(String what, DType dtype, float[] float32Result, float[] got) {
        for (int i = 0; i < got.length; i++) {
            float want = dtype.round(float32Result[i]);
            if (Float.floatToIntBits(want) != Float.floatToIntBits(got[i])) {
                fail(what + " " + dtype + " [" + i + "]: expected " + want + " (" + float32Result[i] + " rounded), got "
                        + got[i]);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"FLOAT16", "BFLOAT16"})
    void opsRoundTheirSixteenBitOutputsOnce(DType dtype) {
        Random r = new Random(dtype.ordinal());
        int rows = 9, k = 13, cols = 7;
        float[] a = random(r, rows * k, 1), b = random(r, k * cols, 1), bias = random(r, cols, 1);
        Tensor a16 = be.allocate(rows, k, dtype), b16 = be.allocate(k, cols, dtype), c16 = be.allocate(rows, cols, dtype);
        Tensor a32 = be.allocate(rows, k), b32 = be.allocate(k, cols), c32 = be.allocate(rows, cols);
        be.upload(a, a16);
        assertRounded("upload", dtype, a, values(a16));
        be.upload(b, b16);
        be.upload(values(a16), a32);
        be.upload(values(b16), b32);
        // GEMM: float32 accumulation of the 16-bit values, one rounding of C
        be.gemm(false, false, 1f, a16, b16, 0f, c16);
        be.gemm(false, false, 1f, a32, b32, 0f, c32);
        assertRounded("gemm", dtype, values(c32), values(c16));
        Tensor bias32 = be.allocate(1, cols);
        be.upload(bias, bias32);
        float[] sum = values(c16);
        for (int i = 0; i < sum.length; i++) sum[i] += bias[i % cols];
        be.addBias(c16, bias32);
        assertRounded("addBias", dtype, sum, values(c16));
        Tensor w16 = be.allocate(k, cols, dtype);
        be.cast(b32, w16);
        assertRounded("cast", dtype, values(b32), values(w16));
        // the softmax gradient, scaled, rounded once
        Tensor g16 = be.allocate(rows, cols, dtype), g32 = be.allocate(rows, cols);
        int[] labels = new int[rows];
        for (int i = 0; i < rows; i++) labels[i] = i % cols;
        double l16 = be.softmaxCrossEntropy(c16, labels, g16, 1024f);
        be.upload(values(c16), c32);
        double l32 = be.softmaxCrossEntropy(c32, labels, g32, 1f);
        assertEquals(l32, l16, 0, "the loss is not scaled and reads the same values");
        float[] scaled = values(g32);
        for (int i = 0; i < scaled.length; i++) scaled[i] *= 1024f;
        assertRounded("softmax gradient", dtype, scaled, values(g16));
        // mixed-type arguments are refused by name
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> be.gemm(false, false, 1f, a16, b32, 0f, c32));
        assertTrue(e.getMessage().startsWith("b: expected a " + dtype), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> be.sgdUpdate(w16, b32, b32, 0.1f, 0f, 0f));
        assertTrue(e.getMessage().startsWith("param: expected a float32 tensor"), e.getMessage());
    }

    @Test
    void unscaleReportsNonFiniteGradients() {
        Tensor g1 = be.allocate(2, 3), g2 = be.allocate(1, 4);
        be.upload(new float[] {2, 4, 8, 16, 32, 64}, g1);
        be.upload(new float[] {1, 1, 1, 1}, g2);
        assertTrue(be.unscale(List.of(g1, g2), 0.5f));
        assertEquals(32f, values(g1)[5]);
        assertEquals(0.5f, values(g2)[0]);
        be.upload(new float[] {1, Float.POSITIVE_INFINITY, 1, 1}, g2);
        assertFalse(be.unscale(List.of(g1, g2), 0.5f));
        be.upload(new float[] {1, 1, Float.NaN, 1}, g2);
        assertFalse(be.unscale(List.of(g2), 1f));
    }

    /** PyTorch's GradScaler: skip and halve on Inf/NaN, double after growthInterval good steps in a row. */
    @Test
    void gradScalerSkipsHalvesAndGrows() {
        GradScaler s = new GradScaler(8f, 3);
        Tensor g = be.allocate(1, 2);
        be.upload(new float[] {8, 16}, g);
        assertTrue(s.unscaleAndUpdate(be, List.of(g)));
        assertEquals(1f, values(g)[0], "unscaled by 1/8");
        be.upload(new float[] {Float.POSITIVE_INFINITY, 1}, g);
        assertFalse(s.unscaleAndUpdate(be, List.of(g)));
        assertEquals(4f, s.scale(), "halved");
        assertEquals(1, s.skippedSteps());
        for (int i = 0; i < 2; i++) {
            be.upload(new float[] {1, 1}, g);
            assertTrue(s.unscaleAndUpdate(be, List.of(g)));
            assertEquals(4f, s.scale(), "not yet grown after " + (i + 1) + " good steps");
        }
        be.upload(new float[] {1, 1}, g);
        assertTrue(s.unscaleAndUpdate(be, List.of(g)));
        assertEquals(8f, s.scale(), "grown after 3 good steps in a row (the run restarted after the skip)");
        assertEquals(5, s.steps());
        assertEquals(65536f, new GradScaler().scale());
    }

    /**
     * One training step's gradients in float16 (loss-scaled, unscaled) and bfloat16 against float32 on the same
     * batch. Above the last batch norm (the output layer, bn2's gamma and beta) every gradient is within 16 units of
     * the type's precision of float32's (relative, as a vector). Below it the batch-norm backward amplifies the
     * 16-bit rounding of its dy: dx = k·(M·dy − Σdy − xhat·Σdy·xhat) cancels, so dy's relative error u becomes u
     * times the cancellation factor in dx (measured here: fc2.weight 0.16% in float16, 15% in bfloat16, as mixed
     * precision does in any framework); those are held to a cosine similarity of 0.95 with float32 (a gradient
     * pointing elsewhere, or scaled wrongly, fails). The activations kept are values of the type.
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"FLOAT16", "BFLOAT16"})
    void gradientsFollowFloat32WithinTheTypesPrecision(DType dtype) {
        Dataset.Split split = DigitsData.loadSplit(0.2, 42);
        Dataset d = split.train();
        int rows = 64;
        float[] x = new float[rows * d.features()];
        int[] y = new int[rows];
        d.gather(Shuffle.identity(d.rows()), 0, rows, x, y);
        try (Mlp m32 = new Mlp(be, d.features(), new int[] {32, 32}, d.classes(), true, 7, 1e-5, 0.1);
             Mlp m16 = new Mlp(be, d.features(), new int[] {32, 32}, d.classes(), true, 7, 1e-5, 0.1, dtype)) {
            m32.computeGradients(x, y);
            float scale = dtype == DType.FLOAT16 ? 1024f : 1f;
            m16.computeGradients(x, y, scale);
            assertTrue(be.unscale(m16.gradients(), 1f / scale));
            List<Parameter> p32 = m32.parameters(), p16 = m16.parameters();
            double tol = 16 * dtype.unitRoundoff();
            for (int i = 0; i < p32.size(); i++) {
                String name = p32.get(i).name();
                float[] g32 = values(p32.get(i).grad()), g16 = values(p16.get(i).grad());
                double diff = 0, norm32 = 0, norm16 = 0, dot = 0;
                for (int j = 0; j < g32.length; j++) {
                    diff += (g16[j] - g32[j]) * (double) (g16[j] - g32[j]);
                    norm32 += g32[j] * (double) g32[j];
                    norm16 += g16[j] * (double) g16[j];
                    dot += g16[j] * (double) g32[j];
                }
                double rel = Math.sqrt(diff / norm32);
                double cosine = dot / Math.sqrt(norm32 * norm16);
                assertTrue(rel > 0, name + ": the 16-bit run must differ from float32 somewhere");
                if (name.startsWith("fc3") || name.startsWith("bn2")) {
                    assertTrue(rel < tol, name + ": relative difference " + rel + " (tolerance " + tol + ")");
                } else {
                    assertTrue(cosine > 0.95, name + ": cosine similarity with float32 " + cosine);
                }
            }
            float[] logits = m16.predictLogits(x, rows);
            for (float v : logits) assertEquals(dtype.round(v), v, "logits are stored in " + dtype);
        }
    }

    /** Two epochs on the digits in each 16-bit type: far above chance, loss falling, float16 with scaling. */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"FLOAT16", "BFLOAT16"})
    void shortMixedPrecisionRunLearnsTheDigits(DType dtype) {
        Dataset.Split split = DigitsData.loadSplit(0.2, 42);
        TrainConfig cfg = new TrainConfig(new int[] {64, 64}, true, 2, 32, 0.05f, 0.9f, 0f, 1, 1e-5, 0.1, dtype);
        RunResult r = Trainer.train(be, split, cfg, dtype.cliName(), TrainListener.NONE);
        assertTrue(r.testAccuracy() >= TrainingRunTest.WELL_ABOVE_CHANCE, "test accuracy " + r.testAccuracy());
        assertTrue(r.last().trainLoss() < r.epochs().get(0).trainLoss(), "loss must fall");
        assertEquals(dtype == DType.FLOAT16 ? 65536f : 1f, r.lossScale());
    }
}
