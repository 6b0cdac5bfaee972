package io.github.batchnorm4j.cli;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Timing for {@code batchnorm4j bench}, apart from the command line so that it can be tested: warm-up, the median of
 * repeated wall-clock timings, S-based bandwidth, and the machine's copy bandwidth measured the same way.
 *
 * <p>Units: times in milliseconds, bandwidth in GB/s (10^9 bytes per second).
 */
public final class BenchHarness {
    /** Warm-up runs before timing, at least (JIT compilation, page faults of fresh arrays, GPU clocks). */
    public static final int MIN_WARMUP_RUNS = 2;
    /** Warm-up continues until this much time passed (or {@link #MAX_WARMUP_RUNS}). */
    public static final long MIN_WARMUP_NANOS = 300_000_000L;
    /** Upper bound on warm-up runs. */
    public static final int MAX_WARMUP_RUNS = 50;
    /** Each copying thread gets at least this many bytes: below it, handing work to a thread costs more than it saves. */
    public static final long MIN_COPY_SLICE_BYTES = 1 << 20;

    private BenchHarness() {
    }

    /**
     * Timings of one operation.
     *
     * @param medianMs the median of {@code repeats} timings
     * @param minMs    the fastest timing
     * @param repeats  how many timings
     * @param warmups  warm-up runs before them
     */
    public record Timing(double medianMs, double minMs, int repeats, int warmups) {
    }

    /**
     * Runs {@code op} for warm-up (at least {@link #MIN_WARMUP_RUNS} and {@link #MIN_WARMUP_NANOS}), then
     * {@code repeats} more times, each timed alone.
     */
    public static Timing time(Runnable op, int repeats) {
        if (repeats < 1) throw new IllegalArgumentException("repeat: expected >= 1, got " + repeats);
        int warmups = 0;
        long start = System.nanoTime();
        while (warmups < MIN_WARMUP_RUNS
                || (System.nanoTime() - start < MIN_WARMUP_NANOS && warmups < MAX_WARMUP_RUNS)) {
            op.run();
            warmups++;
        }
        double[] ms = new double[repeats];
        for (int r = 0; r < repeats; r++) {
            long t0 = System.nanoTime();
            op.run();
            ms[r] = (System.nanoTime() - t0) / 1e6;
        }
        return new Timing(median(ms), Arrays.stream(ms).min().orElseThrow(), repeats, warmups);
    }

    /** The median (the mean of the two middle values for an even count). */
    public static double median(double[] values) {
        if (values.length == 0) throw new IllegalArgumentException("median of no values");
        double[] v = values.clone();
        Arrays.sort(v);
        int h = v.length / 2;
        return v.length % 2 == 1 ? v[h] : (v[h - 1] + v[h]) / 2;
    }

    /** Bandwidth in GB/s of moving {@code bytes} in {@code ms} milliseconds. */
    public static double gbps(double bytes, double ms) {
        return bytes / (ms * 1e-3) / 1e9;
    }

    /**
     * A copy-bandwidth measurement.
     *
     * @param bytes   bytes of the source array (as many again are written)
     * @param threads host threads sharing the copy, or 0 for a copy on a device
     * @param timing  timings of one full copy
     */
    public record CopyBandwidth(long bytes, int threads, Timing timing) {
        /** (bytes read + bytes written) / median time, in GB/s. */
        public double gbps() {
            return BenchHarness.gbps(2.0 * bytes, timing.medianMs());
        }
    }

    /**
     * Measures the machine's copy bandwidth: a float[] of {@code bytes} (rounded down to whole floats) copied into
     * another by up to {@code threads} threads (fewer for small arrays: at least {@link #MIN_COPY_SLICE_BYTES} each,
     * and a single slice is copied on the calling thread), each {@link System#arraycopy} of its contiguous slice. bench passes S, the
     * size of x, and all cores: the copy then meets the same caches and the same parallelism as the ops it is
     * compared with (a tensor that fits in the last-level cache is compared with a copy that fits too, one that does
     * not with a copy from memory). Counts bytes read + bytes written.
     */
    public static CopyBandwidth measureCopy(long bytes, int threads, int repeats) {
        if (threads < 1) throw new IllegalArgumentException("threads: expected >= 1, got " + threads);
        if (bytes < Float.BYTES) throw new IllegalArgumentException("bytes: expected >= 4, got " + bytes);
        int n = (int) Math.min(bytes / Float.BYTES, Integer.MAX_VALUE - 8);
        int used = (int) Math.max(1, Math.min(threads, (long) n * Float.BYTES / MIN_COPY_SLICE_BYTES));
        float[] src = new float[n];
        float[] dst = new float[n];
        for (int i = 0; i < n; i++) src[i] = i + 1; // touch every page before timing; never zeros
        if (used == 1) {
            Timing t = time(() -> System.arraycopy(src, 0, dst, 0, n), repeats);
            checkCopied(src, dst);
            return new CopyBandwidth((long) n * Float.BYTES, 1, t);
        }
        ExecutorService pool = Executors.newFixedThreadPool(used, r -> {
            Thread t = new Thread(r, "bench-copy");
            t.setDaemon(true);
            return t;
        });
        try {
            Runnable copy = () -> parallelCopy(pool, src, dst, used);
            Timing t = time(copy, repeats);
            checkCopied(src, dst);
            return new CopyBandwidth((long) n * Float.BYTES, used, t);
        } finally {
            pool.shutdownNow();
        }
    }

    private static void checkCopied(float[] src, float[] dst) {
        int n = src.length;
        if (dst[n - 1] != src[n - 1] || dst[n / 2] != src[n / 2] || dst[0] != src[0]) {
            throw new IllegalStateException("copy bandwidth: the copy did not happen");
        }
    }

    private static void parallelCopy(ExecutorService pool, float[] src, float[] dst, int threads) {
        List<Future<?>> parts = new ArrayList<>(threads);
        int n = src.length;
        for (int t = 0; t < threads; t++) {
            int from = (int) ((long) n * t / threads);
            int to = (int) ((long) n * (t + 1) / threads);
            parts.add(pool.submit(() -> System.arraycopy(src, from, dst, from, to - from)));
        }
        try {
            for (Future<?> f : parts) f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("copy bandwidth: interrupted", e);
        } catch (ExecutionException e) {
            throw new IllegalStateException("copy bandwidth: " + e.getCause(), e.getCause());
        }
    }
}
