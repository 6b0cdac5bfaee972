package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;

/**
 * Launch geometry of every kernel, computed from the {@link Shape} and whether the 16-byte vector path is used. Pure
 * arithmetic, no device calls, so it is unit-testable and the same on the emulator and a GPU.
 *
 * <p><b>Storage types.</b> A unit is one element (scalar path) or 16 bytes (vector path): 4 floats, or 8 halves
 * of float16/bfloat16 tensors ({@link #unit(boolean, DType)}); every count below is in elements or units of the
 * tensor's own type, so a 16-bit tensor's blocks move the same number of elements per thread with half the bytes.
 *
 * <p><b>Views.</b> The kernels see a tensor in one of two ways ({@link View}): channels-first runs ({@code _cf}
 * kernels: N runs of {@code inner} floats per channel), or rows ({@code _cl} kernels: rows of {@code C·inner} floats,
 * column k in channel k / inner). Channels-last tensors are rows with inner = 1; a channels-first tensor with
 * {@code inner < }{@link #SMALL_INNER} is the same memory as N rows of C·inner floats, and reading it as rows keeps
 * every lane of a warp on consecutive addresses, where the runs view would leave most lanes idle (inner = 1 is exactly
 * a channels-last [N, C]).
 *
 * <p><b>Determinism on every GPU.</b> Everything that shapes a reduction's merge tree (the view, the block shape, the
 * number of blocks per channel and the values each block reduces) is a function of the shape and the vector choice
 * alone, never of the device: the same input gives the same bits on any GPU model and on the emulator. The split
 * count fills the largest GPU we target ({@link #LARGEST_GPU_MULTIPROCESSORS} SMs, {@link #REDUCE_BLOCKS_PER_SM}
 * resident blocks each: one wave there, slightly more than one on smaller GPUs) but never gives a split block fewer
 * than {@link #MIN_UNITS_PER_SPLIT} units (one full unroll iteration per thread), nor, in the rows view, fewer than
 * {@link #MIN_VALUES_PER_SPLIT} values of a channel (partials stay below 0.6 % of the traffic). Elementwise passes
 * have no merge tree: grid-stride loops over one full wave of 256-thread blocks, as many as the device holds at once
 * ({@code blocksPerSm × SMs}, where blocksPerSm is the kernel's real occupancy,
 * {@link Device#maxActiveBlocksPerMultiprocessor}: 3–6 for our kernels on sm_90 because of their 40–74 registers).
 */
public final class LaunchGeometry {
    /** Threads per block of every kernel (a multiple of 32; the kernels declare __launch_bounds__(256)). */
    public static final int BLOCK = 256;
    /** Warps per {@link #BLOCK}. */
    public static final int WARPS_PER_BLOCK = BLOCK / 32;
    /** SMs of the largest GPU the reductions are sized for (H100 SXM and H200: 132). */
    public static final int LARGEST_GPU_MULTIPROCESSORS = 132;
    /** Resident 256-thread reduction blocks per SM (their 50-74 registers allow 4). */
    public static final int REDUCE_BLOCKS_PER_SM = 4;
    /** Reduction blocks in all, aimed for when the tensor is large enough: one wave on the largest GPU. */
    public static final long REDUCE_TARGET_BLOCKS = (long) REDUCE_BLOCKS_PER_SM * LARGEST_GPU_MULTIPROCESSORS;
    /** Independent loads each thread of a streaming loop keeps in flight (BN_UNROLL in the kernels). */
    public static final int UNROLL = 4;
    /**
     * Fewest units (floats, or float4s on the vector path) a reduction block reads when a channel is split: one full
     * unroll iteration per thread, so that every split block keeps {@link #UNROLL} loads in flight per thread, and the
     * partials cost at most 24 B per 4 KiB read (0.6 %).
     */
    public static final long MIN_UNITS_PER_SPLIT = (long) BLOCK * UNROLL;
    /**
     * Fewest values of a channel a split block of the rows view reads (its partials then cost at most 24 B per
     * 4 KiB read, 0.6 %).
     */
    public static final long MIN_VALUES_PER_SPLIT = 1024;
    /** Fewest rows per rows-view elementwise block (the block loads its coefficients once). */
    public static final long MIN_ROWS_PER_APPLY_BLOCK = 256;
    /** Longest per-warp run of units in channels-first elementwise passes (8 iterations of 32 lanes). */
    public static final long MAX_CF_CHUNK = 256;
    /** Most blocks per channel in the channels-first view: the merging block's threads take two partials each. */
    public static final int MAX_CF_SPLITS = 2 * BLOCK;
    /** Channels-first tensors with inner below this many floats run the rows-view kernels. */
    public static final long SMALL_INNER = 128;
    /** The largest gridDim.y. */
    public static final int MAX_GRID_Y = 65535;

