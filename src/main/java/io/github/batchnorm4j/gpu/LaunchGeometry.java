package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;

/**
 * Launch geometry of every kernel, computed from the {@link Shape}, whether the 16-byte vector path is used, and the
 * device's SM count. Pure arithmetic, no device calls, so it is unit-testable and the same on the emulator and a GPU.
 *
 * <p>Reductions split each channel across enough blocks to fill the GPU ({@link #REDUCE_WAVES} blocks per SM in all)
 * but never below {@link #MIN_ELEMENTS_PER_SPLIT} values per block, so the per-block partials stay a negligible part
 * of the traffic. Elementwise passes use grid-stride loops over one full wave of 256-thread blocks: as many blocks as
 * the device holds at once, {@code blocksPerSm × SMs}, where blocksPerSm is the kernel's real occupancy
 * ({@link Device#maxActiveBlocksPerMultiprocessor}, 3–6 for our kernels on sm_90 because of their 40–74 registers).
 */
public final class LaunchGeometry {
    /** Threads per block of every kernel (a multiple of 32; the kernels declare __launch_bounds__(256)). */
    public static final int BLOCK = 256;
    /** Warps per {@link #BLOCK}. */
    public static final int WARPS_PER_BLOCK = BLOCK / 32;
    /** Target number of reduction blocks per SM. */
    public static final int REDUCE_WAVES = 4;
    /** Fewest values per channel a reduction block handles (partials then cost at most 24 B per 4 KiB read, 0.6 %). */
    public static final long MIN_ELEMENTS_PER_SPLIT = 1024;
    /** Fewest rows per channels-last elementwise block (the block loads its coefficients once). */
    public static final long MIN_ROWS_PER_APPLY_BLOCK = 256;
    /** Longest per-warp run of units in channels-first elementwise passes (8 iterations of 32 lanes). */
    public static final long MAX_CF_CHUNK = 256;
    /** The largest gridDim.y. */
    public static final int MAX_GRID_Y = 65535;

    private LaunchGeometry() {
    }

    /** ⌈a / b⌉ for a ≥ 0, b > 0. */
    public static long ceilDiv(long a, long b) {
        if (a < 0 || b <= 0) throw new IllegalArgumentException("ceilDiv needs a >= 0 and b > 0, got " + a + ", " + b);
        return (a + b - 1) / b;
    }

    /** Smallest power of two ≥ v (v ≥ 1). */
    static int nextPow2(int v) {
        return v <= 1 ? 1 : Integer.highestOneBit(v - 1) << 1;
    }

    /** Round v up to a multiple of m. */
    static long roundUp(long v, long m) {
        return ceilDiv(v, m) * m;
    }

    static int toIntGrid(long blocks, String what) {
        if (blocks > Integer.MAX_VALUE) throw new IllegalArgumentException(what + ": grid of " + blocks + " blocks is too large");
        return (int) Math.max(1, blocks);
    }

    /** Floats (or float4s) per unit. */
    static int unit(boolean vec) {
        return vec ? 4 : 1;
    }

    private static void checkVec(Shape shape, boolean vec) {
        if (!vec) return;
        long d = shape.layout() == Layout.CHANNELS_FIRST ? shape.inner() : shape.channels();
        if (d % 4 != 0) {
            throw new IllegalArgumentException("the float4 path needs " + (shape.layout() == Layout.CHANNELS_FIRST
                    ? "inner" : "C") + " % 4 == 0, got " + d + " for shape " + shape);
        }
    }

    /**
     * A per-channel reduction (bn_stats_*, bn_backward_reduce_*).
     *
     * @param grid     grid dimensions
     * @param block    block dimensions
     * @param splits   blocks per channel (cf) or per column of channels (cl)
     * @param chunk    units (cf) or rows (cl) per block
     * @param partials partial records needed in the workspace (0 when splits == 1)
     * @param counters arrival counters needed in the workspace
     */
    public record Reduction(Dim3 grid, Dim3 block, long splits, long chunk, long partials, long counters) {
    }

