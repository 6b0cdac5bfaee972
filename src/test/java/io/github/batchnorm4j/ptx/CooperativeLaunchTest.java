package io.github.batchnorm4j.ptx;

import static io.github.batchnorm4j.testing.Messages.assertMentions;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DeviceException;
import io.github.batchnorm4j.gpu.DeviceModule;
import io.github.batchnorm4j.gpu.Dim3;
import io.github.batchnorm4j.gpu.Kernel;
import io.github.batchnorm4j.gpu.KernelArgs;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Cooperative launches on the emulator (src/test/cuda/cooperative_kernels.cu): blocks that wait for each other at the
 * grid barrier of batchnorm_common.cuh run interleaved and give the same bits in any block order; the barrier words
 * are zero afterwards; a grid larger than can be co-resident is refused with kernel, grid and limit; a non-cooperative
 * launch of the same kernel is reported as a hang, never passed; the ordering check sees a barrier whose fence is
 * missing, across interleaved blocks.
 */
class CooperativeLaunchTest {
    private static final String PTX = TestPtx.load("cooperative_kernels.ptx");

    /** The kernel's own order: per block a strided thread sum, a halving tree over 256 threads; blocks in order. */
    static float expectedTotal(float[] x, int grid) {
        int n = x.length;
        int per = (n + grid - 1) / grid;
        float total = 0f;
        for (int b = 0; b < grid; b++) {
            float[] t = new float[256];
            for (int tid = 0; tid < 256; tid++) {
                float s = 0f;
                for (int i = b * per + tid; i < Math.min(b * per + per, n); i += 256) s += x[i];
                t[tid] = s;
            }
            for (int off = 128; off > 0; off >>= 1) for (int k = 0; k < off; k++) t[k] += t[k + off];
            total += t[0];
        }
        return total;
    }

    private static float[] input(int n, long seed) {
        Random r = new Random(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) r.nextGaussian() + 0.5f;
        return x;
    }

    /** Runs grid_total (cooperatively or not) and returns out[]. */
    private static float[] run(EmulatedDevice dev, String kernel, float[] x, int grid, boolean cooperative) {
        try (DeviceBuffer dx = dev.allocate(4L * x.length); DeviceBuffer partials = dev.allocate(4L * grid);
             DeviceBuffer bar = dev.allocate(8); DeviceBuffer out = dev.allocate(4L * grid)) {
            DeviceModule m = dev.loadModule("cooperative_kernels.ptx", PTX);
            Kernel k = m.kernel(kernel);
            dev.copyToDevice(x, 0, dx.pointer(), x.length, dev.defaultStream());
            dev.memset(bar.pointer(), (byte) 0, 8, dev.defaultStream());
            dev.declareSelfResetting(bar.pointer(), 8);
            KernelArgs a = new KernelArgs().ptr(dx.pointer()).i32(x.length).ptr(partials.pointer()).ptr(bar.pointer())
                    .ptr(out.pointer());
            if (cooperative) dev.launchCooperative(k, Dim3.of(grid), Dim3.of(256), 0, dev.defaultStream(), a);
            else dev.launch(k, Dim3.of(grid), Dim3.of(256), 0, dev.defaultStream(), a);
            float[] o = new float[grid];
            dev.copyToHost(out.pointer(), o, 0, grid, dev.defaultStream());
            int[] words = new int[2];
            dev.copyToHost(bar.pointer(), words, 0, 2, dev.defaultStream());
            assertEquals(0, words[0] | words[1], "the barrier words are zero again");
            m.close();
            return o;
        }
    }

    @ParameterizedTest
    @ValueSource(longs = {1, 2, 3, 4})
    void blocksMeetAtTheGridBarrierAndAgreeBitForBitInAnyOrder(long seed) {
        float[] x = input(40_000, 7);
        int grid = 24;
        float want = expectedTotal(x, grid);
        EmulatorOptions o = EmulatorOptions.defaults().withBlockOrderSeed(seed).withMultiprocessorCount(4)
                .withMaxBlockInstructions(20_000_000);   // a barrier that never opens fails fast
        try (EmulatedDevice dev = new EmulatedDevice(o)) {
            assertTrue(dev.supportsCooperativeLaunch());
            float[] out = run(dev, "grid_total", x, grid, true);
            for (int b = 0; b < grid; b++) {
                assertEquals(Float.floatToIntBits(want), Float.floatToIntBits(out[b]), "block " + b + ": " + out[b]);
            }
        }
    }