    private LaunchGeometry() {
    }

    /** How the kernels see a tensor. */
    public enum View {
        /** N runs of {@code inner} floats per channel ({@code _cf} kernels). */
        CHANNELS_FIRST,
        /** Rows of C·inner floats, column k in channel k / inner ({@code _cl} kernels). */
        ROWS
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

    static long gcd(long a, long b) {
        return b == 0 ? a : gcd(b, a % b);
    }

    static long lcm(long a, long b) {
        return a / gcd(a, b) * b;
    }

    static int toIntGrid(long blocks, String what) {
        if (blocks > Integer.MAX_VALUE) throw new IllegalArgumentException(what + ": grid of " + blocks + " blocks is too large");
        return (int) Math.max(1, blocks);
    }

    /** Float32 elements per unit: 4 on the vector path, else 1. */
    static int unit(boolean vec) {
        return unit(vec, DType.FLOAT32);
    }

    /** Elements per unit: 16 bytes' worth on the vector path (4 floats, 8 halves), else 1. */
    public static int unit(boolean vec, DType dtype) {
        return vec ? 16 / dtype.bytes() : 1;
    }

    /** The view the kernels use for {@code shape}. */
    public static View view(Shape shape) {
        if (shape.layout() != Layout.CHANNELS_FIRST) return View.ROWS;
        long inner = shape.inner();
        // The rows kernels index columns with 32-bit ints: C·inner plus a block of columns must fit.
        return inner < SMALL_INNER && (long) shape.channels() * inner < Integer.MAX_VALUE - 4L * BLOCK
                ? View.ROWS : View.CHANNELS_FIRST;
    }

    /** Columns per channel of the rows view (1 for channels-last; only meaningful for {@link View#ROWS}). */
    static int rowsInner(Shape shape) {
        return shape.layout() == Layout.CHANNELS_FIRST ? (int) shape.inner() : 1;
    }

    /** Rows of the rows view (N for channels-first, N·spatial for channels-last). */
    static long rowsOf(Shape shape) {
        return shape.layout() == Layout.CHANNELS_FIRST ? shape.batch() : shape.rows();
    }

    /**
     * Whether the shape allows the float4 path (given 16-byte aligned tensors): every float4 must lie in one run
     * (channels-first view: inner % 4 == 0) or one row (rows view: C·inner % 4 == 0).
     */
    public static boolean vectorizable(Shape shape) {
        return vectorizable(shape, DType.FLOAT32);
    }

    /**
     * Whether the shape allows the 16-byte vector path for tensors of {@code dtype} (given 16-byte aligned tensors):
     * every vector of W = {@link #unit(boolean, DType)} elements lies in one run or one row.
     */
    public static boolean vectorizable(Shape shape, DType dtype) {
        int w = unit(true, dtype);
        if (view(shape) == View.CHANNELS_FIRST) return shape.inner() % w == 0;
        return (long) shape.channels() * rowsInner(shape) % w == 0;
    }

    private static void checkVec(Shape shape, boolean vec, DType dtype) {
        if (vec && !vectorizable(shape, dtype)) {
            int w = unit(true, dtype);
            throw new IllegalArgumentException("the 16-byte vector path of " + dtype + " needs " + (view(shape)
                    == View.CHANNELS_FIRST ? "inner % " + w + " == 0" : "C·inner % " + w + " == 0 (rows of whole"
                    + " vectors)") + " for shape " + shape);
        }
    }

    /**
     * A per-channel reduction (bn_stats_*, bn_backward_reduce_*).
     *
     * @param view     which kernels run
     * @param grid     grid dimensions
     * @param block    block dimensions
     * @param splits   blocks per channel (channels-first view) or per column of channels (rows view)
     * @param chunk    units (channels-first view) or rows (rows view) per block
     * @param rows     rows of the rows view (0 for the channels-first view)
     * @param inner    columns per channel of the rows view (0 for the channels-first view)
     * @param partials partial records needed in the workspace (0 when splits == 1)
     * @param counters arrival counters needed in the workspace
     */
    public record Reduction(View view, Dim3 grid, Dim3 block, int splits, long chunk, long rows, int inner,
                            long partials, long counters) {
    }

