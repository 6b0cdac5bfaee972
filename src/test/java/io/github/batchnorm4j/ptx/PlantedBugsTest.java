package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DeviceException;
import io.github.batchnorm4j.gpu.DeviceModule;
import io.github.batchnorm4j.gpu.Dim3;
import io.github.batchnorm4j.gpu.KernelArgs;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static io.github.batchnorm4j.testing.Messages.assertMentions;
import static io.github.batchnorm4j.testing.TestData.gaussian;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Kernels with planted bugs (src/test/cuda/planted_bugs.cu): each must fail with a message naming the kind of error,
 * the kernel, the PTX line, the block and thread; and each check must be what catches it (switching it off lets the
 * launch pass).
 */
class PlantedBugsTest {
    private static final String PTX = TestPtx.load("planted_bugs.ptx");

    @Test
    void outOfBoundsWriteIsCaught() {
        int n = 1000;
        try (EmulatedDevice dev = new EmulatedDevice(); DeviceBuffer x = dev.allocate(4L * n);
             DeviceBuffer y = dev.allocate(4L * n)) {
            DeviceModule m = dev.loadModule("planted_bugs.ptx", PTX);
            dev.copyToDevice(gaussian(new Random(1), n), 0, x.pointer(), n, dev.defaultStream());
            DeviceException e = assertThrows(DeviceException.class, () -> dev.launch(m.kernel("oob_write"),
                    Dim3.of(8), Dim3.of(128), 0, dev.defaultStream(), new KernelArgs().ptr(x).ptr(y).i32(n)));
            // element n = 1000 is in block 7 (896..1023), thread 104
            assertMentions(e.getMessage(), "out-of-bounds global write", "kernel oob_write", "line ",
                    "block (7,0,0)", "thread (104,0,0)", "0 bytes past the end of buffer #2", "st.global.f32");
        }
    }

    @Test
    void missingSyncthreadsRaceIsCaughtAndOnlyByTheRaceCheck() {
        int block = 128, grid = 2;
        float[] x = gaussian(new Random(2), block * grid);
        for (boolean check : new boolean[]{true, false}) {
            try (EmulatedDevice dev = new EmulatedDevice(EmulatorOptions.defaults().withRaceCheck(check));
                 DeviceBuffer dx = dev.allocate(4L * x.length); DeviceBuffer out = dev.allocate(4L * grid)) {
                DeviceModule m = dev.loadModule("planted_bugs.ptx", PTX);
                dev.copyToDevice(x, 0, dx.pointer(), x.length, dev.defaultStream());
                Runnable launch = () -> dev.launch(m.kernel("race_missing_sync"), Dim3.of(grid), Dim3.of(block), 0,
                        dev.defaultStream(), new KernelArgs().ptr(dx).ptr(out));
                if (check) {
                    DeviceException e = assertThrows(DeviceException.class, launch::run);
                    assertMentions(e.getMessage(), "shared memory data race", "kernel race_missing_sync", "line ",
                            "block (", "thread (", "shared address 0x", "since the last barrier");
                } else {
                    assertDoesNotThrow(launch::run);
                }
            }
        }
    }

    @Test
    void uninitializedReadIsCaught() {
        int n = 256;
        try (EmulatedDevice dev = new EmulatedDevice(); DeviceBuffer x = dev.allocate(4L * n);
             DeviceBuffer y = dev.allocate(4L * n)) {
            DeviceModule m = dev.loadModule("planted_bugs.ptx", PTX);
            dev.copyToDevice(gaussian(new Random(3), n), 0, x.pointer(), n - 3, dev.defaultStream()); // last 3 never written
            DeviceException e = assertThrows(DeviceException.class, () -> dev.launch(m.kernel("uninit_read"),
                    Dim3.of(2), Dim3.of(128), 0, dev.defaultStream(), new KernelArgs().ptr(x).ptr(y).i32(n)));
            assertMentions(e.getMessage(), "read of uninitialized global memory", "kernel uninit_read",
                    "block (1,0,0)", "thread (125,0,0)", "byte " + 4 * (n - 3) + " of buffer #1");
        }
    }

    @Test
    void divergentBarrierIsReportedNotHung() {
        try (EmulatedDevice dev = new EmulatedDevice(); DeviceBuffer y = dev.allocate(4L * 64)) {
            DeviceModule m = dev.loadModule("planted_bugs.ptx", PTX);
            DeviceException e = assertThrows(DeviceException.class, () -> dev.launch(m.kernel("divergent_barrier"),
                    Dim3.of(1), Dim3.of(64), 0, dev.defaultStream(), new KernelArgs().ptr(y)));
            assertMentions(e.getMessage(), "barrier divergence", "kernel divergent_barrier", "bar.sync",
                    "32 of 64 threads wait", "32 threads exited without reaching it", "block (0,0,0)");
        }
    }

