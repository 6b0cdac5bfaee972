package io.github.batchnorm4j.gpu;

/**
 * What one thread and one block of a kernel hold while resident, as compiled for the device: what limits how many
 * blocks fit on an SM ({@link Occupancy}). A GPU reports it through {@code cuFuncGetAttribute}; the emulator asks the
 * PTX compiler (ptxas, as bundled with JCuda) for its architecture.
 *
 * @param registersPerThread  32-bit registers per thread; {@link #UNKNOWN} when no compiler could say
 * @param staticSharedBytes   {@code __shared__} bytes declared in the kernel (dynamic shared memory comes on top)
 * @param localBytesPerThread stack frame per thread (spills and local arrays), in bytes
 * @param maxThreadsPerBlock  the most threads a block of this kernel may have: {@code __launch_bounds__} /
 *                            {@code .maxntid}, or fewer when the registers of a larger block would not fit
 * @param source              where the numbers come from, for messages (e.g. "ptxas 12.6 for sm_90", "cuFuncGetAttribute")
 */
public record KernelResources(int registersPerThread, int staticSharedBytes, int localBytesPerThread,
                              int maxThreadsPerBlock, String source) {
    /** Register count when it is not known. */
    public static final int UNKNOWN = -1;

    public KernelResources {
        if (registersPerThread < UNKNOWN) throw new IllegalArgumentException("registersPerThread must be >= 0 or UNKNOWN, got " + registersPerThread);
        if (staticSharedBytes < 0) throw new IllegalArgumentException("staticSharedBytes must be >= 0, got " + staticSharedBytes);
        if (localBytesPerThread < 0) throw new IllegalArgumentException("localBytesPerThread must be >= 0, got " + localBytesPerThread);
        if (maxThreadsPerBlock < 1) throw new IllegalArgumentException("maxThreadsPerBlock must be >= 1, got " + maxThreadsPerBlock);
        if (source == null || source.isBlank()) throw new IllegalArgumentException("source must not be empty");
    }

    /** Whether the register count is known. */
    public boolean registersKnown() {
        return registersPerThread != UNKNOWN;
    }
}
