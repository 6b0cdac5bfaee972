package io.github.batchnorm4j.gpu;

import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;

/**
 * How many blocks of a kernel can be resident on one SM at once: the arithmetic of NVIDIA's occupancy calculator
 * ({@code cuda_occupancy.h}, which {@code cuOccupancyMaxActiveBlocksPerMultiprocessor} agrees with) for the default
 * shared-memory carveout and no clusters. Four limits, the smallest wins:
 * <ul>
 *   <li><b>warps</b>: maxWarpsPerSM / ⌈threads / 32⌉;</li>
 *   <li><b>blocks</b>: the architecture's maximum resident blocks per SM;</li>
 *   <li><b>registers</b>: registers are given to warps, ⌈registers per thread × 32 / 256⌉ × 256 per warp, from four
 *       sub-partitions of the register file with (65536 / 4) registers each; a block whose warps (rounded up to a
 *       multiple of four) need more than 65536 registers cannot launch at all;</li>
 *   <li><b>shared memory</b>: static + dynamic + the driver's reserve, rounded up to the allocation unit, out of the
 *       SM's shared memory; a block needing more than the per-block limit (48 KiB, or the opt-in maximum above it)
 *       cannot launch at all.</li>
 * </ul>
 * Hand-worked example (sm_90, 256-thread blocks = 8 warps): 40 registers → 1280 per warp → 12 warps per
 * sub-partition → 48 warps → 6 blocks (warps alone would allow 8); 74 registers → 2368, rounded to 2560 per warp → 6
 * warps per sub-partition → 24 warps → 3 blocks.
 *
 * <p>Pure arithmetic, no device: the emulator sizes grids and refuses launches with it, and tests check it by hand.
 */
public final class Occupancy {

    /** What can limit the resident blocks per SM. */
    public enum Limit {
        WARPS, BLOCKS, REGISTERS, SHARED_MEMORY
    }

    /**
     * The occupancy of one launch configuration.
     *
     * @param blocksPerSm      resident blocks per SM (0: the launch is refused, see {@link #refusal})
     * @param warpsPerBlock    ⌈threads / 32⌉
     * @param limiting         the limits equal to blocksPerSm
     * @param byWarps          blocks per SM the warp slots allow
     * @param byBlocks         blocks per SM the block slots allow
     * @param byRegisters      blocks per SM the register file allows (Integer.MAX_VALUE when registers are unknown)
     * @param bySharedMemory   blocks per SM the shared memory allows (Integer.MAX_VALUE when none is used)
     * @param maxWarpsPerSm    the SM's warp slots
     * @param refusal          why the launch cannot happen at all, or null
     */
    public record Result(int blocksPerSm, int warpsPerBlock, Set<Limit> limiting, int byWarps, int byBlocks,
                         int byRegisters, int bySharedMemory, int maxWarpsPerSm, String refusal) {
        /** Resident warps / the SM's warp slots, in [0, 1]. */
        public double occupancy() {
            return (double) blocksPerSm * warpsPerBlock / maxWarpsPerSm;
        }
    }

    private Occupancy() {
    }