    @Test
    void aGridLargerThanCanBeResidentIsRefusedNamingKernelGridAndLimit() {
        EmulatorOptions o = EmulatorOptions.defaults().withMultiprocessorCount(2);
        try (EmulatedDevice dev = new EmulatedDevice(o)) {
            DeviceModule m = dev.loadModule("cooperative_kernels.ptx", PTX);
            Kernel k = m.kernel("grid_total_pressure");
            int perSm = dev.maxActiveBlocksPerMultiprocessor(k, 256, 0);
            assertTrue(perSm >= 1 && perSm < 8, "many registers: few resident blocks, got " + perSm);
            int limit = perSm * 2;
            float[] x = input(limit * 64 * 256, 3);
            // The largest co-resident grid runs.
            float[] out = run(dev, "grid_total_pressure", x, limit, true);
            assertEquals(out[0], out[limit - 1]);
            // One block more is refused before anything runs.
            try (DeviceBuffer dx = dev.allocate(4L * x.length); DeviceBuffer p = dev.allocate(4L * (limit + 1));
                 DeviceBuffer bar = dev.allocate(8); DeviceBuffer ob = dev.allocate(4L * (limit + 1))) {
                KernelArgs a = new KernelArgs().ptr(dx.pointer()).i32(x.length).ptr(p.pointer()).ptr(bar.pointer())
                        .ptr(ob.pointer());
                DeviceException e = assertThrows(DeviceException.class, () -> dev.launchCooperative(k,
                        Dim3.of(limit + 1), Dim3.of(256), 0, dev.defaultStream(), a));
                assertMentions(e, "cooperative launch of grid_total_pressure", "grid (" + (limit + 1) + ",1,1)",
                        (limit + 1) + " blocks cannot all be resident at once", "at most " + perSm + " blocks of 256"
                        + " threads per SM", "x 2 SMs = " + limit, "COOPERATIVE_LAUNCH_TOO_LARGE");
            }
            m.close();
        }
    }

    @Test
    void theSameKernelLaunchedNonCooperativelyIsReportedAsAHang() {
        EmulatorOptions o = EmulatorOptions.defaults().withMaxBlockInstructions(2_000_000);
        try (EmulatedDevice dev = new EmulatedDevice(o)) {
            DeviceException e = assertThrows(DeviceException.class,
                    () -> run(dev, "grid_total", input(4096, 5), 4, false));
            assertMentions(e, "kernel grid_total", "block executed more than 2000000 thread-instructions",
                    "spin-wait on another block", "only a cooperative launch runs them together");
        }
    }

    @Test
    void aBarrierWithoutTheWritersFenceFailsTheOrderingCheckAcrossInterleavedBlocks() {
        // Delete the first membar.gl of grid_total: the partial stores are no longer published before the arrival.
        int at = PTX.indexOf("membar.gl;");
        String broken = PTX.substring(0, at) + PTX.substring(at + "membar.gl;".length());
        try (EmulatedDevice dev = new EmulatedDevice(EmulatorOptions.defaults().withMultiprocessorCount(4))) {
            DeviceModule m = dev.loadModule("cooperative_kernels.ptx", broken);
            float[] x = input(8000, 9);
            try (DeviceBuffer dx = dev.allocate(4L * x.length); DeviceBuffer p = dev.allocate(4L * 8);
                 DeviceBuffer bar = dev.allocate(8); DeviceBuffer ob = dev.allocate(4L * 8)) {
                dev.copyToDevice(x, 0, dx.pointer(), x.length, dev.defaultStream());
                dev.memset(bar.pointer(), (byte) 0, 8, dev.defaultStream());
                KernelArgs a = new KernelArgs().ptr(dx.pointer()).i32(x.length).ptr(p.pointer()).ptr(bar.pointer())
                        .ptr(ob.pointer());
                DeviceException e = assertThrows(DeviceException.class, () -> dev.launchCooperative(
                        m.kernel("grid_total"), Dim3.of(8), Dim3.of(256), 0, dev.defaultStream(), a));
                assertMentions(e, "ld.global.cg.f32", "not ordered after that store",
                        "the writer executed no gpu-scope fence");
            }
            m.close();
        }
    }
}
