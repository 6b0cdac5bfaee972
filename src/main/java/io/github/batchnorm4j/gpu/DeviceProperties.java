package io.github.batchnorm4j.gpu;

import java.util.Optional;

/**
 * The device limits that launch geometry and occupancy depend on. A GPU reports them through
 * {@code cuDeviceGetAttribute}; the emulator takes them from its {@link Architecture} ({@link Architecture#properties}).
 *
 * @param multiprocessorCount           number of SMs (132 on an H100 SXM)
 * @param maxThreadsPerBlock            usually 1024
 * @param maxSharedMemoryPerBlock       static + dynamic shared bytes per block without opt-in (48 KiB)
 * @param maxSharedMemoryPerBlockOptin  shared bytes per block with the opt-in attribute (e.g. 227 KiB on sm_90)
 * @param warpSize                      always 32 on NVIDIA GPUs
 * @param computeCapability             major * 10 + minor, e.g. 90 for sm_90
 * @param maxThreadsPerMultiprocessor   resident threads per SM (2048 on sm_80/sm_90, 1536 on sm_86/sm_89)
 * @param maxBlocksPerMultiprocessor    resident blocks per SM (32 on sm_90)
 * @param registersPerMultiprocessor    32-bit registers per SM (65536)
 * @param registersPerBlock             32-bit registers one block may hold (65536)
 * @param sharedMemoryPerMultiprocessor shared bytes per SM (228 KiB on sm_90)
 * @param reservedSharedMemoryPerBlock  shared bytes the driver reserves in every block (1 KiB from sm_80 on)
 */
public record DeviceProperties(int multiprocessorCount, int maxThreadsPerBlock, int maxSharedMemoryPerBlock,
                               int maxSharedMemoryPerBlockOptin, int warpSize, int computeCapability,
                               int maxThreadsPerMultiprocessor, int maxBlocksPerMultiprocessor,
                               int registersPerMultiprocessor, int registersPerBlock,
                               int sharedMemoryPerMultiprocessor, int reservedSharedMemoryPerBlock) {
    public DeviceProperties {
        if (multiprocessorCount < 1) throw new IllegalArgumentException("multiprocessorCount must be >= 1, got " + multiprocessorCount);
        if (maxThreadsPerBlock < 32) throw new IllegalArgumentException("maxThreadsPerBlock must be >= 32, got " + maxThreadsPerBlock);
        if (warpSize != 32) throw new IllegalArgumentException("warpSize must be 32, got " + warpSize);
        if (maxThreadsPerMultiprocessor < maxThreadsPerBlock) {
            throw new IllegalArgumentException("maxThreadsPerMultiprocessor must be >= maxThreadsPerBlock ("
                    + maxThreadsPerBlock + "), got " + maxThreadsPerMultiprocessor);
        }
        if (maxBlocksPerMultiprocessor < 1) {
            throw new IllegalArgumentException("maxBlocksPerMultiprocessor must be >= 1, got " + maxBlocksPerMultiprocessor);
        }
        if (registersPerMultiprocessor < 1 || registersPerBlock < 1) {
            throw new IllegalArgumentException("registersPerMultiprocessor and registersPerBlock must be >= 1, got "
                    + registersPerMultiprocessor + ", " + registersPerBlock);
        }
        if (sharedMemoryPerMultiprocessor < maxSharedMemoryPerBlock || reservedSharedMemoryPerBlock < 0) {
            throw new IllegalArgumentException("sharedMemoryPerMultiprocessor must be >= maxSharedMemoryPerBlock ("
                    + maxSharedMemoryPerBlock + ") and reservedSharedMemoryPerBlock >= 0, got "
                    + sharedMemoryPerMultiprocessor + ", " + reservedSharedMemoryPerBlock);
        }
    }

    /** Warps resident per SM at most. */
    public int maxWarpsPerMultiprocessor() {
        return maxThreadsPerMultiprocessor / warpSize;
    }

    /** The architecture of this device, when it is one batchnorm4j knows ({@link Architecture}). */
    public Optional<Architecture> architecture() {
        return Architecture.forComputeCapability(computeCapability);
    }
}