    /** Geometry of a float32 reduction over {@code shape}: a function of the shape and {@code vec} alone. */
    public static Reduction reduction(Shape shape, boolean vec) {
        return reduction(shape, vec, DType.FLOAT32);
    }

    /** Geometry of a reduction over {@code shape} stored in {@code dtype}: a function of these three alone. */
    public static Reduction reduction(Shape shape, boolean vec, DType dtype) {
        checkVec(shape, vec, dtype);
        long target = REDUCE_TARGET_BLOCKS;
        int c = shape.channels();
        if (view(shape) == View.CHANNELS_FIRST) {
            long units = shape.batch() * (shape.inner() / unit(vec, dtype));
            long maxSplits = Math.max(1, units / MIN_UNITS_PER_SPLIT);
            long splits = Math.min(Math.min(Math.max(1, ceilDiv(target, c)), maxSplits), MAX_CF_SPLITS);
            long chunk = ceilDiv(units, splits);
            splits = ceilDiv(units, chunk);
            return new Reduction(View.CHANNELS_FIRST, Dim3.of(toIntGrid(c * splits, "reduction")), Dim3.of(BLOCK),
                    (int) splits, chunk, 0, 0, splits > 1 ? c * splits : 0, splits > 1 ? c : 0);
        }
        RowsBlock b = rowsBlock(shape, vec, dtype);
        long rows = rowsOf(shape);
        // Each channel of a block has `inner` values per row; UNROLL rows per thread at least.
        long minRows = Math.max((long) UNROLL * b.by, ceilDiv(MIN_VALUES_PER_SPLIT, b.inner));
        long maxSplits = Math.min(MAX_GRID_Y, Math.max(1, rows / minRows));
        long splits = Math.min(Math.max(1, ceilDiv(target, b.gridX)), maxSplits);
        long chunk = ceilDiv(rows, splits);
        splits = ceilDiv(rows, chunk);
        return new Reduction(View.ROWS, new Dim3(b.gridX, (int) splits, 1), Dim3.of(b.bx, b.by), (int) splits, chunk,
                rows, b.inner, splits > 1 ? splits * c : 0, splits > 1 ? b.gridX : 0);
    }

    /**
     * An elementwise pass (bn_apply_*, bn_dx_*).
     *
     * @param chunk  units per warp-sized piece of a plane (channels-first view; a multiple of 32), 0 for the rows view
     * @param pieces pieces per plane, ⌈(inner / W) / chunk⌉ (channels-first view)
     * @param units  warp units in all, N·C·pieces (channels-first view; below 2^31, so the kernel divides in 32 bits)
     * @param rows   rows of the rows view (0 for the channels-first view)
     * @param inner  columns per channel of the rows view (0 for the channels-first view)
     */
    public record Elementwise(View view, Dim3 grid, Dim3 block, int chunk, int pieces, int units, long rows,
                              int inner) {
    }

    /**
     * Geometry of an elementwise pass over a float32 tensor of {@code shape}: at most one wave of resident blocks.
     *
     * @param multiprocessors the device's SM count
     * @param blocksPerSm     blocks of this kernel resident per SM at once ({@link Device#maxActiveBlocksPerMultiprocessor}
     *                        for a {@link #BLOCK}-thread block; values below 1 count as 1)
     */
    public static Elementwise elementwise(Shape shape, boolean vec, int multiprocessors, int blocksPerSm) {
        return elementwise(shape, vec, multiprocessors, blocksPerSm, DType.FLOAT32);
    }

    /** Geometry of an elementwise pass over a tensor of {@code shape} stored in {@code dtype} (see above). */
    public static Elementwise elementwise(Shape shape, boolean vec, int multiprocessors, int blocksPerSm, DType dtype) {
        checkVec(shape, vec, dtype);
        long target = (long) Math.max(1, blocksPerSm) * multiprocessors;
        int c = shape.channels();
        if (view(shape) == View.CHANNELS_FIRST) {
            long innerU = shape.inner() / unit(vec, dtype);
            long pieces = ceilDiv(innerU, MAX_CF_CHUNK);
            long chunk = roundUp(ceilDiv(innerU, pieces), 32);
            pieces = ceilDiv(innerU, chunk);
            long units = shape.batch() * c * pieces;
            long blocks = Math.min(ceilDiv(units, WARPS_PER_BLOCK), target);
            if (units + blocks * WARPS_PER_BLOCK > Integer.MAX_VALUE) {   // 2^38 floats and more: no GPU holds them
                throw new IllegalArgumentException("elementwise: " + units + " warp units for shape " + shape
                        + " exceed the kernels' 32-bit unit index");
            }
            return new Elementwise(View.CHANNELS_FIRST, Dim3.of(toIntGrid(blocks, "elementwise")), Dim3.of(BLOCK),
                    (int) chunk, (int) pieces, (int) units, 0, 0);
        }
        RowsBlock b = rowsBlock(shape, vec, dtype);
        long rows = rowsOf(shape);
        long gy = Math.min(Math.max(1, ceilDiv(target, b.gridX)),
                Math.min(MAX_GRID_Y, ceilDiv(rows, Math.max(MIN_ROWS_PER_APPLY_BLOCK, b.by))));
        return new Elementwise(View.ROWS, new Dim3(b.gridX, (int) gy, 1), Dim3.of(b.bx, b.by), 0, 0, 0, rows, b.inner);
    }

