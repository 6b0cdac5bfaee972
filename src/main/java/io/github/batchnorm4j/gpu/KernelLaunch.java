package io.github.batchnorm4j.gpu;

/**
 * One kernel launch of an operation and how it fills the device: what {@code bench} prints per kernel.
 *
 * @param kernel             the entry name, e.g. "bn_apply_cf_vec4"
 * @param grid               grid dimensions
 * @param block              block dimensions
 * @param registersPerThread registers per thread as compiled for the device ({@link KernelResources#UNKNOWN} if unknown)
 * @param blocksPerSm        blocks of this kernel resident per SM at once ({@link Device#maxActiveBlocksPerMultiprocessor})
 * @param occupancy          resident warps per SM over the SM's warp slots, in [0, 1]
 * @param waves              grid blocks over the blocks the whole device holds at once (1.0: one full wave)
 */
public record KernelLaunch(String kernel, Dim3 grid, Dim3 block, int registersPerThread, int blocksPerSm,
                           double occupancy, double waves) {

    /** The launch of {@code kernel} on {@code device}, with the occupancy the device reports for it. */
    static KernelLaunch of(Device device, Kernel kernel, Dim3 grid, Dim3 block, int blocksPerSm) {
        DeviceProperties p = device.properties();
        int warps = (int) ((block.volume() + p.warpSize() - 1) / p.warpSize());
        return new KernelLaunch(kernel.name(), grid, block, kernel.resources().registersPerThread(), blocksPerSm,
                (double) blocksPerSm * warps / p.maxWarpsPerMultiprocessor(),
                Occupancy.waves(grid.volume(), blocksPerSm, p.multiprocessorCount()));
    }
}
