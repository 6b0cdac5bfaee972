package io.github.batchnorm4j.gpu;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The occupancy arithmetic: cases worked by hand from NVIDIA's calculator rules, then 800 configurations whose expected
 * blocks per SM NVIDIA's own calculator ({@code cuda_occupancy.h}, see src/test/cuda/occupancy_table.cpp) computed.
 */
class OccupancyTest {
    private static final DeviceProperties SM_90 = Architecture.SM_90.properties(132);

    private static KernelResources kernel(int registers, int staticShared) {
        return new KernelResources(registers, staticShared, 0, 1024, "test");
    }

    @Test
    void registersLimitOurElementwiseKernelsOnSm90() {
        // 40 registers: 40 * 32 = 1280 per warp (a multiple of 256); 16384 / 1280 = 12 warps per sub-partition,
        // 48 per SM, 6 blocks of 8 warps. Warps alone would allow 64 / 8 = 8, blocks 32; shared (0 + 1 KiB reserve)
        // 233472 / 1024 = 228.
        Occupancy.Result r = Occupancy.of(SM_90, kernel(40, 0), 256, 0);
        assertEquals(6, r.blocksPerSm());
        assertEquals(Set.of(Occupancy.Limit.REGISTERS), r.limiting());
        assertEquals(8, r.byWarps());
        assertEquals(32, r.byBlocks());
        assertEquals(228, r.bySharedMemory());
        assertEquals(0.75, r.occupancy(), 0);
        assertNull(r.refusal());
        // 74 registers: 2368 rounds up to 2560 per warp; 6 warps per sub-partition, 24 per SM, 3 blocks.
        Occupancy.Result r74 = Occupancy.of(SM_90, kernel(74, 0), 256, 0);
        assertEquals(3, r74.blocksPerSm());
        assertEquals(0.375, r74.occupancy(), 0);
    }

    @Test
    void warpSlotsLimitSmallKernels() {
        // 32 registers: 1024 per warp, 16 warps per sub-partition = 64 per SM = 8 blocks, the same as the warp slots.
        Occupancy.Result r = Occupancy.of(SM_90, kernel(32, 0), 256, 0);
        assertEquals(8, r.blocksPerSm());
        assertEquals(Set.of(Occupancy.Limit.WARPS, Occupancy.Limit.REGISTERS), r.limiting());
        // sm_86 has 48 warp slots: 6 blocks of 8 warps; sm_75 has 32: 4 blocks.
        assertEquals(6, Occupancy.of(Architecture.SM_86.properties(84), kernel(32, 0), 256, 0).blocksPerSm());
        assertEquals(4, Occupancy.of(Architecture.SM_75.properties(40), kernel(32, 0), 256, 0).blocksPerSm());
        // 32-thread blocks hit the block slots: 32 on sm_90, 16 on sm_75.
        assertEquals(Set.of(Occupancy.Limit.BLOCKS), Occupancy.of(SM_90, kernel(16, 0), 32, 0).limiting());
        assertEquals(16, Occupancy.of(Architecture.SM_75.properties(40), kernel(16, 0), 32, 0).blocksPerSm());
    }

    @Test
    void sharedMemoryLimitsBigBlocks() {
        // sm_80: 40000 dynamic + 1024 reserve = 41024, rounded to 128: 41088; 167936 / 41088 = 4 blocks.
        Occupancy.Result r = Occupancy.of(Architecture.SM_80.properties(108), kernel(16, 0), 128, 40_000);
        assertEquals(4, r.blocksPerSm());
        assertEquals(Set.of(Occupancy.Limit.SHARED_MEMORY), r.limiting());
        // Above 48 KiB needs the opt-in: sm_90 allows it (233472 / 101120 = 2 blocks), sm_75 (64 KiB) refuses.
        assertEquals(2, Occupancy.of(SM_90, kernel(16, 0), 128, 100_000).blocksPerSm());
        Occupancy.Result t = Occupancy.of(Architecture.SM_75.properties(40), kernel(16, 400), 128, 70_000);
        assertEquals(0, t.blocksPerSm());
        assertTrue(t.refusal().contains("70400 bytes of shared memory per block (400 static + 70000 dynamic) exceed the limit of 65536"),
                t.refusal());
    }