    /**
     * Units each thread of the persistent forward kernel of {@code dtype} keeps in registers (bn_persist_fwd_*:
     * {@code persist_forward_units} in cuda/batchnorm_forward.cu): on the vector path 8 float4s, or 10 units of 8
     * halves (bfloat16 9); else 16 elements. Each is what compiles without spills at 2 blocks per SM on
     * sm_75..sm_90.
     */
    public static int persistForwardUnits(boolean vec, DType dtype) {
        if (dtype == null) throw new IllegalArgumentException("dtype must not be null");
        if (vec && dtype.is16Bit()) return dtype == DType.BFLOAT16 ? 9 : 10;
        return vec ? 8 : 16;
    }

    /**
     * Units of x and of dy each thread of the persistent backward kernel of {@code dtype} keeps in registers
     * (bn_persist_bwd_*: {@code persist_backward_units} in cuda/batchnorm_backward.cu): 8 vector units of each on
     * the vector path, else 16 elements (float16 14); bfloat16 7 and 14, which is what compiles without spills at 2
     * blocks per SM on sm_75..sm_90.
     */
    public static int persistBackwardUnits(boolean vec, DType dtype) {
        if (dtype == null) throw new IllegalArgumentException("dtype must not be null");
        if (dtype == DType.BFLOAT16) return vec ? 7 : 14;
        return vec ? 8 : dtype.is16Bit() ? 14 : 16;
    }

    /** Most blocks per channel (channels-first) or per column block (rows) of a persistent kernel. */
    public static final int MAX_PERSIST_SPLITS = BLOCK;

    /**
     * A persistent single-pass kernel (bn_persist_fwd_*, bn_persist_bwd_*): every block keeps its whole tile in
     * registers, so the grid is as many blocks as the tensor needs at {@code units} units per thread; the host launches
     * it cooperatively when that grid can be co-resident, else runs the two-pass kernels.
     *
     * @param view     which kernels run
     * @param grid     grid dimensions (every block resident at once)
     * @param block    block dimensions
     * @param splits   blocks per channel (channels-first view) or per column block (rows view)
     * @param chunk    units (channels-first view) or rows (rows view) per block: at most units × BLOCK (units × by)
     * @param rows     rows of the rows view (0 for the channels-first view)
     * @param inner    columns per channel of the rows view (0 for the channels-first view)
     * @param partials partial records needed in the workspace (0 when splits == 1: no exchange, no barrier)
     */
    public record Persistent(View view, Dim3 grid, Dim3 block, int splits, long chunk, long rows, int inner,
                             long partials) {
    }

    /**
     * Geometry of a persistent kernel with {@code units} units per thread over {@code shape} stored in {@code dtype}, a
     * function of these alone (so its merge order is the same on every GPU), or empty when a channel would need more
     * than {@link #MAX_PERSIST_SPLITS} blocks. Whether the grid can be co-resident is the device's question.
     */
    public static java.util.Optional<Persistent> persistent(Shape shape, boolean vec, DType dtype, int units) {
        checkVec(shape, vec, dtype);
        int c = shape.channels();
        if (view(shape) == View.CHANNELS_FIRST) {
            long total = shape.batch() * (shape.inner() / unit(vec, dtype));
            long splits = ceilDiv(total, (long) units * BLOCK);
            if (splits > MAX_PERSIST_SPLITS || c * splits > Integer.MAX_VALUE) return java.util.Optional.empty();
            long chunk = ceilDiv(total, splits);
            splits = ceilDiv(total, chunk);
            return java.util.Optional.of(new Persistent(View.CHANNELS_FIRST, Dim3.of((int) (c * splits)),
                    Dim3.of(BLOCK), (int) splits, chunk, 0, 0, splits > 1 ? c * splits : 0));
        }
        RowsBlock b = persistentRowsBlock(shape, vec, dtype);
        long rows = rowsOf(shape);
        long splits = ceilDiv(rows, (long) units * b.by);
        if (splits > MAX_PERSIST_SPLITS) return java.util.Optional.empty();
        long chunk = ceilDiv(rows, splits);
        splits = ceilDiv(rows, chunk);
        return java.util.Optional.of(new Persistent(View.ROWS, new Dim3(b.gridX, (int) splits, 1), Dim3.of(b.bx, b.by),
                (int) splits, chunk, rows, b.inner, splits > 1 ? splits * c : 0));
    }

