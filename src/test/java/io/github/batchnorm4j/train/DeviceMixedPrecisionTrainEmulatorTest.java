package io.github.batchnorm4j.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Mixed-precision training on the device path without a GPU: {@link DeviceTrainBackend}'s float16/bfloat16 tensors,
 * the 16-bit kernels of {@code train_kernels.cu} and the 16-bit device-resident batch norm on the PTX emulator, against
 * {@link CpuTrainBackend} on the same 16-bit values (which rounds at the same places), and one epoch of the digits in
 * each type against float32.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class DeviceMixedPrecisionTrainEmulatorTest {
    private EmulatedDevice device;
    private DeviceTrainBackend gpu;
    private CpuTrainBackend cpu;

    @BeforeAll
    void open() {
        device = new EmulatedDevice();
        gpu = new DeviceTrainBackend(device, "emulator");
        cpu = new CpuTrainBackend();
    }

    @AfterAll
    void close() {
        gpu.close();
        cpu.close();
        device.close();
    }

    private static float[] random(Random r, int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (r.nextGaussian() * scale);
        return a;
    }

    private static float[] values(TrainBackend be, Tensor t) {
        float[] v = new float[t.size()];
        java.util.Arrays.fill(v, Float.NaN);
        be.download(t, v);
        return v;
    }

    /** A tensor of {@code be} holding {@code v} (rounded to dtype). */
    private static Tensor tensor(TrainBackend be, int rows, int cols, DType dtype, float[] v) {
        Tensor t = be.allocate(rows, cols, dtype);
        be.upload(v, t);
        return t;
    }

    /** Bit for bit, except that +0 and -0 are one value (Java's Math.max(-0, 0) is +0, the kernel keeps -0). */
    private static void assertSameValues(String what, float[] expected, float[] actual) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            boolean same = Float.floatToIntBits(expected[i]) == Float.floatToIntBits(actual[i])
                    || (expected[i] == 0f && actual[i] == 0f);
            if (!same) fail(what + "[" + i + "]: expected " + expected[i] + ", got " + actual[i]);
        }
    }

    /** Distance between adjacent values of {@code dtype} at |v| (its ulp; the smallest subnormal step near 0). */
    private static double ulp(DType dtype, double v) {
        double a = Math.max(Math.abs(v), dtype == DType.FLOAT16 ? 0x1p-14 : 0x1p-126);
        return Math.scalb(1.0, Math.getExponent(a) - (dtype.precision() - 1));
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"FLOAT16", "BFLOAT16"})
    void elementwiseOpsMatchTheCpuBitForBit(DType dtype) {
        Random r = new Random(11 + dtype.ordinal());
        int rows = 37, cols = 19; // an odd element count: the 2-byte copies' odd tail
        float[] x = random(r, rows * cols, 3), bias = random(r, cols, 1), dy = random(r, rows * cols, 1e-3);
        x[5] = Float.NaN;
        x[6] = 70000f; // float16: rounds to Inf
        Tensor[] g = {tensor(gpu, rows, cols, dtype, x), gpu.allocate(1, cols), gpu.allocate(rows, cols, dtype),
                tensor(gpu, rows, cols, dtype, dy), gpu.allocate(rows, cols, dtype), gpu.allocate(1, cols)};
        Tensor[] c = {tensor(cpu, rows, cols, dtype, x), cpu.allocate(1, cols), cpu.allocate(rows, cols, dtype),
                tensor(cpu, rows, cols, dtype, dy), cpu.allocate(rows, cols, dtype), cpu.allocate(1, cols)};
        try {
            assertSameValues("upload", values(cpu, c[0]), values(gpu, g[0]));
            for (int i = 0; i < x.length; i++) {
                float v = values(gpu, g[0])[i];
                assertEquals(Float.floatToIntBits(dtype.round(x[i])), Float.floatToIntBits(v), "upload rounds x[" + i + "] once");
            }
            gpu.upload(bias, g[1]);
            cpu.upload(bias, c[1]);
            gpu.addBias(g[0], g[1]);
            cpu.addBias(c[0], c[1]);
            assertSameValues("addBias", values(cpu, c[0]), values(gpu, g[0]));
            gpu.reluForward(g[0], g[2]);
            cpu.reluForward(c[0], c[2]);
            assertSameValues("reluForward", values(cpu, c[2]), values(gpu, g[2]));
            gpu.reluBackward(g[2], g[3], g[4]);
            cpu.reluBackward(c[2], c[3], c[4]);
            assertSameValues("reluBackward", values(cpu, c[4]), values(gpu, g[4]));
            gpu.reluBackward(g[2], g[3], g[3]); // in place
            assertSameValues("reluBackward in place", values(cpu, c[4]), values(gpu, g[3]));
            gpu.sumRows(g[4], g[5]);
            cpu.sumRows(c[4], c[5]);
            assertSameValues("sumRows", values(cpu, c[5]), values(gpu, g[5]));
        } finally {
            for (Tensor t : g) t.close();
            for (Tensor t : c) t.close();
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"FLOAT16", "BFLOAT16"})
    void castSoftmaxAndUnscaleMatchTheCpu(DType dtype) {
        Random r = new Random(23 + dtype.ordinal());
        int rows = 21, classes = 10;
        float[] w = random(r, 33, 1), z = random(r, rows * classes, 4);
        int[] labels = new int[rows];
        for (int i = 0; i < rows; i++) labels[i] = r.nextInt(classes);
        try (Tensor w32g = tensor(gpu, 3, 11, DType.FLOAT32, w); Tensor w16g = gpu.allocate(3, 11, dtype);
             Tensor zg = tensor(gpu, rows, classes, dtype, z); Tensor dzg = gpu.allocate(rows, classes, dtype);
             Tensor w32c = tensor(cpu, 3, 11, DType.FLOAT32, w); Tensor w16c = cpu.allocate(3, 11, dtype);
             Tensor zc = tensor(cpu, rows, classes, dtype, z); Tensor dzc = cpu.allocate(rows, classes, dtype)) {
            gpu.cast(w32g, w16g);
            cpu.cast(w32c, w16c);
            assertSameValues("cast", values(cpu, w16c), values(gpu, w16g));
            // Loss scale 1024 (float16's GradScaler) and a global batch of 64 rows of which these are 21.
            float scale = 1024f;
            double lossGpu = gpu.softmaxCrossEntropy(zg, labels, dzg, scale, 64);
            double lossCpu = cpu.softmaxCrossEntropy(zc, labels, dzc, scale, 64);
            assertEquals(lossCpu, lossGpu, 1e-6 * lossCpu, "loss");
            float[] e = values(cpu, dzc), a = values(gpu, dzg);
            for (int i = 0; i < e.length; i++) {
                // exp and log in double on both sides; the device's may differ in the last double bit, which can move
                // a float that lies on a 16-bit tie by one 16-bit step, never more.
                assertEquals(e[i], a[i], ulp(dtype, e[i]), "dlogits[" + i + "]");
                assertEquals(dtype.round(a[i]), a[i], "dlogits[" + i + "] is a " + dtype + " value");
            }
            assertEquals(cpu.countCorrect(zc, labels), gpu.countCorrect(zg, labels), "countCorrect");
            assertThrows(IllegalArgumentException.class, () -> gpu.softmaxCrossEntropy(w32g, new int[3], w32g, 2f, 3),
                    "a loss scale on float32 logits");
        }
        float[] g1 = random(r, 300, 1e3), g2 = random(r, 7, 1e3);
        try (Tensor a = tensor(gpu, 30, 10, DType.FLOAT32, g1); Tensor b = tensor(gpu, 1, 7, DType.FLOAT32, g2);
             Tensor ac = tensor(cpu, 30, 10, DType.FLOAT32, g1); Tensor bc = tensor(cpu, 1, 7, DType.FLOAT32, g2)) {
            assertTrue(gpu.unscale(List.of(a, b), 1f / 1024));
            assertTrue(cpu.unscale(List.of(ac, bc), 1f / 1024));
            assertSameValues("unscale", values(cpu, ac), values(gpu, a));
            assertSameValues("unscale", values(cpu, bc), values(gpu, b));
            g2[6] = Float.POSITIVE_INFINITY;
            gpu.upload(g2, b);
            assertFalse(gpu.unscale(List.of(a, b), 0.5f), "an Inf in the last tensor");
            g1[0] = Float.NaN;
            gpu.upload(g1, a);
            g2[6] = 1f;
            gpu.upload(g2, b);
            assertFalse(gpu.unscale(List.of(a, b), 0.5f), "a NaN in the first tensor");
            g1[0] = 1f;
            gpu.upload(g1, a);
            assertTrue(gpu.unscale(List.of(a, b), 0.5f), "the flag is cleared for each call");
        }
    }

    /**
     * A 16-bit C with beta ≠ 0 is read and written: there n is even, because the emulator's race checker tracks 2-byte
     * stores per 4-byte word (MemoryOrder) and would take the last element of a row, stored by one block, and the
     * first of the next row, read by another, for shared data when n is odd (a real GPU stores 2 bytes).
     */
    @ParameterizedTest(name = "{0} C={1} transA={2} transB={3} beta={4} n={5}")
    @CsvSource({"FLOAT16,FLOAT16,false,false,0,19", "FLOAT16,FLOAT32,true,false,0,19", "FLOAT16,FLOAT16,false,true,0,19",
            "FLOAT16,FLOAT16,true,true,0.5,20", "BFLOAT16,BFLOAT16,false,false,0,19", "BFLOAT16,FLOAT32,true,false,0,19",
            "BFLOAT16,BFLOAT16,false,true,-2,18", "BFLOAT16,FLOAT32,true,true,1,19"})
    void gemmMatchesTheCpuGemm(DType ab, DType ct, boolean ta, boolean tb, float beta, int n) {
        int m = 37, k = 70;
        Random r = new Random(m * 31L + ab.ordinal() * 7 + ct.ordinal());
        float[] a = random(r, m * k, 1), b = random(r, k * n, 1), c0 = random(r, m * n, 1);
        float[] expected = gemm(cpu, ab, ct, ta, tb, m, n, k, a, b, beta, c0);
        float[] actual = gemm(gpu, ab, ct, ta, tb, m, n, k, a, b, beta, c0);
        for (int i = 0; i < expected.length; i++) {
            // Float32 sums in different orders (tiles of fma against axpy), each within ~k·6e-8 of the exact sum; a
            // 16-bit C rounds each once, so two results may sit on either side of a 16-bit tie: one step apart.
            double tol = 1e-5 * Math.sqrt(k) * (1 + Math.abs(expected[i])) + (ct == DType.FLOAT32 ? 0 : ulp(ct, expected[i]));
            assertEquals(expected[i], actual[i], tol, "c[" + i + "]");
            if (ct != DType.FLOAT32) assertEquals(ct.round(actual[i]), actual[i], "c[" + i + "] is a " + ct + " value");
        }
    }

    private static float[] gemm(TrainBackend be, DType ab, DType ct, boolean ta, boolean tb, int m, int n, int k,
                                float[] a, float[] b, float beta, float[] c0) {
        try (Tensor at = tensor(be, ta ? k : m, ta ? m : k, ab, a); Tensor bt = tensor(be, tb ? n : k, tb ? k : n, ab, b);
             Tensor c = tensor(be, m, n, ct, beta == 0f ? nans(m * n) : c0)) {
            be.gemm(ta, tb, 0.5f, at, bt, beta, c);
            return values(be, c);
        }
    }

    private static float[] nans(int n) {
        float[] v = new float[n];
        java.util.Arrays.fill(v, Float.NaN);
        return v;
    }

    @Test
    void mixedTypesAreRefusedWithTheArgumentNamed() {
        try (Tensor a16 = gpu.allocate(4, 3, DType.FLOAT16); Tensor b16 = gpu.allocate(3, 2, DType.BFLOAT16);
             Tensor b = gpu.allocate(3, 2, DType.FLOAT16); Tensor cbf = gpu.allocate(4, 2, DType.BFLOAT16);
             Tensor h32 = gpu.allocate(4, 3)) {
            assertTrue(assertThrows(IllegalArgumentException.class, () -> gpu.gemm(false, false, 1f, a16, b16, 0f, cbf))
                    .getMessage().startsWith("b: expected a float16"));
            assertTrue(assertThrows(IllegalArgumentException.class, () -> gpu.gemm(false, false, 1f, a16, b, 0f, cbf))
                    .getMessage().startsWith("c: expected a float16 or float32"));
            assertTrue(assertThrows(IllegalArgumentException.class, () -> gpu.reluForward(a16, h32))
                    .getMessage().startsWith("y: expected a float16"));
            assertTrue(assertThrows(IllegalArgumentException.class, () -> gpu.cast(a16, h32))
                    .getMessage().startsWith("dst: expected a float16"));
            try (BatchNormUnit bn = gpu.batchNorm(3, 1e-5, 0.1, DType.BFLOAT16)) {
                assertTrue(assertThrows(IllegalArgumentException.class, () -> bn.forwardRelu(a16, a16, true))
                        .getMessage().startsWith("x: expected a bfloat16"));
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"FLOAT16", "BFLOAT16"})
    void batchNormUnitMatchesTheCpuUnit(DType dtype) {
        Random r = new Random(5 + dtype.ordinal());
        int rows = 48, ch = 24;
        float[] x = random(r, rows * ch, 2), dh = random(r, rows * ch, 1e-2);
        for (int i = 0; i < x.length; i++) x[i] += 3f * (i % ch) - 20f; // per-channel means of either sign
        try (BatchNormUnit bg = gpu.batchNorm(ch, 1e-5, 0.1, dtype); BatchNormUnit bc = cpu.batchNorm(ch, 1e-5, 0.1, dtype);
             Tensor xg = tensor(gpu, rows, ch, dtype, x); Tensor hg = gpu.allocate(rows, ch, dtype);
             Tensor dhg = tensor(gpu, rows, ch, dtype, dh); Tensor dxg = gpu.allocate(rows, ch, dtype);
             Tensor xc = tensor(cpu, rows, ch, dtype, x); Tensor hc = cpu.allocate(rows, ch, dtype);
             Tensor dhc = tensor(cpu, rows, ch, dtype, dh); Tensor dxc = cpu.allocate(rows, ch, dtype)) {
            bg.forwardRelu(xg, hg, true);
            bc.forwardRelu(xc, hc, true);
            // Both round a float32 y once: within one step of the type of each other, and 16-bit values.
            float[] he = values(cpu, hc), ha = values(gpu, hg);
            for (int i = 0; i < he.length; i++) {
                assertEquals(he[i], ha[i], ulp(dtype, he[i]) + 1e-5, "h[" + i + "]");
                assertEquals(dtype.round(ha[i]), ha[i], "h[" + i + "] is a " + dtype + " value");
            }
            bg.backwardRelu(xg, dhg, dxg);
            bc.backwardRelu(xc, dhc, dxc);
            float[] de = values(cpu, dxc), da = values(gpu, dxg);
            double scale = 0;
            for (float v : de) scale = Math.max(scale, Math.abs(v));
            for (int i = 0; i < de.length; i++) {
                assertEquals(de[i], da[i], ulp(dtype, de[i]) + 1e-4 * scale, "dx[" + i + "]");
            }
            for (int p = 0; p < 2; p++) { // gamma, beta gradients: float32
                float[] e = values(cpu, p == 0 ? bc.gammaGrad() : bc.betaGrad());
                float[] a = values(gpu, p == 0 ? bg.gammaGrad() : bg.betaGrad());
                for (int j = 0; j < ch; j++) assertEquals(e[j], a[j], 1e-4 * (1 + Math.abs(e[j])), "grad " + p + "[" + j + "]");
            }
        }
    }

    /**
     * {@code train --backend emulator --dtype float16|bfloat16} in small: one epoch of the whole digits training split
     * (23 steps of 64) through a 16-16 network with batch norm, in each type on the emulated device path. The 16-bit
     * runs reach float32's test accuracy within 0.5 percentage points (the bar; docs/mixed-precision.md quotes
     * the full-size runs) and its losses within a few percent, and they do run in 16 bits (the losses differ).
     */
    @Test
    void oneEpochOnTheEmulatorInEachTypeReachesFloat32sAccuracy() {
        Dataset.Split split = DigitsData.loadSplit(0.2, 42);
        TrainConfig f32 = new TrainConfig(new int[] {16, 16}, true, 1, 64, 0.05f, 0.9f, 0f, 42L, 1e-5, 0.1);
        RunResult base = Trainer.train(gpu, split, f32, "float32", TrainListener.NONE);
        for (DType dtype : new DType[] {DType.FLOAT16, DType.BFLOAT16}) {
            RunResult r = Trainer.train(gpu, split, f32.withDtype(dtype), dtype.toString(), TrainListener.NONE);
            EpochMetrics a = base.last(), b = r.last();
            String what = dtype + " against float32 (" + b.testAccuracy() + " vs " + a.testAccuracy() + ")";
            assertTrue(b.testAccuracy() >= a.testAccuracy() - 0.005, what + ": test accuracy");
            assertEquals(a.trainLoss(), b.trainLoss(), 0.01 * a.trainLoss(), what + ": train loss");
            assertEquals(a.testLoss(), b.testLoss(), 0.02 * a.testLoss(), what + ": test loss");
            assertTrue(a.trainLoss() != b.trainLoss(), what + ": the activations were rounded to 16 bits");
            assertEquals(0, r.skippedSteps(), what + ": no step skipped");
            assertEquals(dtype == DType.FLOAT16 ? 65536f : 1f, r.lossScale(), what + ": final loss scale");
        }
        assertTrue(base.testAccuracy() > 0.6, "one epoch learns: " + base.testAccuracy());
    }
}