    @Test
    void launchesAGpuWouldRefuse() {
        // 72 registers x 1024 threads: 2304 per warp x 32 warps = 73728 > 65536 registers per block.
        Occupancy.Result r = Occupancy.of(SM_90, kernel(72, 0), 1024, 0);
        assertEquals(0, r.blocksPerSm());
        assertTrue(r.refusal().contains("72 registers x 1024 threads need 73728 registers per block"), r.refusal());
        assertTrue(r.limiting().isEmpty());
        // The hardware check rounds warps up to the 4 sub-partitions: 224 registers (7168 per warp) x 9 warps fit
        // (64512), but 7168 x 12 = 86016 does not.
        Occupancy.Result h = Occupancy.of(SM_90, kernel(224, 0), 288, 0);
        assertEquals(0, h.blocksPerSm());
        assertTrue(h.refusal().contains("need 86016 registers"), h.refusal());
        // 8 warps need 57344 and fit; 16384 / 7168 = 2 warps per sub-partition, 8 per SM: one block.
        assertEquals(1, Occupancy.of(SM_90, kernel(224, 0), 256, 0).blocksPerSm());
        // More threads than __launch_bounds__ / .maxntid.
        Occupancy.Result n = Occupancy.of(SM_90, new KernelResources(40, 0, 0, 256, "test"), 512, 0);
        assertEquals(0, n.blocksPerSm());
        assertTrue(n.refusal().contains("512 threads per block exceed the kernel's limit of 256"), n.refusal());
        // Unknown registers (no compiler) limit nothing.
        assertEquals(8, Occupancy.of(SM_90, kernel(KernelResources.UNKNOWN, 0), 256, 0).blocksPerSm());
        assertThrows(IllegalArgumentException.class, () -> Occupancy.of(SM_90, kernel(40, 0), 0, 0));
    }

    @Test
    void waves() {
        assertEquals(1.0, Occupancy.waves(792, 6, 132), 0);
        assertEquals(0.5, Occupancy.waves(396, 6, 132), 0);
        assertEquals(Double.POSITIVE_INFINITY, Occupancy.waves(1, 0, 132));
    }

    @Test
    void agreesWithNvidiasCalculatorOn800Configurations() throws IOException {
        List<String> mismatches = new ArrayList<>();
        int rows = 0;
        try (InputStream in = OccupancyTest.class.getResourceAsStream("/occupancy/cuda_occupancy_table.tsv")) {
            assertNotNull(in, "src/test/resources/occupancy/cuda_occupancy_table.tsv is missing");
            for (String line : new String(in.readAllBytes(), StandardCharsets.US_ASCII).split("\n")) {
                if (line.isBlank() || line.startsWith("#")) continue;
                String[] f = line.split("\t");
                Architecture arch = Architecture.parse(f[0]);
                int threads = Integer.parseInt(f[1]);
                int regs = Integer.parseInt(f[2]);
                int st = Integer.parseInt(f[3]);
                int dyn = Integer.parseInt(f[4]);
                int expected = Integer.parseInt(f[5]);
                int actual = Occupancy.of(arch.properties(100), kernel(regs, st), threads, dyn).blocksPerSm();
                rows++;
                if (actual != expected) mismatches.add(line + "\t-> ours " + actual);
            }
        }
        assertEquals(800, rows);
        assertEquals(List.of(), mismatches, "configurations where NVIDIA's calculator and ours differ");
    }

    @Test
    void architectureTable() {
        assertEquals(Architecture.SM_89, Architecture.parse("8.9"));
        assertEquals(Architecture.SM_90, Architecture.parse("sm_90"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Architecture.parse("sm_100"));
        assertTrue(e.getMessage().contains("[sm_75, sm_80, sm_86, sm_89, sm_90]"), e.getMessage());
        assertEquals(48, Architecture.SM_86.maxWarpsPerSm());
        assertEquals(233472, Architecture.SM_90.sharedPerSm());
        assertEquals(Architecture.SM_80, Architecture.SM_80.properties(108).architecture().orElseThrow());
    }
}