    /** Geometry of a reduction over {@code shape}. */
    public static Reduction reduction(Shape shape, boolean vec, int multiprocessors) {
        checkVec(shape, vec);
        long target = (long) REDUCE_WAVES * multiprocessors;
        int c = shape.channels();
        if (shape.layout() == Layout.CHANNELS_FIRST) {
            long units = shape.batch() * (shape.inner() / unit(vec));
            long maxSplits = Math.max(1, shape.reductionSize() / MIN_ELEMENTS_PER_SPLIT);
            long splits = Math.min(Math.max(1, ceilDiv(target, c)), maxSplits);
            long chunk = ceilDiv(units, splits);
            splits = ceilDiv(units, chunk);
            return new Reduction(Dim3.of(toIntGrid(c * splits, "reduction")), Dim3.of(BLOCK), splits, chunk,
                    splits > 1 ? c * splits : 0, splits > 1 ? c : 0);
        }
        ChannelsLastBlock b = channelsLastBlock(c, vec);
        long rows = shape.rows();
        long maxSplits = Math.min(MAX_GRID_Y, Math.max(1, rows / MIN_ELEMENTS_PER_SPLIT));
        long splits = Math.min(Math.max(1, ceilDiv(target, b.gridX)), maxSplits);
        long chunk = ceilDiv(rows, splits);
        splits = ceilDiv(rows, chunk);
        return new Reduction(new Dim3(b.gridX, (int) splits, 1), Dim3.of(b.bx, b.by), splits, chunk,
                splits > 1 ? splits * c : 0, splits > 1 ? b.gridX : 0);
    }

    /**
     * An elementwise pass (bn_apply_*, bn_dx_*).
     *
     * @param chunk units per warp-sized piece of a plane (channels-first; a multiple of 32), unused for channels-last
     */
    public record Elementwise(Dim3 grid, Dim3 block, long chunk) {
    }

    /**
     * Geometry of an elementwise pass over {@code shape}: at most one wave of resident blocks.
     *
     * @param multiprocessors the device's SM count
     * @param blocksPerSm     blocks of this kernel resident per SM at once ({@link Device#maxActiveBlocksPerMultiprocessor}
     *                        for a {@link #BLOCK}-thread block; values below 1 count as 1)
     */
    public static Elementwise elementwise(Shape shape, boolean vec, int multiprocessors, int blocksPerSm) {
        checkVec(shape, vec);
        long target = (long) Math.max(1, blocksPerSm) * multiprocessors;
        int c = shape.channels();
        if (shape.layout() == Layout.CHANNELS_FIRST) {
            long innerU = shape.inner() / unit(vec);
            long pieces = ceilDiv(innerU, MAX_CF_CHUNK);
            long chunk = roundUp(ceilDiv(innerU, pieces), 32);
            pieces = ceilDiv(innerU, chunk);
            long units = shape.batch() * c * pieces;
            long blocks = Math.min(ceilDiv(units, WARPS_PER_BLOCK), target);
            return new Elementwise(Dim3.of(toIntGrid(blocks, "elementwise")), Dim3.of(BLOCK), chunk);
        }
        ChannelsLastBlock b = channelsLastBlock(c, vec);
        long rows = shape.rows();
        long gy = Math.min(Math.max(1, ceilDiv(target, b.gridX)),
                Math.min(MAX_GRID_Y, ceilDiv(rows, Math.max(MIN_ROWS_PER_APPLY_BLOCK, b.by))));
        return new Elementwise(new Dim3(b.gridX, (int) gy, 1), Dim3.of(b.bx, b.by), 0);
    }

    /** Threads per block for the per-channel bn_prepare kernel, and its grid. */
    public static Dim3 prepareGrid(int channels) {
        return Dim3.of(toIntGrid(ceilDiv(channels, BLOCK), "prepare"));
    }

    /**
     * Channels-last blocks: bx threads across channel units (a power of two ≤ 32, so a warp covers whole rows when
     * C is small), by = 256 / bx row groups.
     */
    record ChannelsLastBlock(int bx, int by, int gridX) {
    }

    static ChannelsLastBlock channelsLastBlock(int channels, boolean vec) {
        int cu = vec ? channels / 4 : channels;
        int bx = Math.min(32, nextPow2(cu));
        int by = BLOCK / bx;
        return new ChannelsLastBlock(bx, by, toIntGrid(ceilDiv(cu, bx), "channels-last"));
    }
}
