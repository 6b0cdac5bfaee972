package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DeviceModule;
import io.github.batchnorm4j.gpu.Dim3;
import io.github.batchnorm4j.gpu.KernelArgs;
import io.github.batchnorm4j.gpu.TrafficMetrics;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Our own CUDA kernels (src/test/cuda/correct_kernels.cu, nvcc -O3 PTX) on the emulator: results must equal, bit for
 * bit, what Java computes by the same order of operations, or exactly for integer results.
 */
class CorrectKernelsTest {
    private static final String PTX = TestPtx.load("correct_kernels.ptx");

    /** The kernel's summation order: per thread a strided sum, then shfl down 16..1, warp sums by shfl xor, blocks in order. */
    static float referenceReduce(float[] x, int grid, int block) {
        int stride = grid * block;
        float[] partial = new float[grid];
        for (int b = 0; b < grid; b++) {
            float[] thread = new float[block];
            for (int t = 0; t < block; t++) {
                float s = 0f;
                for (long i = (long) b * block + t; i < x.length; i += stride) s += x[(int) i];
                thread[t] = s;
            }
            int warps = (block + 31) / 32;
            float[] warpSums = new float[32];
            Arrays.fill(warpSums, 0f);
            for (int w = 0; w < warps; w++) {
                float[] v = Arrays.copyOfRange(thread, w * 32, w * 32 + 32);
                for (int o = 16; o > 0; o >>= 1) {
                    float[] nv = v.clone();
                    for (int l = 0; l < 32; l++) nv[l] = v[l] + (l + o < 32 ? v[l + o] : v[l]);
                    v = nv;
                }
                warpSums[w] = v[0];
            }
            float[] v = new float[32];
            for (int l = 0; l < 32; l++) v[l] = l < warps ? warpSums[l] : 0f;
            for (int o = 16; o > 0; o >>= 1) {
                float[] nv = v.clone();
                for (int l = 0; l < 32; l++) nv[l] = v[l] + v[l ^ o];
                v = nv;
            }
            partial[b] = v[0];
        }
        float t = 0f;
        for (int b = 0; b < grid; b++) t += partial[b];
        return t;
    }

