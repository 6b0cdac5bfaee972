package io.github.batchnorm4j.cpu;

import io.github.batchnorm4j.AbstractSplitBatchNormOps;
import io.github.batchnorm4j.ChannelStatistics;
import io.github.batchnorm4j.GradientSums;
import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.function.IntConsumer;

/**
 * The CPU backend: float32 in and out, double accumulation, all cores, deterministic results.
 *
 * <p><b>Work split.</b> Each operation is one or two passes over the tensor. A pass cuts the tensor into
 * {@code tasks} contiguous pieces of (almost) equal size, independent of C, so a tensor with C = 1 or with a huge
 * spatial size uses every thread just like one with many channels: channels-first pieces are ranges of the flat
 * element index (a piece may start and end inside a channel's run), channels-last pieces are ranges of rows. Each
 * piece accumulates into its own per-channel partial arrays; the partials are merged in piece order, so the result
 * depends only on the shape and the thread count, never on scheduling.
 *
 * <p><b>Statistics</b> (one read of x). Per channel c, every piece sums d = x − K_c and d² in double, where the center
 * K_c is the channel's first value (a sample of the channel, the same for all pieces, so the partial sums simply add).
 * Then mean = K + Σd/M and M2 = Σd² − (Σd)²/M. This is the shifted single pass, not E[x²] − E[x]²: the cancellation in
 * M2 costs log2(1 + (mean − K)²/var) bits of the 53 a double holds, and K, being a value of the channel, lies within a
 * few standard deviations of the mean for any real data; even an outlier K 1000 standard deviations away leaves ≈ 33
 * bits, more than float32 needs. (x − K is exact in double: both are floats.) The loops ({@link PieceLoops}) are
 * {@link VectorLoops} where the Vector API is present ({@link #VECTOR_AVAILABLE}: floats widened into double vectors,
 * lanes folded in a fixed order) and {@link ElementLoops} otherwise (several independent scalar accumulator chains,
 * fused multiply-adds where the JVM has them, channels-last sums tiled so that blocks of 8 channels accumulate in
 * registers).
 *
 * <p><b>Elementwise passes</b> run in float32 with per-channel coefficients hoisted out of the loops (channels-first:
 * one plain loop per run, which HotSpot vectorizes; channels-last: chunks of whole rows copied into scratch, one flat
 * loop over each with replicated coefficients, which HotSpot vectorizes too; see {@link ElementLoops}).
 * y = (x − hi)·scale + shift with mean = hi + lo split into a float and its remainder (shift = beta − lo·scale):
 * x·scale + (beta − mean·scale) would cancel when |mean| ≫ std. Backward: dx = dy·kdy + (x − mean)·kx + k0 with the
 * per-channel coefficients computed in double from the sums. The channels-last backward sums add groups of at most
 * 16 terms in float (Σdy compensated, as accurate as a double sum; Σdy·(x − mean) within 1e−6 of Σ|dy·(x − mean)|)
 * before adding them in double: the bound is in {@link ElementLoops}, the measurements in docs/cpu-performance.md.
 *
 * <p>Traffic in units of S = bytes of x: forward training 3 S (read x; read x, write y), eval 2 S, backward
 * training 5 S (read x, dy; read x, dy, write dx), eval backward 3 S (one fused pass).
 *
 * <p>The worker threads are daemon threads of a private {@link SpinPool} (piece t always on the same thread; idle
 * workers poll briefly for the next call before they park); {@link #close()} stops them. Calls may come from several
 * threads at once (a call that finds the workers busy runs its pieces on its own thread: the same results).
 */
public final class CpuBatchNormOps extends AbstractSplitBatchNormOps {
    /** Below this many elements per piece, splitting costs more than it saves. */
    static final int MIN_ELEMENTS_PER_TASK = 1 << 15;

    /**
     * Floats per block of a second pass walked backwards. The second pass of forward training (y) and of backward
     * (dx) reads its piece again right after the first pass read it front to back: walked block by block from the
     * end, it meets first what the first pass read last, still in the core's caches (what a front-to-back walk finds
     * there is what the cache evicted first). Blocks of 64 Ki floats keep each block a forward stream for the
     * prefetchers.
     */
    static final int SECOND_PASS_BLOCK = 1 << 16;

    /**
     * Whether the Java heap lives on 2 MB pages: the JVM was started with -XX:+UseTransparentHugePages (as
     * scripts/batchnorm4j starts it where the kernel offers huge pages on request) and the kernel offers them, or the
     * kernel gives every process huge pages (/sys/kernel/mm/transparent_hugepage/enabled shows [always]).
     */
    static final boolean HUGE_PAGES = detectHugePages();

    /**
     * Channels-first forward training walks channel by channel (statistics, then y from cache: x read once from
     * memory) only below this size of x; above it, the statistics (still channel by channel) and then y in pieces, as
     * the split ops run it; the same bits either way. The channel walk writes y in a channel's short runs (N runs of
     * H·W floats, C·H·W apart), each in pages of its own: on 4 KB pages that streamed slower from memory than whole
     * pieces ([64,128,56,56], 103 MB, 2 threads, quiet machine: 13.2 ms channel by channel against 3.3 ms statistics
     * + 7.6 ms y in pieces), on 2 MB pages ({@link #HUGE_PAGES}) it was the faster (12.8 and 13.0 ms against 14.4 and
     * 13.3 ms, two alternations in one quiet window, docs/cpu-performance.md), so with huge pages every size takes it.
     * The backward keeps its channel walk whatever the size (17.3 ms against 8.2 + 11.3 ms: it saves re-reading two
     * arrays). Tensors that stay in the last-level cache ([32,64,56,56], 25.7 MB: forward training 1.3-1.5 ms, 4x
     * torch's) keep the channel walk; 64 MB is between the two sizes measured.
     */
    static final long CHANNEL_WALK_MAX_FORWARD_BYTES = HUGE_PAGES ? Long.MAX_VALUE : 64L << 20;

