package io.github.batchnorm4j.gpu;

import java.util.Arrays;
import java.util.Locale;
import java.util.Optional;

/**
 * The GPU architectures batchnorm4j's PTX is compiled for, with the per-SM limits that decide how many blocks of a
 * kernel can be resident at once (the occupancy, {@link Occupancy}).
 *
 * <p>Sources: the CUDA C++ Programming Guide's table "Technical Specifications per Compute Capability" (threads,
 * blocks, warps, registers and shared memory per SM and per block) and the CUDA occupancy calculator,
 * {@code cuda_occupancy.h} of the CUDA toolkit (allocation granularities, the shared memory the driver reserves per
 * block, the register-file sub-partitions). A real GPU reports the same numbers through {@code cuDeviceGetAttribute};
 * the emulator takes them from here.
 *
 * <table>
 *   <caption>Per-SM limits</caption>
 *   <tr><th></th><th>sm_75</th><th>sm_80</th><th>sm_86</th><th>sm_89</th><th>sm_90</th></tr>
 *   <tr><td>threads / warps per SM</td><td>1024 / 32</td><td>2048 / 64</td><td>1536 / 48</td><td>1536 / 48</td><td>2048 / 64</td></tr>
 *   <tr><td>blocks per SM</td><td>16</td><td>32</td><td>16</td><td>24</td><td>32</td></tr>
 *   <tr><td>registers per SM / per block / per thread</td><td colspan="5">65536 / 65536 / 255 (allocated per warp in units of 256)</td></tr>
 *   <tr><td>shared memory per SM</td><td>64 KiB</td><td>164 KiB</td><td>100 KiB</td><td>100 KiB</td><td>228 KiB</td></tr>
 *   <tr><td>shared memory per block (opt-in)</td><td>64 KiB</td><td>163 KiB</td><td>99 KiB</td><td>99 KiB</td><td>227 KiB</td></tr>
 *   <tr><td>reserved by the driver per block</td><td>0</td><td colspan="4">1 KiB</td></tr>
 *   <tr><td>shared allocation unit</td><td>256 B</td><td colspan="4">128 B</td></tr>
 * </table>
 * Every architecture: 1024 threads and 48 KiB of shared memory per block without the opt-in, 4 register-file
 * sub-partitions per SM, warps of 32.
 */
public enum Architecture {
    /** Turing (T4, RTX 20xx). */
    SM_75(75, 1024, 16, 64, 64, 0, 256),
    /** Ampere data centre (A100, A30). */
    SM_80(80, 2048, 32, 164, 163, 1024, 128),
    /** Ampere GA10x (RTX 30xx, A10, A40). */
    SM_86(86, 1536, 16, 100, 99, 1024, 128),
    /** Ada (RTX 40xx, L4, L40). */
    SM_89(89, 1536, 24, 100, 99, 1024, 128),
    /** Hopper (H100, H200). */
    SM_90(90, 2048, 32, 228, 227, 1024, 128);

    /** Warp size on every NVIDIA GPU. */
    public static final int WARP_SIZE = 32;
    /** Threads per block on every architecture here. */
    public static final int MAX_THREADS_PER_BLOCK = 1024;
    /** 32-bit registers per SM on every architecture here. */
    public static final int REGISTERS_PER_SM = 64 * 1024;
    /** 32-bit registers one block may hold. */
    public static final int REGISTERS_PER_BLOCK = 64 * 1024;
    /** Registers one thread may use (ptxas never assigns more). */
    public static final int MAX_REGISTERS_PER_THREAD = 255;
    /** Registers are allocated per warp in multiples of this many. */
    public static final int REGISTER_ALLOCATION_UNIT = 256;
    /** The register file is split into this many sub-partitions, each holding a quarter of the warps. */
    public static final int REGISTER_SUB_PARTITIONS = 4;
    /** Shared memory a block may use without the per-kernel opt-in attribute. */
    public static final int SHARED_PER_BLOCK_DEFAULT = 48 * 1024;

    private final int computeCapability;
    private final int maxThreadsPerSm;
    private final int maxBlocksPerSm;
    private final int sharedPerSm;
    private final int sharedPerBlockOptin;
    private final int reservedSharedPerBlock;
    private final int sharedAllocationUnit;

    Architecture(int computeCapability, int maxThreadsPerSm, int maxBlocksPerSm, int sharedPerSmKiB,
                 int sharedPerBlockOptinKiB, int reservedSharedPerBlock, int sharedAllocationUnit) {
        this.computeCapability = computeCapability;
        this.maxThreadsPerSm = maxThreadsPerSm;
        this.maxBlocksPerSm = maxBlocksPerSm;
        this.sharedPerSm = sharedPerSmKiB * 1024;
        this.sharedPerBlockOptin = sharedPerBlockOptinKiB * 1024;
        this.reservedSharedPerBlock = reservedSharedPerBlock;
        this.sharedAllocationUnit = sharedAllocationUnit;
    }

    /** major * 10 + minor, e.g. 90. */
    public int computeCapability() {
        return computeCapability;
    }

    /** The name ptxas and nvcc use, e.g. "sm_90". */
    public String smName() {
        return "sm_" + computeCapability;
    }

    public int maxThreadsPerSm() {
        return maxThreadsPerSm;
    }

    public int maxWarpsPerSm() {
        return maxThreadsPerSm / WARP_SIZE;
    }

    public int maxBlocksPerSm() {
        return maxBlocksPerSm;
    }

    /** Shared memory per SM in bytes (the largest carveout). */
    public int sharedPerSm() {
        return sharedPerSm;
    }

    /** Shared memory one block may use with the opt-in attribute, in bytes (without the driver's reserve). */
    public int sharedPerBlockOptin() {
        return sharedPerBlockOptin;
    }

    /** Shared memory the driver reserves for its own use in every block, in bytes. */
    public int reservedSharedPerBlock() {
        return reservedSharedPerBlock;
    }

    /** Shared memory is allocated to blocks in multiples of this many bytes. */
    public int sharedAllocationUnit() {
        return sharedAllocationUnit;
    }

    /** The limits of a device of this architecture with {@code multiprocessors} SMs. */
    public DeviceProperties properties(int multiprocessors) {
        return new DeviceProperties(multiprocessors, MAX_THREADS_PER_BLOCK, SHARED_PER_BLOCK_DEFAULT,
                sharedPerBlockOptin, WARP_SIZE, computeCapability, maxThreadsPerSm, maxBlocksPerSm, REGISTERS_PER_SM,
                REGISTERS_PER_BLOCK, sharedPerSm, reservedSharedPerBlock);
    }

    /** The architecture of compute capability {@code cc} (major * 10 + minor), if it is one of ours. */
    public static Optional<Architecture> forComputeCapability(int cc) {
        return Arrays.stream(values()).filter(a -> a.computeCapability == cc).findFirst();
    }

    /**
     * Parses "sm_90", "90", "9.0" or "SM_90".
     *
     * @throws IllegalArgumentException naming the architectures supported
     */
    public static Architecture parse(String s) {
        if (s != null) {
            String t = s.trim().toLowerCase(Locale.ROOT).replace("sm_", "").replace(".", "");
            try {
                Optional<Architecture> a = forComputeCapability(Integer.parseInt(t));
                if (a.isPresent()) return a.get();
            } catch (NumberFormatException ignored) {
                // reported below
            }
        }
        throw new IllegalArgumentException("architecture: expected one of "
                + Arrays.stream(values()).map(Architecture::smName).toList() + ", got '" + s + "'");
    }
}