    /**
     * Rows-view blocks of the persistent kernels: tall and narrow. Every block exchanges a partial per channel and
     * reads back every row split's partial of its channels, C_b·(splits + 1) records against its C_b·rows_b values, so
     * the block takes as few columns as keep whole 32-byte sectors per row (2 float4s or 8 floats; whole channels
     * when inner > 1) and as many rows as 256 threads hold: splits stay few and the exchange a few percent of S at
     * most. bx·W columns hold whole channels, by the largest power of two with bx·by ≤ 256.
     */
    static RowsBlock persistentRowsBlock(Shape shape, boolean vec, DType dtype) {
        int w = unit(vec, dtype);
        int inner = rowsInner(shape);
        long lu = (long) shape.channels() * inner / w;   // column units per row
        long sectorUnits = Math.max(1, 32 / ((long) w * dtype.bytes()));
        int bx;
        if (inner == 1) {
            bx = (int) Math.min(sectorUnits, nextPow2((int) Math.min(lu, sectorUnits)));
        } else {
            long g = lcm(inner, w) / w;   // units holding whole channels
            bx = (int) Math.min(lcm(g, sectorUnits), roundUp(lu, g));   // and whole sectors when rows are aligned
            if (bx > BLOCK) bx = (int) (g * (BLOCK / g));
        }
        int by = Integer.highestOneBit(BLOCK / bx);
        return new RowsBlock(bx, by, toIntGrid(ceilDiv(lu, bx), "rows"), inner);
    }

    /**
     * The fused apply + ReLU pass (bn_apply_relu*, cuda/batchnorm_forward.cu): one geometry for both layouts, since
     * the channel of flat element e is (e / inner) % C with inner = {@link Shape#inner()} (1 for channels-last).
     *
     * @param grid    1-D grid of {@link #BLOCK}-thread blocks (at most one wave); blocks take items grid-stride
     * @param tile    elements per warp tile: 512 bytes, {@link #RELU_TILE_BYTES} / element size (a multiple of 32,
     *                so each tile's mask words are whole)
     * @param period  lcm(C·inner, tile): every period holds the same channels at the same offsets
     * @param tiles   tile columns per period (those that hold elements); 0 when every block stages all C channels
     *                and takes {@code chunk} consecutive tiles (one item per block)
     * @param periods ⌈elements / period⌉ (with tiles = 0: the tensor's tiles)
     * @param chunk   periods per work item (with tiles = 0: tiles per block)
     * @param items   work items, tiles · ⌈periods / chunk⌉ (with tiles = 0: the grid)
     * @param staged  channels a tile column stages at most (bounds the per-item coefficient reads)
     */
    public record Relu(Dim3 grid, Dim3 block, int tile, long period, int tiles, long periods, long chunk, int items,
                       int staged) {
    }

    /** Bytes of a warp tile of the fused ReLU kernels (16 sectors; its mask words fill one sector). */
    public static final int RELU_TILE_BYTES = 512;

    /**
     * Per-item staging (4 floats per channel: center, scale, shift) may cost at most 1 / this of the bytes an item's
     * x and y move.
     */
    public static final int RELU_STAGING_RATIO = 100;