    @Test
    void misalignedVectorLoadIsCaught() {
        try (EmulatedDevice dev = new EmulatedDevice(); DeviceBuffer x = dev.allocate(4L * 200);
             DeviceBuffer y = dev.allocate(4L * 32)) {
            DeviceModule m = dev.loadModule("planted_bugs.ptx", PTX);
            dev.copyToDevice(gaussian(new Random(4), 200), 0, x.pointer(), 200, dev.defaultStream());
            DeviceException e = assertThrows(DeviceException.class, () -> dev.launch(m.kernel("misaligned_vec"),
                    Dim3.of(1), Dim3.of(32), 0, dev.defaultStream(), new KernelArgs().ptr(x).ptr(y)));
            assertMentions(e.getMessage(), "misaligned 16-byte read", "kernel misaligned_vec", "thread (0,0,0)",
                    "ld.global.nc.v4.f32");
        }
    }

    @Test
    void plainStoreThenAtomicWithoutBarrierIsARace() {
        int n = 4096, nbins = 64;
        int[] v = new int[n];
        Random r = new Random(5);
        for (int i = 0; i < n; i++) v[i] = r.nextInt(1000);
        for (boolean check : new boolean[]{true, false}) {
            try (EmulatedDevice dev = new EmulatedDevice(EmulatorOptions.defaults().withRaceCheck(check));
                 DeviceBuffer dv = dev.allocate(4L * n); DeviceBuffer bins = dev.allocate(4L * nbins)) {
                DeviceModule m = dev.loadModule("planted_bugs.ptx", PTX);
                dev.copyToDevice(v, 0, dv.pointer(), n, dev.defaultStream());
                dev.memset(bins.pointer(), (byte) 0, 4L * nbins, dev.defaultStream());
                Runnable launch = () -> dev.launch(m.kernel("histogram_missing_sync"), Dim3.of(4), Dim3.of(128),
                        4 * nbins, dev.defaultStream(), new KernelArgs().ptr(dv).i32(n).i32(nbins).ptr(bins));
                if (check) {
                    DeviceException e = assertThrows(DeviceException.class, launch::run);
                    // the first block run (block 3 in the seeded order): lane 0's atomic hits bin 31, which lane 31 of
                    // the same warp zeroed with a plain store and nothing ordered (the same missing barrier)
                    assertMentions(e.getMessage(), "shared memory data race within a warp: atomic update of shared"
                            + " address 0x7c already written by thread (31,0,0) of the same warp",
                            "kernel histogram_missing_sync", "atom.shared.add.u32", "block (3,0,0)", "thread (0,0,0)",
                            "missing __syncwarp?");
                } else {
                    assertDoesNotThrow(launch::run); // lockstep warps hide the bug: only the check finds it
                }
            }
        }
    }

    @Test
    void warpReductionWithoutSyncwarpIsCaughtAndOnlyByTheRaceCheck() {
        int block = 64, grid = 3;
        float[] x = gaussian(new Random(6), block * grid);
        for (boolean check : new boolean[]{true, false}) {
            try (EmulatedDevice dev = new EmulatedDevice(EmulatorOptions.defaults().withRaceCheck(check));
                 DeviceBuffer dx = dev.allocate(4L * x.length); DeviceBuffer out = dev.allocate(4L * grid * 2)) {
                DeviceModule m = dev.loadModule("planted_bugs.ptx", PTX);
                dev.copyToDevice(x, 0, dx.pointer(), x.length, dev.defaultStream());
                Runnable launch = () -> dev.launch(m.kernel("warp_reduce_no_syncwarp"), Dim3.of(grid),
                        Dim3.of(block), 0, dev.defaultStream(), new KernelArgs().ptr(dx).ptr(out));
                if (check) {
                    DeviceException e = assertThrows(DeviceException.class, launch::run);
                    // step o = 16: lane 0 reads w[16], written by lane 16 with no __syncwarp in between
                    assertMentions(e.getMessage(), "shared memory data race within a warp: read of shared address 0x40"
                            + " already written by thread (16,0,0) of the same warp", "no __syncwarp",
                            "kernel warp_reduce_no_syncwarp", "line ", "ld.shared.f32", "block (", "thread (0,0,0)",
                            "missing __syncwarp?");
                } else {
                    assertDoesNotThrow(launch::run); // lockstep lanes hide the bug: only the check finds it
                }
            }
        }
    }
}