    @ParameterizedTest
    @ValueSource(longs = {1, 2, 3})
    void reduceSumMatchesJavaBitForBitInAnyBlockOrder(long seed) {
        Random rnd = new Random(seed);
        int n = 100_003, grid = 13, block = 256;
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) rnd.nextGaussian() + 0.25f;
        try (EmulatedDevice dev = new EmulatedDevice(EmulatorOptions.defaults().withBlockOrderSeed(seed));
             DeviceBuffer dx = dev.allocate(4L * n); DeviceBuffer partial = dev.allocate(4L * grid);
             DeviceBuffer counter = dev.allocate(4); DeviceBuffer out = dev.allocate(4)) {
            DeviceModule m = dev.loadModule("correct_kernels.ptx", PTX);
            dev.copyToDevice(x, 0, dx.pointer(), n, dev.defaultStream());
            dev.memset(counter.pointer(), (byte) 0, 4, dev.defaultStream());
            dev.copyToDevice(new float[]{Float.NaN}, 0, out.pointer(), 1, dev.defaultStream());
            dev.launch(m.kernel("reduce_sum"), Dim3.of(grid), Dim3.of(block), 0, dev.defaultStream(),
                    new KernelArgs().ptr(dx).i64(n).ptr(partial).ptr(counter).ptr(out));
            float[] got = new float[1];
            dev.copyToHost(out.pointer(), got, 0, 1, dev.defaultStream());
            assertEquals(Float.floatToIntBits(referenceReduce(x, grid, block)), Float.floatToIntBits(got[0]),
                    "sum " + got[0]);
            int[] c = new int[1];
            dev.copyToHost(counter.pointer(), c, 0, 1, dev.defaultStream());
            assertEquals(0, c[0], "the last block resets the counter");
            TrafficMetrics t = dev.metrics();
            assertEquals(1, t.launches());
            // x read once, the partials read by the last block, one atomic (read + write) per block
            assertEquals(4L * n + 4L * grid + 4L * grid, t.globalBytesLoaded());
            assertEquals(4L * grid + 4 + 4 + 4L * grid, t.globalBytesStored());
            assertEquals(grid, t.atomics());
            assertTrue(t.threadInstructions() > n, "instructions counted: " + t.threadInstructions());
        }
    }

    @Test
    void histogramCountsExactly() {
        Random rnd = new Random(7);
        int n = 50_000, nbins = 37, grid = 9, block = 128;
        int[] v = new int[n];
        for (int i = 0; i < n; i++) v[i] = rnd.nextInt(2001) - 1000;
        int[] expect = new int[nbins];
        for (int x : v) expect[Math.floorMod(x, nbins)]++;
        try (EmulatedDevice dev = new EmulatedDevice();
             DeviceBuffer dv = dev.allocate(4L * n); DeviceBuffer bins = dev.allocate(4L * nbins)) {
            DeviceModule m = dev.loadModule("correct_kernels.ptx", PTX);
            dev.copyToDevice(v, 0, dv.pointer(), n, dev.defaultStream());
            dev.memset(bins.pointer(), (byte) 0, 4L * nbins, dev.defaultStream());
            dev.launch(m.kernel("histogram"), Dim3.of(grid), Dim3.of(block), 4 * nbins, dev.defaultStream(),
                    new KernelArgs().ptr(dv).i32(n).i32(nbins).ptr(bins));
            int[] got = new int[nbins];
            dev.copyToHost(bins.pointer(), got, 0, nbins, dev.defaultStream());
            assertArrayEquals(expect, got);
            assertEquals((long) n + (long) grid * nbins, dev.metrics().atomics());
        }
    }

    @Test
    void mathMixMatchesJava() {
        Random rnd = new Random(11);
        int n = 256;
        float eps = 1e-3f;
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) (rnd.nextGaussian() * 3);
        try (EmulatedDevice dev = new EmulatedDevice();
             DeviceBuffer dx = dev.allocate(4L * n); DeviceBuffer dy = dev.allocate(4L * n);
             DeviceBuffer dyd = dev.allocate(8L * n)) {
            DeviceModule m = dev.loadModule("correct_kernels.ptx", PTX);
            dev.copyToDevice(x, 0, dx.pointer(), n, dev.defaultStream());
            dev.launch(m.kernel("mathmix"), Dim3.of(n / 64), Dim3.of(64), 0, dev.defaultStream(),
                    new KernelArgs().ptr(dx).ptr(dy).ptr(dyd).i32(n).f32(eps));
            float[] y = new float[n];
            dev.copyToHost(dy.pointer(), y, 0, n, dev.defaultStream());
            float[] yd = new float[2 * n];
            dev.copyToHost(dyd.pointer(), yd, 0, 2 * n, dev.defaultStream());
            for (int i = 0; i < n; i++) {
                float v = x[i];
                int lane = i % 32, warp0 = i - lane;
                float a = (float) (1.0 / Math.sqrt(Math.abs(v) + eps));
                float b = v / (1.0f + Math.abs(v));
                float c = (float) Math.pow(2, v * 0.1f * 1.44269502f) + (float) Math.sqrt(Math.abs(v)) + Math.max(v, 0f);
                float sh = lane == 0 ? v : x[i - 1];
                float sx = x[warp0 + ((lane * 7) & 31)];
                int ball = 0;
                for (int l = 0; l < 32; l++) if (x[warp0 + l] > 0f) ball |= 1 << l;
                float expect = Math.fma(b, c, a) + sh - sx + Integer.bitCount(ball);
                assertEquals(expect, y[i], Math.ulp(expect) * 4, "y[" + i + "]");
                double d = v;
                double ed = d / 3.0 + Math.sqrt(Math.abs(d)) + (double) (long) (v * 1000.f) + (double) Math.round(Math.rint(v * 10.f));
                long bits = (Float.floatToRawIntBits(yd[2 * i]) & 0xFFFFFFFFL) | ((long) Float.floatToRawIntBits(yd[2 * i + 1]) << 32);
                assertEquals(ed, Double.longBitsToDouble(bits), 0.0, "yd[" + i + "]");
            }
        }
    }

    @Test
    void nonInlinedDeviceFunctionsAreCalledAndReturn() {
        Random rnd = new Random(13);
        int n = 128;
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) rnd.nextGaussian();
        try (EmulatedDevice dev = new EmulatedDevice(); DeviceBuffer dx = dev.allocate(4L * n);
             DeviceBuffer dy = dev.allocate(8L * n)) {
            DeviceModule m = dev.loadModule("call_kernels.ptx", TestPtx.load("call_kernels.ptx"));
            dev.copyToDevice(x, 0, dx.pointer(), n, dev.defaultStream());
            dev.launch(m.kernel("calls"), Dim3.of(2), Dim3.of(64), 0, dev.defaultStream(),
                    new KernelArgs().ptr(dx).ptr(dy));
            float[] y = new float[2 * n];
            dev.copyToHost(dy.pointer(), y, 0, 2 * n, dev.defaultStream());
            for (int i = 0; i < n; i++) {
                int warp0 = i - i % 32, lane = i % 32;
                float[] v = Arrays.copyOfRange(x, warp0, warp0 + 32);
                for (int o = 16; o > 0; o >>= 1) {
                    float[] nv = new float[32];
                    for (int l = 0; l < 32; l++) nv[l] = v[l] + v[l ^ o];
                    v = nv;
                }
                int tid = i % 64;
                float t = tid % 3 == 0 ? Math.fma(x[i], 3f, 0.5f) : x[i]; // nvcc contracts v * k + 0.5f to fma
                assertEquals(v[lane], y[2 * i], "warp_sum " + i);
                assertEquals(t, y[2 * i + 1], "scale " + i);
            }
        }
    }

    @Test
    void localArraysOfCallerAndCalleeAreSeparate() {
        Random rnd = new Random(17);
        int n = 96;
        float[] x = new float[n];
        int[] idx = new int[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) rnd.nextGaussian();
            idx[i] = rnd.nextInt(64);
        }
        try (EmulatedDevice dev = new EmulatedDevice(); DeviceBuffer dx = dev.allocate(4L * n);
             DeviceBuffer di = dev.allocate(4L * n); DeviceBuffer dy = dev.allocate(4L * n)) {
            DeviceModule m = dev.loadModule("call_kernels.ptx", TestPtx.load("call_kernels.ptx"));
            dev.copyToDevice(x, 0, dx.pointer(), n, dev.defaultStream());
            dev.copyToDevice(idx, 0, di.pointer(), n, dev.defaultStream());
            dev.launch(m.kernel("calls_local"), Dim3.of(3), Dim3.of(32), 0, dev.defaultStream(),
                    new KernelArgs().ptr(dx).ptr(di).ptr(dy));
            float[] y = new float[n];
            dev.copyToHost(dy.pointer(), y, 0, n, dev.defaultStream());
            for (int i = 0; i < n; i++) {
                float a = x[i] + (float) ((idx[i] >> 3) & 7);
                float p = x[i] * (float) ((idx[i] & 7) + 1);
                assertEquals(a + p, y[i], "y[" + i + "]");
            }
        }
    }

    /** The corrected warp-synchronous shared-memory reduction (__syncwarp between steps) passes the race check. */
    @Test
    void warpReductionWithSyncwarpIsRaceFreeAndExact() {
        int block = 96, grid = 4;
        float[] x = new float[block * grid];
        Random r = new Random(11);
        for (int i = 0; i < x.length; i++) x[i] = r.nextFloat() - 0.5f;
        int warps = grid * block / 32;
        try (EmulatedDevice dev = new EmulatedDevice(); DeviceBuffer dx = dev.allocate(4L * x.length);
             DeviceBuffer out = dev.allocate(4L * warps)) {
            DeviceModule m = dev.loadModule("correct_kernels.ptx", PTX);
            dev.copyToDevice(x, 0, dx.pointer(), x.length, dev.defaultStream());
            dev.launch(m.kernel("warp_reduce_syncwarp"), Dim3.of(grid), Dim3.of(block), 0, dev.defaultStream(),
                    new KernelArgs().ptr(dx).ptr(out));
            float[] got = new float[warps];
            dev.copyToHost(out.pointer(), got, 0, warps, dev.defaultStream());
            for (int w = 0; w < warps; w++) {
                float[] v = Arrays.copyOfRange(x, w * 32, w * 32 + 32);
                for (int o = 16; o > 0; o >>= 1) {
                    for (int l = 0; l < o; l++) v[l] += v[l + o];
                }
                assertEquals(v[0], got[w], "warp " + w);
            }
        }
    }
}