    /**
     * Geometry of the fused apply + ReLU over {@code shape} stored in {@code dtype}. Work items are (tile column, chunk
     * of periods); chunk is at least 8 periods (one per warp) and large enough that staging an item's coefficients
     * stays below 1% of its tensors' bytes, else as small as gives one wave of items. When the periods are too few
     * for that (the staging would pass 2%) and C &le; 256, every block stages all channels once instead.
     *
     * @param multiprocessors the device's SM count
     * @param blocksPerSm     resident blocks of the kernel per SM (values below 1 count as 1)
     */
    public static Relu relu(Shape shape, boolean vec, int multiprocessors, int blocksPerSm, DType dtype) {
        checkVec(shape, vec, dtype);
        long n = shape.elementCount();
        long inner = shape.inner();
        int c = shape.channels();
        int tile = RELU_TILE_BYTES / dtype.bytes();
        long l = (long) c * inner;
        long g = gcd(l, tile);
        // One period when lcm(l, tile) reaches n (checked before multiplying: it may not fit a long).
        long period = l / g >= ceilDiv(n, tile) ? roundUp(n, tile) : l / g * tile;
        long periods = ceilDiv(n, period);
        long tiles = periods == 1 ? ceilDiv(n, tile) : period / tile;
        long staged = Math.min(c, (tile - 1) / inner + 2);
        long target = (long) Math.max(1, blocksPerSm) * multiprocessors;
        long minChunk = Math.max(WARPS_PER_BLOCK, ceilDiv(RELU_STAGING_RATIO * 16L * staged,
                2L * RELU_TILE_BYTES));
        long chunk = Math.min(periods, Math.max(minChunk, ceilDiv(periods * tiles, target)));
        long items = tiles * ceilDiv(periods, chunk);
        long xy = 2L * dtype.bytes() * n;   // bytes of x and y
        if (c <= BLOCK && inner <= tile && items * 16 * staged * RELU_STAGING_RATIO > 2 * xy) {
            // Staging per tile column would cost more than 2% (few periods: C·inner shares few factors with the
            // tile): every block stages all C channels once and takes a contiguous run of tiles, as few blocks as
            // keep that under 1% (at least one, at most a wave).
            long all = ceilDiv(n, tile);
            long blocks = Math.max(1, Math.min(Math.min(target, all), xy / (RELU_STAGING_RATIO * 16L * c)));
            long per = ceilDiv(all, blocks);
            int grid = toIntGrid(ceilDiv(all, per), "relu");
            return new Relu(Dim3.of(grid), Dim3.of(BLOCK), tile, tile, 0, all, per, grid, c);
        }
        if (tiles > Integer.MAX_VALUE || items + target > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("relu: " + items + " work items for shape " + shape
                    + " exceed the kernel's 32-bit item index");
        }
        return new Relu(Dim3.of(toIntGrid(Math.min(items, target), "relu")), Dim3.of(BLOCK), tile, period,
                (int) tiles, periods, chunk, (int) items, (int) staged);
    }

    /** Threads per block for the per-channel bn_prepare kernel, and its grid. */
    public static Dim3 prepareGrid(int channels) {
        return Dim3.of(toIntGrid(ceilDiv(channels, BLOCK), "prepare"));
    }

    /**
     * Rows-view blocks: bx column units (the bx·W columns of a block hold whole channels), by = the largest power of
     * two with bx·by ≤ 256 row groups, gridX column blocks.
     */
    record RowsBlock(int bx, int by, int gridX, int inner) {
    }

    static RowsBlock rowsBlock(Shape shape, boolean vec) {
        return rowsBlock(shape, vec, DType.FLOAT32);
    }

    static RowsBlock rowsBlock(Shape shape, boolean vec, DType dtype) {
        int w = unit(vec, dtype);
        int inner = rowsInner(shape);
        long lu = (long) shape.channels() * inner / w;   // column units per row
        int bx;
        if (inner == 1) {
            // A power of two ≤ 32, so that a warp covers whole rows when C is small.
            bx = (int) Math.min(32, nextPow2((int) Math.min(lu, 32)));
        } else {
            // Whole channels per block: a multiple of g units (lcm(inner, W) columns). Prefer a multiple of 32 units
            // too (each warp then reads 32 consecutive units), else as many channel groups as fit in 256 threads.
            long g = lcm(inner, w) / w;
            long m = lcm(g, 32);
            long x = m <= BLOCK ? m : g * (BLOCK / g);
            bx = (int) Math.min(x, roundUp(lu, g));
        }
        int by = Integer.highestOneBit(BLOCK / bx);
        if ((long) bx * w / inner > (long) bx * by) {   // the kernels give each channel of a block one thread
            throw new IllegalStateException("rows block " + bx + "x" + by + " holds more channels than threads for "
                    + shape);
        }
        return new RowsBlock(bx, by, toIntGrid(ceilDiv(lu, bx), "rows"), inner);
    }
}
