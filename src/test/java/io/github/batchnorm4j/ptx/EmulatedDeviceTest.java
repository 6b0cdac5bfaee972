package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DeviceException;
import io.github.batchnorm4j.gpu.DeviceModule;
import io.github.batchnorm4j.gpu.Dim3;
import io.github.batchnorm4j.gpu.Kernel;
import io.github.batchnorm4j.gpu.KernelArgs;
import org.junit.jupiter.api.Test;

import java.util.List;

import static io.github.batchnorm4j.testing.Messages.assertMentions;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The Device contract of EmulatedDevice: validation, ownership, close semantics, leaks, launch limits, metrics. */
class EmulatedDeviceTest {
    private static final String KERNEL = PtxHarness.kernel("mov.b64 %out0, %in0;", "");

    @Test
    void propertiesAndName() {
        try (EmulatedDevice dev = new EmulatedDevice(EmulatorOptions.defaults().withMultiprocessorCount(8))) {
            assertEquals(8, dev.properties().multiprocessorCount());
            assertEquals(1024, dev.properties().maxThreadsPerBlock());
            assertEquals(48 * 1024, dev.properties().maxSharedMemoryPerBlock());
            assertEquals(227 * 1024, dev.properties().maxSharedMemoryPerBlockOptin());
            assertEquals(90, dev.properties().computeCapability());
            assertEquals(2048, dev.properties().maxThreadsPerMultiprocessor());
            assertTrue(dev.name().contains("sm_90, 8 SMs"), dev.name());
        }
        try (EmulatedDevice dev = new EmulatedDevice()) {
            assertEquals(132, dev.properties().multiprocessorCount());
        }
    }

    @Test
    void copiesRoundTripAndCheckBounds() {
        try (EmulatedDevice dev = new EmulatedDevice(); DeviceBuffer b = dev.allocate(40)) {
            float[] src = {1.5f, -2f, 3.25f, Float.NaN, 7f};
            dev.copyToDevice(src, 1, b.at(8), 4, dev.defaultStream());
            float[] dst = new float[6];
            dev.copyToHost(b.at(8), dst, 2, 4, dev.defaultStream());
            assertArrayEquals(new float[]{0, 0, -2f, 3.25f, Float.NaN, 7f}, dst);
            assertMentions(assertThrows(IllegalArgumentException.class,
                    () -> dev.copyToDevice(src, 0, b.at(32), 3, dev.defaultStream())), "dst: 12 bytes at offset 32", "40-byte buffer");
            assertMentions(assertThrows(IllegalArgumentException.class,
                    () -> dev.copyToDevice(src, 3, b.pointer(), 3, dev.defaultStream())), "src: 3 elements from offset 3", "array of 5");
            assertMentions(assertThrows(DeviceException.class,
                    () -> dev.copyToHost(b.pointer(), dst, 0, 1, dev.defaultStream())), "never written");
            dev.memset(b.pointer(), (byte) 0, 8, dev.defaultStream());
            int[] ints = new int[2];
            dev.copyToHost(b.pointer(), ints, 0, 2, dev.defaultStream());
            assertArrayEquals(new int[]{0, 0}, ints);
            assertThrows(IllegalArgumentException.class, () -> dev.allocate(0));
        }
    }

    @Test
    void closeSemantics() {
        EmulatedDevice dev = new EmulatedDevice();
        DeviceBuffer b = dev.allocate(16);
        b.close();
        b.close(); // harmless
        assertTrue(b.isClosed());
        assertMentions(assertThrows(IllegalStateException.class,
                () -> dev.memset(b.pointer(), (byte) 1, 4, dev.defaultStream())), "buffer #1", "closed");
        dev.close();
        dev.close(); // idempotent
        assertMentions(assertThrows(IllegalStateException.class, () -> dev.allocate(4)), "closed");
        assertEquals(List.of(), dev.leakReport());
    }

    @Test
    void leaksAreThrownAtCloseOrRecorded() {
        EmulatedDevice dev = new EmulatedDevice();
        DeviceBuffer kept = dev.allocate(100);
        dev.allocate(8).close();
        DeviceException e = assertThrows(DeviceException.class, dev::close);
        assertMentions(e.getMessage(), "1 leaked allocation", "buffer #1 (100 bytes)");
        assertTrue(kept.isClosed(), "close frees leaked buffers too");
        EmulatedDevice quiet = new EmulatedDevice(EmulatorOptions.defaults().withThrowOnLeak(false));
        quiet.allocate(12);
        quiet.close();
        assertEquals(List.of("buffer #1 (12 bytes)"), quiet.leakReport());
    }