    /**
     * The occupancy of {@code kernel} launched with {@code blockThreads} threads per block and
     * {@code dynamicSharedBytes} of dynamic shared memory on a device with {@code props}.
     */
    public static Result of(DeviceProperties props, KernelResources kernel, int blockThreads, int dynamicSharedBytes) {
        if (blockThreads < 1) throw new IllegalArgumentException("blockThreads must be >= 1, got " + blockThreads);
        if (dynamicSharedBytes < 0) throw new IllegalArgumentException("dynamicSharedBytes must be >= 0, got " + dynamicSharedBytes);
        List<String> refusals = new ArrayList<>();
        int warp = props.warpSize();
        int warpsPerBlock = ceilDiv(blockThreads, warp);
        int maxWarps = props.maxWarpsPerMultiprocessor();

        if (blockThreads > props.maxThreadsPerBlock()) {
            refusals.add(blockThreads + " threads per block exceed the device's " + props.maxThreadsPerBlock());
        }
        if (blockThreads > kernel.maxThreadsPerBlock()) {
            refusals.add(blockThreads + " threads per block exceed the kernel's limit of " + kernel.maxThreadsPerBlock()
                    + " (.maxntid / __launch_bounds__)");
        }
        int byWarps = maxWarps / warpsPerBlock;
        int byBlocks = props.maxBlocksPerMultiprocessor();

        int byRegisters = Integer.MAX_VALUE;
        if (kernel.registersKnown() && kernel.registersPerThread() > 0) {
            int perWarp = roundUp(kernel.registersPerThread() * warp, Architecture.REGISTER_ALLOCATION_UNIT);
            int parts = Architecture.REGISTER_SUB_PARTITIONS;
            // The hardware check assumes every sub-partition gets as many warps as the busiest one.
            long assumed = (long) perWarp * roundUp(warpsPerBlock, parts);
            long allocated = (long) perWarp * warpsPerBlock;
            if (kernel.registersPerThread() > Architecture.MAX_REGISTERS_PER_THREAD) {
                refusals.add(kernel.registersPerThread() + " registers per thread exceed the limit of "
                        + Architecture.MAX_REGISTERS_PER_THREAD);
                byRegisters = 0;
            } else if (Math.max(assumed, allocated) > props.registersPerBlock()) {
                refusals.add(kernel.registersPerThread() + " registers x " + blockThreads + " threads need "
                        + Math.max(assumed, allocated) + " registers per block (" + perWarp + " per warp), more than "
                        + props.registersPerBlock() + " (CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES)");
                byRegisters = 0;
            } else {
                int warpsPerPart = (props.registersPerMultiprocessor() / parts) / perWarp;
                byRegisters = warpsPerPart * parts / warpsPerBlock;
            }
        }

        int reserved = props.reservedSharedMemoryPerBlock();
        int unit = sharedAllocationUnit(props);
        long used = (long) kernel.staticSharedBytes() + reserved + dynamicSharedBytes;
        long allocated = roundUp(used, unit);
        long perBlockLimit = (dynamicSharedBytes + kernel.staticSharedBytes() > props.maxSharedMemoryPerBlock()
                ? props.maxSharedMemoryPerBlockOptin() : props.maxSharedMemoryPerBlock()) + reserved;
        int byShared;
        if (allocated > perBlockLimit) {
            refusals.add((kernel.staticSharedBytes() + dynamicSharedBytes) + " bytes of shared memory per block ("
                    + kernel.staticSharedBytes() + " static + " + dynamicSharedBytes + " dynamic) exceed the limit of "
                    + (perBlockLimit - reserved) + " (CUDA_ERROR_INVALID_VALUE)");
            byShared = 0;
        } else {
            byShared = allocated == 0 ? Integer.MAX_VALUE : (int) (props.sharedMemoryPerMultiprocessor() / allocated);
        }

        int blocks = refusals.isEmpty() ? Math.min(Math.min(byWarps, byBlocks), Math.min(byRegisters, byShared)) : 0;
        Set<Limit> limiting = EnumSet.noneOf(Limit.class);
        if (refusals.isEmpty()) {
            if (blocks == byWarps) limiting.add(Limit.WARPS);
            if (blocks == byBlocks) limiting.add(Limit.BLOCKS);
            if (blocks == byRegisters) limiting.add(Limit.REGISTERS);
            if (blocks == byShared) limiting.add(Limit.SHARED_MEMORY);
        }
        return new Result(blocks, warpsPerBlock, limiting, byWarps, byBlocks, byRegisters, byShared, maxWarps,
                refusals.isEmpty() ? null : String.join("; ", refusals));
    }

    /**
     * How many blocks of {@code kernel} (with {@code blockThreads} threads and {@code dynamicSharedBytes} of dynamic
     * shared memory) the whole {@code device} holds at once: resident blocks per SM
     * ({@link Device#maxActiveBlocksPerMultiprocessor}) times the SMs. A grid-stride kernel's full wave, and the largest
     * grid that a grid-wide barrier (a cooperative launch) may wait on without deadlock; 0 when such a block cannot
     * launch at all.
     */
    public static long coResidentBlocks(Device device, Kernel kernel, int blockThreads, int dynamicSharedBytes) {
        return (long) device.maxActiveBlocksPerMultiprocessor(kernel, blockThreads, dynamicSharedBytes)
                * device.properties().multiprocessorCount();
    }

    /**
     * Waves of a grid: its blocks over the blocks the whole device holds at once. 1.0 is one full wave; a grid-stride
     * kernel wants a whole number ≥ 1.
     */
    public static double waves(long gridBlocks, int blocksPerSm, int multiprocessors) {
        if (blocksPerSm <= 0) return Double.POSITIVE_INFINITY;
        return (double) gridBlocks / ((long) blocksPerSm * multiprocessors);
    }

    /** Shared memory allocation unit by compute capability (cuda_occupancy.h: 256 bytes before sm_80, 128 after). */
    static int sharedAllocationUnit(DeviceProperties props) {
        return props.architecture().map(Architecture::sharedAllocationUnit)
                .orElse(props.computeCapability() >= 80 ? 128 : 256);
    }

    private static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }

    private static int roundUp(int a, int b) {
        return ceilDiv(a, b) * b;
    }

    private static long roundUp(long a, long b) {
        return (a + b - 1) / b * b;
    }
}
