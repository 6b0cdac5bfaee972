package io.github.batchnorm4j.gpu;

/**
 * The device limits that launch geometry depends on.
 *
 * @param multiprocessorCount         number of SMs (132 on an H100 SXM)
 * @param maxThreadsPerBlock          usually 1024
 * @param maxSharedMemoryPerBlock     static + dynamic shared bytes per block without opt-in (48 KiB)
 * @param maxSharedMemoryPerBlockOptin shared bytes per block with the opt-in attribute (e.g. 64 KiB or more)
 * @param warpSize                    always 32 on NVIDIA GPUs
 * @param computeCapability           major * 10 + minor, e.g. 90 for sm_90
 */
public record DeviceProperties(int multiprocessorCount, int maxThreadsPerBlock, int maxSharedMemoryPerBlock,
                               int maxSharedMemoryPerBlockOptin, int warpSize, int computeCapability) {
    public DeviceProperties {
        if (multiprocessorCount < 1) throw new IllegalArgumentException("multiprocessorCount must be >= 1, got " + multiprocessorCount);
        if (maxThreadsPerBlock < 32) throw new IllegalArgumentException("maxThreadsPerBlock must be >= 32, got " + maxThreadsPerBlock);
        if (warpSize != 32) throw new IllegalArgumentException("warpSize must be 32, got " + warpSize);
    }
}