    /** Chunks per piece of a front-to-back elementwise pass ({@link #runElementwise}); 8 and 64 measured no better. */
    static final int CHUNKS_PER_PIECE = 16;

    /** Elements per chunk of a front-to-back elementwise pass at least: a claimed chunk costs one atomic add. */
    static final int MIN_CHUNK_ELEMENTS = 1 << 14;

    /** ints between two pieces' chunk counters: one cache line each. */
    private static final int COUNTER_STRIDE = 16;

    /**
     * Whether the Vector API loops ({@link VectorLoops}) can run here: the module {@code jdk.incubator.vector} is in
     * the boot layer (the launcher and the tests add it with {@code --add-modules jdk.incubator.vector}), vectors
     * hold at least 8 floats (AVX2 or wider), and {@code -Dbatchnorm4j.cpu.vector=false} does not turn them off.
     * Without it the scalar {@link ElementLoops} run (plain library users on a class path).
     */
    static final boolean VECTOR_AVAILABLE = detectVector();

    private final int threads;
    private final int minElementsPerTask;
    private final PieceLoops loops;
    private final boolean reverseSecondPass;
    private final boolean channelWise;
    private final SpinPool pool;

    /** A backend using every available processor. */
    public CpuBatchNormOps() {
        this(Runtime.getRuntime().availableProcessors());
    }

    /**
     * A backend using {@code threads} threads (the calling thread is one of them).
     *
     * @throws IllegalArgumentException if threads &lt; 1
     */
    public CpuBatchNormOps(int threads) {
        this(threads, MIN_ELEMENTS_PER_TASK);
    }

    /** For tests: {@code minElementsPerTask} = 1 splits even tiny tensors, so every piece boundary gets exercised. */
    CpuBatchNormOps(int threads, int minElementsPerTask) {
        this(threads, minElementsPerTask, VECTOR_AVAILABLE);
    }

    /** For tests and benchmarks: {@code vector} = false runs the scalar loops even where the Vector API is present. */
    CpuBatchNormOps(int threads, int minElementsPerTask, boolean vector) {
        this(threads, minElementsPerTask, vector, true, true);
    }

    /**
     * For benchmarks (A/B comparisons): {@code reverseSecondPass} = false walks second passes front to back,
     * {@code channelWise} = false walks channels-first tensors in pieces whatever C.
     */
    CpuBatchNormOps(int threads, int minElementsPerTask, boolean vector, boolean reverseSecondPass,
                    boolean channelWise) {
        if (vector && !VECTOR_AVAILABLE) {
            throw new IllegalArgumentException("vector: the Vector API (jdk.incubator.vector) is not available here");
        }
        if (threads < 1) throw new IllegalArgumentException("threads: expected >= 1, got " + threads);
        if (minElementsPerTask < 1) {
            throw new IllegalArgumentException("minElementsPerTask: expected >= 1, got " + minElementsPerTask);
        }
        this.threads = threads;
        this.minElementsPerTask = minElementsPerTask;
        this.loops = vector ? VectorLoops.INSTANCE : ElementLoops.INSTANCE;
        this.reverseSecondPass = reverseSecondPass;
        this.channelWise = channelWise;
        this.pool = threads > 1 ? new SpinPool(threads - 1, "batchnorm4j-cpu") : null;
    }

    @Override
    public String name() {
        return "cpu";
    }

    /** Which element loops run: "vector" (the Vector API) or "scalar". */
    public String loopsName() {
        return loops == ElementLoops.INSTANCE ? "scalar" : "vector";
    }