    @Test
    void launchValidatesArgumentsAndLimits() {
        try (EmulatedDevice dev = new EmulatedDevice(); EmulatedDevice other = new EmulatedDevice();
             DeviceBuffer in = dev.allocate(32 * 64); DeviceBuffer out = dev.allocate(32 * 64);
             DeviceBuffer foreign = other.allocate(32)) {
            DeviceModule m = dev.loadModule("k.ptx", KERNEL);
            Kernel k = m.kernel("t");
            assertMentions(assertThrows(DeviceException.class, () -> m.kernel("nope")), "no entry nope", "[t]");
            assertMentions(assertThrows(DeviceException.class, () -> dev.launch(k, Dim3.of(1), Dim3.of(32), 0,
                    dev.defaultStream(), new KernelArgs().ptr(in))), "takes 2 parameters, got 1");
            assertMentions(assertThrows(DeviceException.class, () -> dev.launch(k, Dim3.of(1), Dim3.of(32), 0,
                    dev.defaultStream(), new KernelArgs().ptr(in).i32(3))), "argument 1 (t_out, .u64, 8 bytes) given as I32");
            assertMentions(assertThrows(DeviceException.class, () -> dev.launch(k, Dim3.of(1), Dim3.of(2048), 0,
                    dev.defaultStream(), new KernelArgs().ptr(in).ptr(out))), "2048 threads", "launch of t");
            assertMentions(assertThrows(DeviceException.class, () -> dev.launch(k, Dim3.of(1), Dim3.of(32), 240_000,
                    dev.defaultStream(), new KernelArgs().ptr(in).ptr(out))), "240000 dynamic", "232448");
            assertThrows(IllegalArgumentException.class, () -> dev.launch(k, Dim3.of(1), Dim3.of(32), 0,
                    dev.defaultStream(), new KernelArgs().ptr(in).ptr(foreign)));
            m.close();
            assertMentions(assertThrows(IllegalStateException.class, () -> dev.launch(k, Dim3.of(1), Dim3.of(32), 0,
                    dev.defaultStream(), new KernelArgs().ptr(in).ptr(out))), "module k.ptx", "closed");
        }
    }

    @Test
    void metricsPerLaunchAndCumulative() {
        try (EmulatedDevice dev = new EmulatedDevice(); DeviceBuffer in = dev.allocate(32 * 64);
             DeviceBuffer out = dev.allocate(32 * 64)) {
            DeviceModule m = dev.loadModule("k.ptx", KERNEL);
            dev.memset(in.pointer(), (byte) 3, 32 * 64, dev.defaultStream());
            KernelArgs args = new KernelArgs().ptr(in).ptr(out);
            dev.launch(m.kernel("t"), Dim3.of(1), Dim3.of(64), 0, dev.defaultStream(), args);
            dev.launch(m.kernel("t"), Dim3.of(1), Dim3.of(32), 0, dev.defaultStream(), args);
            List<LaunchRecord> h = dev.launchHistory();
            assertEquals(2, h.size());
            assertEquals("t", h.get(0).kernel());
            // each thread loads 32 bytes (two v2.b64) and stores 32 bytes
            assertEquals(64 * 32, h.get(0).metrics().globalBytesLoaded());
            assertEquals(64 * 32, h.get(0).metrics().globalBytesStored());
            assertEquals(0.5, h.get(0).metrics().sectorEfficiency(), 1e-12, "16-byte accesses at a 32-byte stride use half of each sector");
            assertEquals(2, dev.metrics().launches());
            assertEquals(96 * 32 * 2, dev.metrics().bytesMoved());
            assertEquals(h.get(0).metrics().threadInstructions() * 3 / 2, dev.metrics().threadInstructions());
            dev.resetMetrics();
            assertEquals(0, dev.metrics().launches());
            assertFalse(dev.launchHistory().iterator().hasNext());
        }
    }

    private static int[] blockOrder(EmulatorOptions opt, int blocks) {
        try (EmulatedDevice dev = new EmulatedDevice(opt); DeviceBuffer counter = dev.allocate(4);
             DeviceBuffer order = dev.allocate(4L * blocks)) {
            DeviceModule m = dev.loadModule("block_order.ptx", TestPtx.load("block_order.ptx"));
            dev.memset(counter.pointer(), (byte) 0, 4, dev.defaultStream());
            dev.copyToDevice(new int[blocks], 0, order.pointer(), blocks, dev.defaultStream());
            dev.launch(m.kernel("block_order"), Dim3.of(blocks), Dim3.of(64), 0, dev.defaultStream(),
                    new KernelArgs().ptr(counter).ptr(order));
            int[] got = new int[blocks];
            dev.copyToHost(order.pointer(), got, 0, blocks, dev.defaultStream());
            return got;
        }
    }

    @Test
    void blocksRunInASeededShuffledOrder() {
        int blocks = 50;
        int[] seq = blockOrder(EmulatorOptions.defaults().withSequentialBlocks(), blocks);
        for (int b = 0; b < blocks; b++) assertEquals(b, seq[b], "sequential order");
        int[] a = blockOrder(EmulatorOptions.defaults().withBlockOrderSeed(5), blocks);
        int[] again = blockOrder(EmulatorOptions.defaults().withBlockOrderSeed(5), blocks);
        int[] other = blockOrder(EmulatorOptions.defaults().withBlockOrderSeed(6), blocks);
        assertArrayEquals(a, again, "same seed, same order");
        assertFalse(java.util.Arrays.equals(a, other), "another seed, another order");
        assertFalse(java.util.Arrays.equals(a, seq), "shuffled, not sequential");
        int[] sorted = a.clone();
        java.util.Arrays.sort(sorted);
        assertArrayEquals(seq, sorted, "every block ran exactly once");
        assertFalse(java.util.Arrays.equals(blockOrder(EmulatorOptions.defaults(), blocks), seq), "shuffled by default");
    }
}
