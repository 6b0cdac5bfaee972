package io.github.batchnorm4j.train;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.params.provider.EnumSource;

import io.github.batchnorm4j.DType;

import io.github.batchnorm4j.cuda.CudaDevice;
import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.testing.GpuTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The GPU training path on a real GPU (skipped without one): cuBLAS GEMM against the CPU GEMM, and the same curves
 * as the CPU for a seed.
 */
@GpuTest
class CudaTrainGpuTest {
    @ParameterizedTest(name = "transA={0} transB={1} m={2} n={3} k={4} beta={5}")
    @CsvSource({"false,false,37,19,70,0", "true,false,37,19,70,1", "false,true,64,256,256,0", "true,true,17,33,5,-2"})
    void cublasGemmMatchesTheCpuGemm(boolean ta, boolean tb, int m, int n, int k, float beta) {
        Random rng = new Random(m * 31L + n + k);
        float[] a = new float[m * k], b = new float[k * n], c0 = new float[m * n];
        for (int i = 0; i < a.length; i++) a[i] = (float) rng.nextGaussian();
        for (int i = 0; i < b.length; i++) b[i] = (float) rng.nextGaussian();
        for (int i = 0; i < c0.length; i++) c0[i] = beta == 0f ? Float.NaN : (float) rng.nextGaussian();
        float[] expected = c0.clone();
        CpuGemm.gemm(ta, tb, m, n, k, 0.5f, a, b, beta, expected);
        try (CudaDevice dev = new CudaDevice(0); CublasGemm gemm = new CublasGemm();
             DeviceBuffer da = dev.allocate(4L * a.length); DeviceBuffer db = dev.allocate(4L * b.length);
             DeviceBuffer dc = dev.allocate(4L * c0.length)) {
            dev.copyToDevice(a, 0, da.pointer(), a.length, dev.defaultStream());
            dev.copyToDevice(b, 0, db.pointer(), b.length, dev.defaultStream());
            dev.copyToDevice(c0, 0, dc.pointer(), c0.length, dev.defaultStream());
            gemm.sgemm(ta, tb, m, n, k, 0.5f, da.pointer(), db.pointer(), beta, dc.pointer(), dev.defaultStream());
            float[] c = new float[c0.length];
            dev.copyToHost(dc.pointer(), c, 0, c.length, dev.defaultStream());
            for (int i = 0; i < c.length; i++) {
                assertEquals(expected[i], c[i], 1e-5 * Math.sqrt(k) * (1 + Math.abs(expected[i])), "c[" + i + "]");
            }
        }
    }

    @Test
    void sameSeedSameCurvesOnCpuAndGpu() {
        Dataset.Split split = DigitsData.loadSplit(0.2, 42);
        TrainConfig cfg = TrainConfig.defaults().withEpochs(3);
        RunResult onCpu;
        try (CpuTrainBackend cpu = new CpuTrainBackend()) {
            onCpu = Trainer.train(cpu, split, cfg, "cpu", TrainListener.NONE);
        }
        RunResult onGpu;
        try (TrainBackend gpu = TrainBackends.open("cuda")) {
            onGpu = Trainer.train(gpu, split, cfg, "cuda", TrainListener.NONE);
        }
        for (int e = 0; e < 3; e++) {
            EpochMetrics a = onCpu.epochs().get(e), b = onGpu.epochs().get(e);
            // 3 epochs of 23 steps with a different GEMM summation order: rounding differences grow but stay small.
            assertEquals(a.trainLoss(), b.trainLoss(), 1e-3 * a.trainLoss(), "train loss, epoch " + (e + 1));
            assertEquals(a.testAccuracy(), b.testAccuracy(), 2.0 / split.test().rows() + 1e-12, "test accuracy");
        }
    }

    /**
     * cublasGemmEx (CUBLAS_COMPUTE_32F) on 16-bit A and B against our PTX GEMM of the same types on the same device:
     * float32 sums in different orders, then one rounding of C; one step of C's type apart at most, plus float32 error.
     */
    @ParameterizedTest(name = "{0} C={1} transA={2} transB={3}")
    @CsvSource({"FLOAT16,FLOAT16,false,false", "FLOAT16,FLOAT32,true,false", "BFLOAT16,BFLOAT16,false,true",
            "BFLOAT16,FLOAT32,true,false"})
    void cublasGemmExMatchesOurSixteenBitGemm(DType ab, DType ct, boolean ta, boolean tb) {
        int m = 64, n = 256, k = 256;
        Random rng = new Random(ab.ordinal() * 7L + ct.ordinal());
        float[] a = new float[m * k], b = new float[k * n];
        for (int i = 0; i < a.length; i++) a[i] = (float) rng.nextGaussian();
        for (int i = 0; i < b.length; i++) b[i] = (float) rng.nextGaussian();
        float[][] c = new float[2][];
        for (int run = 0; run < 2; run++) {
            try (TrainBackend be = run == 0 ? new DeviceTrainBackend(new CudaDevice(0), "cuda", null, true)
                    : TrainBackends.open("cuda");
                 Tensor at = be.allocate(ta ? k : m, ta ? m : k, ab); Tensor bt = be.allocate(tb ? n : k, tb ? k : n, ab);
                 Tensor cc = be.allocate(m, n, ct)) {
                be.upload(a, at);
                be.upload(b, bt);
                be.gemm(ta, tb, 0.5f, at, bt, 0f, cc);
                c[run] = new float[m * n];
                be.download(cc, c[run]);
            }
        }
        for (int i = 0; i < c[0].length; i++) {
            double e = c[0][i];
            double step = ct == DType.FLOAT32 ? 0 : Math.ulp((float) e) * Math.scalb(1.0, 24 - ct.precision());
            assertEquals(e, c[1][i], step + 1e-5 * Math.sqrt(k) * (1 + Math.abs(e)), "c[" + i + "]");
        }
    }

    /** train --backend cuda --dtype float16|bfloat16, one epoch: float32's test accuracy within 0.5 points. */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"FLOAT16", "BFLOAT16"})
    void oneEpochInSixteenBitsReachesFloat32sAccuracy(DType dtype) {
        Dataset.Split split = DigitsData.loadSplit(0.2, 42);
        TrainConfig cfg = TrainConfig.defaults().withEpochs(1);
        try (TrainBackend gpu = TrainBackends.open("cuda")) {
            RunResult base = Trainer.train(gpu, split, cfg, "float32", TrainListener.NONE);
            RunResult r = Trainer.train(gpu, split, cfg.withDtype(dtype), dtype.toString(), TrainListener.NONE);
            assertTrue(r.testAccuracy() >= base.testAccuracy() - 0.005,
                    dtype + ": " + r.testAccuracy() + " against float32's " + base.testAccuracy());
        }
    }
}