    private static boolean detectHugePages() {
        String offered;
        try {
            offered = Files.readString(Path.of("/sys/kernel/mm/transparent_hugepage/enabled"));
        } catch (IOException | RuntimeException e) {
            return false; // not Linux, or not readable: assume 4 KB pages
        }
        if (offered.contains("[always]")) return true;
        if (!offered.contains("[madvise]")) return false;
        boolean flag = false;
        try {
            for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) { // the last one counts
                if (a.equals("-XX:+UseTransparentHugePages")) flag = true;
                if (a.equals("-XX:-UseTransparentHugePages")) flag = false;
            }
        } catch (RuntimeException | LinkageError e) {
            return false; // no java.management
        }
        return flag;
    }

    private static boolean detectVector() {
        if (!Boolean.parseBoolean(System.getProperty("batchnorm4j.cpu.vector", "true"))) return false;
        if (ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty()) return false;
        try {
            return VectorLoops.FL >= 8; // loads VectorLoops: only here, after the module was found
        } catch (LinkageError e) {
            return false;
        }
    }

    /** The number of threads a large operation is split across. */
    public int threads() {
        return threads;
    }

    @Override
    protected void doClose() {
        if (pool != null) pool.close();
    }

    // ---- the memory view --------------------------------------------------------------------------------------------

    /**
     * The walk of a tensor: channels-first is {@code outer} runs of {@code inner} floats per channel; channels-last is
     * {@code rows} rows of C floats. Channels-last with C = 1 is walked as channels-first with one long run, and
     * channels-first with inner = 1 as channels-last, so neither degenerates into a loop of length 1.
     */
    private static final class View {
        final boolean channelsFirst;
        final int channels;
        final int inner;   // channels-first: run length
        final int rows;    // channels-last: row count
        final int size;    // element count
        final long count;  // M

        View(Shape shape) {
            channels = shape.channels();
            size = shape.elementCountAsInt();
            count = shape.reductionSize();
            boolean cf = shape.layout() == Layout.CHANNELS_FIRST;
            int run = cf ? (int) shape.inner() : 1;
            if (cf && run == 1) cf = false;               // [N, C, 1...]: rows of C, like [N, C]
            if (!cf && channels == 1) {                   // [rows, 1]: a single run of M floats
                cf = true;
                run = size;
            }
            channelsFirst = cf;
            inner = run;
            rows = cf ? 0 : (int) count;
        }
    }

    // ---- threading --------------------------------------------------------------------------------------------------

    private int tasksFor(int elements) {
        return (int) Math.max(1, Math.min(threads, elements / minElementsPerTask));
    }

    /** Runs body(0..tasks−1), task 0 on the calling thread, and waits for all; rethrows the first failure. */
    private void run(int tasks, IntConsumer body) {
        if (tasks == 1 || pool == null) {
            for (int t = 0; t < tasks; t++) body.accept(t);
            return;
        }
        pool.run(tasks, body);
    }

    /** For benchmarks: body(0 .. tasks − 1) on this backend's threads (task 0 on the calling thread). */
    void parallel(int tasks, IntConsumer body) {
        if (tasks < 1 || tasks > threads) {
            throw new IllegalArgumentException("tasks: expected 1.." + threads + ", got " + tasks);
        }
        run(tasks, body);
    }

    /**
     * A piece's per-channel partial sums, allocated by the thread that runs the piece (call it inside the task). The
     * rows of one {@code new double[tasks][c]} lie back to back, so the last channels of piece t share a cache line
     * with the first channels of piece t + 1, and the channels-last tile loops add into both once per tile: that line
     * moved between the cores about 6,000 times per pass. Allocated by each thread (in its own allocation buffer), the
     * arrays never share a line. Measured on [64,56,56,128] channels-last, 2 threads, quiet machine: the statistics
     * took 6.7 ms against 3.5 ms for the same tile loop adding into arrays of its own (docs/cpu-performance.md).
     */
    private static double[] partial(int channels) {
        return new double[channels];
    }

    /** Start of piece t of n over [0, total): the same function of (total, n) every time, hence deterministic. */
    private static int pieceStart(int total, int t, int n) {
        return (int) ((long) total * t / n);
    }

    /**
     * Threads for a channel-wise walk of v (see {@link #channelWise}), or 0 when v is walked in pieces: channels-first
     * with runs longer than one element, and channels that split evenly enough across the threads (the largest share
     * at most 10% above the mean; C = 3 on 2 threads is not) or a single thread.
     */
    private int channelTasks(View v) {
        if (!v.channelsFirst || v.inner == v.size || !channelWise) return 0;
        int tasks = Math.min(tasksFor(v.size), v.channels);
        int most = (v.channels + tasks - 1) / tasks;
        return (long) most * tasks * 10 <= 11L * v.channels ? tasks : 0;
    }

    /** First channel of task t of n. */
    private static int channelStart(int channels, int t, int n) {
        return pieceStart(channels, t, n);
    }

    // ---- operations -------------------------------------------------------------------------------------------------

    /** Centered sums Σ(x − center), Σ(x − center)² per channel and the resulting statistics. */
    private double[][] meanAndM2(Shape shape, float[] x) {
        View v = view(shape);
        int c = v.channels;
        float[] center = new float[c];   // the channel's first value
        for (int ch = 0; ch < c; ch++) center[ch] = x[v.channelsFirst ? ch * v.inner : ch];
        int channelTasks = channelTasks(v);
        if (channelTasks > 0) {
            double[] mean = new double[c];
            double[] m2 = new double[c];
            run(channelTasks, t -> {
                double[] sums = new double[2];
                for (int k = channelStart(c, t, channelTasks); k < channelStart(c, t + 1, channelTasks); k++) {
                    channelStatistics(v, x, k, center[k], mean, m2, sums);
                }
            });
            return new double[][] {mean, m2};
        }
        int tasks = tasksFor(v.size);
        double[][] s1 = new double[tasks][];
        double[][] s2 = new double[tasks][];
        run(tasks, t -> {
            s1[t] = partial(c);
            s2[t] = partial(c);
            if (v.channelsFirst) {
                loops.centeredSumsChannelsFirst(x, pieceStart(v.size, t, tasks),
                        pieceStart(v.size, t + 1, tasks), c, v.inner, center, s1[t], s2[t]);
            } else {
                loops.centeredSumsChannelsLast(x, pieceStart(v.rows, t, tasks),
                        pieceStart(v.rows, t + 1, tasks), c, center, s1[t], s2[t]);
            }
        });
        double[] mean = new double[c];
        double[] m2 = new double[c];
        loops.mergeStatistics(s1, s2, center, v.count, mean, m2);
        return new double[][] {mean, m2};
    }

    /** Channel k's mean and M2 into mean[k], m2[k], from one walk of its runs (sums: scratch of 2). */
    private void channelStatistics(View v, float[] x, int k, float center, double[] mean, double[] m2,
                                   double[] sums) {
        loops.channelSums(x, k, v.size / (v.channels * v.inner), v.channels, v.inner, center, sums);
        double m = v.count;
        double a = sums[0];
        mean[k] = center + a / m;
        double sq = sums[1] - a * (a / m);
        m2[k] = sq < 0 ? 0 : sq; // as in the pieces' merge: rounding can dip below 0 for a constant channel
    }

    @Override
    protected ChannelStatistics doStatistics(Shape shape, float[] x) {
        double[][] st = meanAndM2(shape, x);
        return new ChannelStatistics(shape.reductionSize(), st[0], st[1]);
    }

    @Override
    protected void doForwardTraining(Shape shape, float[] x, float[] gamma, float[] beta, double eps,
                                     float[] runningMean, float[] runningVar, double momentum,
                                     float[] y, float[] saveMean, float[] saveInvstd) {
        View v = view(shape);
        int channelTasks = channelTasks(v);
        if (channelTasks > 0 && (long) v.size * Float.BYTES < CHANNEL_WALK_MAX_FORWARD_BYTES) {
            // Channel by channel: its statistics, then its y while its runs are still in the core's caches.
            int c = v.channels;
            long m = v.count;
            double[] mean = new double[c];
            double[] m2 = new double[c];
            float[] hi = new float[c];
            float[] invstdF = new float[c];
            int batches = v.size / (c * v.inner);
            run(channelTasks, t -> {
                double[] sums = new double[2];
                float[] k3 = new float[3];
                for (int k = channelStart(c, t, channelTasks); k < channelStart(c, t + 1, channelTasks); k++) {
                    channelStatistics(v, x, k, x[k * v.inner], mean, m2, sums);
                    forwardCoefficients(k, mean, m2, m, gamma, beta, eps, hi, invstdF, k3);
                    loops.channelApply(x, y, k, batches, c, v.inner, hi[k], k3[1], k3[2]);
                }
            });
            finishForward(c, mean, m2, m, hi, invstdF, runningMean, runningVar, momentum, saveMean, saveInvstd);
            return;
        }
        double[][] st = meanAndM2(shape, x);
        forward(shape, x, st[0], st[1], shape.reductionSize(), gamma, beta, eps, runningMean, runningVar, momentum, y,
                saveMean, saveInvstd);
    }

    @Override
    protected void doForwardWithStatistics(Shape shape, float[] x, ChannelStatistics statistics, float[] gamma,
                                           float[] beta, double eps, float[] runningMean, float[] runningVar,
                                           double momentum, float[] y, float[] saveMean, float[] saveInvstd) {
        forward(shape, x, statistics.means(), statistics.m2s(), statistics.count(), gamma, beta, eps, runningMean,
                runningVar, momentum, y, saveMean, saveInvstd);
    }

    /** The training forward from (mean, M2) over m values: y, the saved statistics and the running statistics. */
    private void forward(Shape shape, float[] x, double[] mean, double[] m2, long m, float[] gamma, float[] beta,
                         double eps, float[] runningMean, float[] runningVar, double momentum, float[] y,
                         float[] saveMean, float[] saveInvstd) {
        forward(shape, x, mean, m2, m, gamma, beta, eps, runningMean, runningVar, momentum, y, saveMean, saveInvstd,
                false, null, null);
    }

    /** {@link #forward} with the fused ops' epilogue when {@code relu} (z and mask may be null). */
    private void forward(Shape shape, float[] x, double[] mean, double[] m2, long m, float[] gamma, float[] beta,
                         double eps, float[] runningMean, float[] runningVar, double momentum, float[] y,
                         float[] saveMean, float[] saveInvstd, boolean relu, float[] z, int[] mask) {
        int c = shape.channels();
        int len = coefficientLength(shape);
        float[] hi = new float[len];
        float[] scale = new float[len];
        float[] shift = new float[len];
        float[] invstdF = new float[c];
        loops.forwardCoefficients(mean, m2, m, gamma, beta, eps, hi, scale, shift, invstdF);
        if (relu) {
            applyRelu(shape, x, hi, scale, shift, y, z, mask, true);
        } else {
            apply(shape, x, hi, scale, shift, y, true);
        }
        finishForward(c, mean, m2, m, hi, invstdF, runningMean, runningVar, momentum, saveMean, saveInvstd);
    }

    /**
     * Channel k's y = (x − hi)·scale + shift: hi = (float) mean into hi[k], the float invstd into invstdF[k], scale
     * and shift into k3[1], k3[2]. mean = hi + lo, shift = beta − lo·scale: x·scale + (beta − mean·scale) would cancel
     * when |mean| ≫ std.
     */
    static void forwardCoefficients(int k, double[] mean, double[] m2, long m, float[] gamma, float[] beta,
                                            double eps, float[] hi, float[] invstdF, float[] k3) {
        double invstd = 1.0 / Math.sqrt(m2[k] / m + eps);
        double s = gammaOf(gamma, k) * invstd;
        hi[k] = (float) mean[k];
        k3[1] = (float) s;
        k3[2] = (float) (betaOf(beta, k) - (mean[k] - hi[k]) * s);
        invstdF[k] = (float) invstd;
    }

    /** The saved statistics and the running statistics of a training forward. */
    private void finishForward(int c, double[] mean, double[] m2, long m, float[] hi, float[] invstdF,
                               float[] runningMean, float[] runningVar, double momentum, float[] saveMean,
                               float[] saveInvstd) {
        System.arraycopy(hi, 0, saveMean, 0, c);
        System.arraycopy(invstdF, 0, saveInvstd, 0, c);
        if (runningMean != null) loops.updateRunning(mean, m2, m, momentum, runningMean, runningVar);
    }

    @Override
    protected void doForwardInference(Shape shape, float[] x, float[] gamma, float[] beta,
                                      float[] runningMean, float[] runningVar, double eps, float[] y) {
        inference(shape, x, gamma, beta, runningMean, runningVar, eps, y, false, null, null);
    }

    /** The eval forward, with the fused ops' epilogue when {@code relu} (z and mask may be null). */
    private void inference(Shape shape, float[] x, float[] gamma, float[] beta, float[] runningMean,
                           float[] runningVar, double eps, float[] y, boolean relu, float[] z, int[] mask) {
        int len = coefficientLength(shape);
        float[] scale = new float[len];
        float[] shift = new float[len];
        loops.inferenceCoefficients(gamma, beta, runningVar, eps, scale, shift);
        if (relu) {
            applyRelu(shape, x, runningMean, scale, shift, y, z, mask, false);
        } else {
            apply(shape, x, runningMean, scale, shift, y, false);
        }
    }

    @Override
    protected void doNormalize(Shape shape, float[] x, float[] gamma, float[] beta, float[] mean, float[] invstd,
                               float[] y) {
        int c = shape.channels();
        float[] scale = new float[c];
        float[] shift = new float[c];
        for (int k = 0; k < c; k++) {
            scale[k] = (float) (gammaOf(gamma, k) * invstd[k]);
            shift[k] = (float) betaOf(beta, k);
        }
        apply(shape, x, mean, scale, shift, y, false);
    }

    /**
     * y = (x − center)·scale + shift per channel, split across threads; {@code afterFirstPass}: x was just read by a
     * pass over the same pieces, so each piece is walked backwards by blocks ({@link #SECOND_PASS_BLOCK}).
     */
    private void apply(Shape shape, float[] x, float[] center, float[] scale, float[] shift, float[] y,
                       boolean afterFirstPass) {
        View v = view(shape);
        int tasks = tasksFor(v.size);
        int block = blockOf(v, afterFirstPass);
        float[] m = extended(v, center);
        float[] s = extended(v, scale);
        float[] h = extended(v, shift);
        runElementwise(v, tasks, block, (a, b) -> {
            if (v.channelsFirst) {
                loops.applyChannelsFirst(x, y, a, b, v.channels, v.inner, center, scale, shift);
            } else {
                loops.applyChannelsLast(x, y, a, b, v.channels, m, s, h);
            }
        });
    }

    /**
     * y = relu((x − center)·scale + shift (+ z)) and the mask: the elementwise pass and the fused ops' epilogue in one
     * walk, chunk by chunk, the epilogue reading back from cache the chunk of y just written (x, z read and y, mask
     * written once from memory, instead of y read and written again by a second pass). The results are the unfused
     * op's y followed by the epilogue, bit for bit. Chunks hold whole mask words, so each word is written by one
     * thread: channels-first a multiple of 32 elements, channels-last of 32 / gcd(C, 32) rows; about
     * {@link #SECOND_PASS_BLOCK} floats each, walked as {@link #runElementwise} walks them (after a first pass from
     * each piece's end).
     */
    private void applyRelu(Shape shape, float[] x, float[] center, float[] scale, float[] shift, float[] y, float[] z,
                           int[] mask, boolean afterFirstPass) {
        View v = view(shape);
        int rowFloats = v.channelsFirst ? 1 : v.channels;
        int unit = v.channelsFirst ? 32 : 32 / gcd(v.channels, 32); // elements or rows per whole number of words
        int total = v.channelsFirst ? v.size : v.rows;
        int steps = (total + unit - 1) / unit;
        int tasks = tasksFor(v.size);
        int chunk = Math.max(1, SECOND_PASS_BLOCK / (unit * rowFloats)); // steps per chunk
        boolean reversed = afterFirstPass && reverseSecondPass;
        float[] m = extended(v, center);
        float[] s = extended(v, scale);
        float[] h = extended(v, shift);
        AtomicIntegerArray started = new AtomicIntegerArray(tasks * COUNTER_STRIDE);
        run(tasks, t -> {
            for (int i = 0; i < tasks; i++) {
                int p = (t + i) % tasks;
                int lo = pieceStart(steps, p, tasks);
                int hi = pieceStart(steps, p + 1, tasks);
                int chunks = (hi - lo + chunk - 1) / chunk;
                for (int k; (k = started.getAndIncrement(p * COUNTER_STRIDE)) < chunks; ) {
                    int j = reversed ? chunks - 1 - k : k;
                    int a = (int) Math.min(total, (long) (lo + j * chunk) * unit);
                    int b = (int) Math.min(total, (long) Math.min(hi, lo + (j + 1) * chunk) * unit);
                    if (v.channelsFirst) {
                        loops.applyChannelsFirst(x, y, a, b, v.channels, v.inner, center, scale, shift);
                    } else {
                        loops.applyChannelsLast(x, y, a, b, v.channels, m, s, h);
                    }
                    loops.reluEpilogue(y, z, y, mask, a * rowFloats, b * rowFloats);
                }
            }
        });
    }

    private static int gcd(int a, int b) {
        while (b != 0) {
            int r = a % b;
            a = b;
            b = r;
        }
        return a;
    }

    /** An elementwise pass over the units [lo, hi) of a walk: elements channels-first, rows channels-last. */
    private interface RangePass {
        void run(int lo, int hi);
    }

    /**
     * Runs an elementwise pass over v split into the reductions' {@code tasks} pieces, each cut into chunks of {@code
     * block} units ({@link #blockOf}: from the end when the pass is reversed, else front to back): thread t walks the
     * chunks of piece t, then takes the chunks of the other pieces that no thread has started. A thread slowed down
     * (another process on its core, an interrupt) so hands the rest of its piece to the other, instead of the whole op
     * waiting for it; in a quiet window the eval pass over [64,128,56,56] took 7.2 ms in 32 chunks against 8.3 ms in
     * two fixed halves (medians; the fastest calls 6.8 ms both ways: the gain is the slow calls). Each element is
     * computed from its own inputs only, so which thread computes it does not change it: the same bits.
     */
    private void runElementwise(View v, int tasks, int block, RangePass pass) {
        int total = v.channelsFirst ? v.size : v.rows;
        if (tasks == 1 || pool == null) {
            for (int t = 0; t < tasks; t++) walkPiece(pieceStart(total, t, tasks), pieceStart(total, t + 1, tasks), block, pass);
            return;
        }
        boolean reversed = block != Integer.MAX_VALUE;
        int chunk = reversed ? block : chunkOf(v, total / tasks);
        AtomicIntegerArray started = new AtomicIntegerArray(tasks * COUNTER_STRIDE); // one cache line per piece
        run(tasks, t -> {
            for (int i = 0; i < tasks; i++) {
                int p = (t + i) % tasks;
                int lo = pieceStart(total, p, tasks);
                int hi = pieceStart(total, p + 1, tasks);
                int chunks = (int) (((long) hi - lo + chunk - 1) / chunk);
                for (int k; (k = started.getAndIncrement(p * COUNTER_STRIDE)) < chunks; ) {
                    if (reversed) {
                        int b = (int) (hi - (long) k * chunk);
                        pass.run(Math.max(lo, b - chunk), b);
                    } else {
                        int a = (int) (lo + (long) k * chunk);
                        pass.run(a, (int) Math.min(hi, (long) a + chunk));
                    }
                }
            }
        });
    }

    /** One piece in blocks of {@code block} units from its end (the whole piece when block is Integer.MAX_VALUE). */
    private static void walkPiece(int lo, int hi, int block, RangePass pass) {
        for (int b = hi; b > lo; ) {
            int a = Math.max(lo, b - block);
            pass.run(a, b);
            b = a;
        }
    }

    /**
     * Chunk length (units) of a front-to-back elementwise pass whose pieces hold {@code piece} units: a
     * {@link #CHUNKS_PER_PIECE}th of the piece, at least {@link #MIN_CHUNK_ELEMENTS} elements, whole row groups
     * channels-last ({@link PieceLoops#rowAlignment}).
     */
    private int chunkOf(View v, int piece) {
        int unitElements = v.channelsFirst ? 1 : v.channels;
        long chunk = Math.max((piece + CHUNKS_PER_PIECE - 1) / CHUNKS_PER_PIECE,
                (MIN_CHUNK_ELEMENTS + unitElements - 1) / unitElements);
        if (!v.channelsFirst) {
            int align = loops.rowAlignment(v.channels);
            chunk = (chunk + align - 1) / align * align;
        }
        return (int) Math.max(1, Math.min(chunk, Integer.MAX_VALUE));
    }

    /**
     * Length of the per-channel coefficient arrays of an elementwise pass over shape: C channels-first, the loops'
     * {@link PieceLoops#coefficientLength} channels-last (so that {@link #extended} fills them in place).
     */
    private int coefficientLength(Shape shape) {
        View v = view(shape);
        return v.channelsFirst ? v.channels : loops.coefficientLength(v.channels);
    }

    /**
     * Coefficients a (channel c at a[c]) as the elementwise pass over v takes them: a itself channels-first; extended
     * channels-last ({@link PieceLoops#extend}), in place when a has the extended length (this backend's scratch
     * arrays; a caller's array, e.g. the running mean, is C long and copied).
     */
    private float[] extended(View v, float[] a) {
        if (v.channelsFirst) return a;
        if (a.length == loops.coefficientLength(v.channels)) {
            PieceLoops.extendInPlace(a, v.channels);
            return a;
        }
        return loops.extend(a, v.channels);
    }

    /** Block length of a piece walk (elements channels-first, rows channels-last): the whole piece unless reversed. */
    private int blockOf(View v, boolean reversed) {
        if (!reversed || !reverseSecondPass) return Integer.MAX_VALUE;
        if (v.channelsFirst) return SECOND_PASS_BLOCK;
        int align = loops.rowAlignment(v.channels);
        int rows = Math.max(1, SECOND_PASS_BLOCK / v.channels);
        return (rows + align - 1) / align * align;
    }

    /** Σdy and Σdy·(x − center) per channel. */
    private double[][] gradientSums(Shape shape, float[] x, float[] dy, float[] center) {
        View v = view(shape);
        int c = v.channels;
        int channelTasks = channelTasks(v);
        if (channelTasks > 0) {
            double[] a = new double[c];
            double[] b = new double[c];
            int batches = v.size / (c * v.inner);
            run(channelTasks, t -> {
                double[] sums = new double[2];
                for (int k = channelStart(c, t, channelTasks); k < channelStart(c, t + 1, channelTasks); k++) {
                    loops.channelGradientSums(x, dy, k, batches, c, v.inner, center[k], sums);
                    a[k] = sums[0];
                    b[k] = sums[1];
                }
            });
            return new double[][] {a, b};
        }
        int tasks = tasksFor(v.size);
        double[][] sdy = new double[tasks][];
        double[][] sdyx = new double[tasks][];
        run(tasks, t -> {
            sdy[t] = partial(c);
            sdyx[t] = partial(c);
            if (v.channelsFirst) {
                loops.gradientSumsChannelsFirst(x, dy, pieceStart(v.size, t, tasks),
                        pieceStart(v.size, t + 1, tasks), c, v.inner, center, sdy[t], sdyx[t]);
            } else {
                loops.gradientSumsChannelsLast(x, dy, pieceStart(v.rows, t, tasks),
                        pieceStart(v.rows, t + 1, tasks), c, center, sdy[t], sdyx[t]);
            }
        });
        double[] a = new double[c];
        double[] b = new double[c];
        for (int t = 0; t < tasks; t++) { // fixed order: deterministic
            for (int k = 0; k < c; k++) {
                a[k] += sdy[t][k];
                b[k] += sdyx[t][k];
            }
        }
        return new double[][] {a, b};
    }

    @Override
    protected void doBackwardTraining(Shape shape, float[] x, float[] dy, float[] gamma, float[] saveMean,
                                      float[] saveInvstd, float[] dx, float[] dgamma, float[] dbeta) {
        View v = view(shape);
        int channelTasks = channelTasks(v);
        if (channelTasks > 0) {
            // Channel by channel: its sums, then its dx while its runs of x and dy are still in the core's caches.
            int c = v.channels;
            double m = v.count;
            int batches = v.size / (c * v.inner);
            run(channelTasks, t -> {
                double[] sums = new double[2];
                float[] k3 = new float[3];
                for (int k = channelStart(c, t, channelTasks); k < channelStart(c, t + 1, channelTasks); k++) {
                    loops.channelGradientSums(x, dy, k, batches, c, v.inner, saveMean[k], sums);
                    double sumDy = sums[0];
                    double sumDyXhat = sums[1] * saveInvstd[k]; // as doGradientSums
                    dxCoefficients(k, gamma, saveInvstd, m, sumDy, sumDyXhat, k3);
                    loops.channelDx(x, dy, dx, k, batches, c, v.inner, saveMean[k], k3[0], k3[1], k3[2]);
                    if (dgamma != null) dgamma[k] = (float) sumDyXhat;
                    if (dbeta != null) dbeta[k] = (float) sumDy;
                }
            });
            return;
        }
        double[][] sums = scaledGradientSums(shape, x, dy, saveMean, saveInvstd); // as doGradientSums
        dx(shape, x, dy, gamma, saveMean, saveInvstd, shape.reductionSize(), sums[0], sums[1], dx, true);
        int c = shape.channels();
        for (int k = 0; k < c; k++) {
            if (dgamma != null) dgamma[k] = (float) sums[1][k];
            if (dbeta != null) dbeta[k] = (float) sums[0][k];
        }
    }

    @Override
    protected GradientSums doGradientSums(Shape shape, float[] x, float[] dy, float[] saveMean, float[] saveInvstd) {
        double[][] sums = scaledGradientSums(shape, x, dy, saveMean, saveInvstd);
        return new GradientSums(shape.reductionSize(), sums[0], sums[1]);
    }

    /** Σdy and Σdy·xhat per channel: {@link #gradientSums(Shape, float[], float[], float[])} scaled by invstd. */
    private double[][] scaledGradientSums(Shape shape, float[] x, float[] dy, float[] saveMean,
                                          float[] saveInvstd) {
        double[][] sums = gradientSums(shape, x, dy, saveMean);
        double[] sumDyXhat = sums[1];
        for (int k = 0; k < sumDyXhat.length; k++) sumDyXhat[k] *= saveInvstd[k];
        return sums;
    }

    @Override
    protected void doBackwardWithSums(Shape shape, float[] x, float[] dy, float[] gamma, float[] saveMean,
                                      float[] saveInvstd, GradientSums sums, float[] dx) {
        dx(shape, x, dy, gamma, saveMean, saveInvstd, sums.count(), sums.sumDys(), sums.sumDyXhats(), dx, false);
    }

    /** Channel k's kdy, kx, k0 into k3 (the formula in {@link #dx}). */
    static void dxCoefficients(int k, float[] gamma, float[] saveInvstd, double m, double sumDy,
                                       double sumDyXhat, float[] k3) {
        double is = saveInvstd[k];
        double g = gammaOf(gamma, k);
        k3[0] = (float) (g * is);
        k3[1] = (float) (-g * is * is * sumDyXhat / m);
        k3[2] = (float) (-g * is * sumDy / m);
    }

    /** dx of the piece x from the sums of the whole batch (count M, Σdy, Σdy·xhat). */
    private void dx(Shape shape, float[] x, float[] dy, float[] gamma, float[] saveMean, float[] saveInvstd,
                    long count, double[] sumDy, double[] sumDyXhat, float[] dx, boolean afterFirstPass) {
        int c = shape.channels();
        double m = count;
        // dx = g·is/M·(M·dy − dbeta − xhat·dgamma) = dy·(g·is) + (x − mean)·(−g·is²·dgamma/M) + (−g·is·dbeta/M)
        int len = coefficientLength(shape);
        float[] kdy = new float[len];
        float[] kx = new float[len];
        float[] k0 = new float[len];
        loops.dxCoefficients(gamma, saveInvstd, m, sumDy, sumDyXhat, kdy, kx, k0);
        View v = view(shape);
        int tasks = tasksFor(v.size);
        int block = blockOf(v, afterFirstPass);
        float[] em = extended(v, saveMean);
        float[] ekdy = extended(v, kdy);
        float[] ekx = extended(v, kx);
        float[] ek0 = extended(v, k0);
        runElementwise(v, tasks, block, (a, b) -> {
            if (v.channelsFirst) {
                loops.dxChannelsFirst(x, dy, dx, a, b, c, v.inner, saveMean, kdy, kx, k0);
            } else {
                loops.dxChannelsLast(x, dy, dx, a, b, c, em, ekdy, ekx, ek0);
            }
        });
    }

    @Override
    protected void doBackwardInference(Shape shape, float[] x, float[] dy, float[] gamma, float[] runningMean,
                                       float[] runningVar, double eps, float[] dx, float[] dgamma, float[] dbeta) {
        int c = shape.channels();
        float[] kdy = new float[c];
        double[] invstd = new double[c];
        for (int k = 0; k < c; k++) {
            invstd[k] = 1.0 / Math.sqrt(runningVar[k] + eps);
            kdy[k] = (float) (gammaOf(gamma, k) * invstd[k]);
        }
        // dx = dy·kdy is elementwise, so it is written in the same pass that sums (3 S instead of 5 S). The sums read
        // dy before dx is written, so dx may even alias dy.
        View v = view(shape);
        int tasks = tasksFor(v.size);
        double[][] sdy = new double[tasks][];
        double[][] sdyx = new double[tasks][];
        run(tasks, t -> {
            sdy[t] = partial(c);
            sdyx[t] = partial(c);
            if (v.channelsFirst) {
                loops.evalBackwardChannelsFirst(x, dy, dx, pieceStart(v.size, t, tasks),
                        pieceStart(v.size, t + 1, tasks), c, v.inner, runningMean, kdy, sdy[t], sdyx[t]);
            } else {
                loops.evalBackwardChannelsLast(x, dy, dx, pieceStart(v.rows, t, tasks),
                        pieceStart(v.rows, t + 1, tasks), c, runningMean, kdy, sdy[t], sdyx[t]);
            }
        });
        for (int k = 0; k < c; k++) {
            double a = 0;
            double b = 0;
            for (int t = 0; t < tasks; t++) {
                a += sdy[t][k];
                b += sdyx[t][k];
            }
            if (dgamma != null) dgamma[k] = (float) (b * invstd[k]);
            if (dbeta != null) dbeta[k] = (float) a;
        }
    }

    // ---- fused batch norm + (add) + ReLU ---------------------------------------------------------------------------
    // The same results as BatchNormOps' composition, bit for bit (y of the unfused op, then the same float32 add and
    // comparison), without its scratch tensors: the epilogue runs on each chunk of y right after the elementwise
    // pass wrote it (applyRelu), and backward's gated dy goes to dz when the caller wants it (the CPU cannot fail
    // after validation, so writing dz first keeps outputs whole). Traffic (units of S): forward training 1 S
    // (statistics) + x and z read, y and the mask written: 4 S + S/32 (eval 3 S + S/32); backward training the gating
    // pass (read dy, write g) + 5 S.

    @Override
    protected void doForwardTrainingRelu(Shape shape, float[] x, float[] z, float[] gamma, float[] beta, double eps,
                                         float[] runningMean, float[] runningVar, double momentum, float[] y,
                                         int[] mask, float[] saveMean, float[] saveInvstd) {
        // The statistics as doForwardTraining computes them on every path (its channel walk sums each channel as
        // meanAndM2 does, and its per-channel coefficients are the vector loops' bit for bit), then y and the epilogue
        // in one pass.
        double[][] st = meanAndM2(shape, x);
        forward(shape, x, st[0], st[1], shape.reductionSize(), gamma, beta, eps, runningMean, runningVar, momentum, y,
                saveMean, saveInvstd, true, z, mask);
    }

    @Override
    protected void doForwardInferenceRelu(Shape shape, float[] x, float[] z, float[] gamma, float[] beta,
                                          float[] runningMean, float[] runningVar, double eps, float[] y,
                                          int[] mask) {
        inference(shape, x, gamma, beta, runningMean, runningVar, eps, y, true, z, mask);
    }

    @Override
    protected void doBackwardTrainingRelu(Shape shape, float[] x, float[] dy, int[] mask, float[] gamma,
                                          float[] saveMean, float[] saveInvstd, float[] dx, float[] dz,
                                          float[] dgamma, float[] dbeta) {
        float[] g = gated(dy, mask, dz);
        doBackwardTraining(shape, x, g, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
    }

    @Override
    protected void doBackwardInferenceRelu(Shape shape, float[] x, float[] dy, int[] mask, float[] gamma,
                                           float[] runningMean, float[] runningVar, double eps, float[] dx,
                                           float[] dz, float[] dgamma, float[] dbeta) {
        float[] g = gated(dy, mask, dz);
        doBackwardInference(shape, x, g, gamma, runningMean, runningVar, eps, dx, dgamma, dbeta);
    }

    /** dy gated by the mask, into dz when given (it is the residual's gradient), else into a scratch array. */
    private float[] gated(float[] dy, int[] mask, float[] dz) {
        float[] g = dz != null ? dz : new float[dy.length];
        int tasks = tasksFor(dy.length);
        run(tasks, t -> loops.gate(dy, mask, g, pieceStart(dy.length, t, tasks), pieceStart(dy.length, t + 1, tasks)));
        return g;
    }

    private static View view(Shape shape) {
        return new View(shape);
    }

    static double gammaOf(float[] gamma, int k) {
        return gamma == null ? 1.0 : gamma[k];
    }

    static double betaOf(float[] beta, int k) {
        return beta == null ? 0.0 : beta[k];
    }
}
