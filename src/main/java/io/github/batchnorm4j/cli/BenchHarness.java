package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.cpu.FloatCopy;
import java.lang.management.CompilationMXBean;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.LongSupplier;

/**
 * Timing for {@code batchnorm4j bench}, apart from the command line so that it can be tested: warm-up, the median of
 * repeated wall-clock timings, S-based bandwidth, and the machine's copy bandwidth measured the same way.
 *
 * <p>Units: times in milliseconds, bandwidth in GB/s (10^9 bytes per second).
 */
public final class BenchHarness {
    /** Warm-up runs before timing, at least (JIT compilation, page faults of fresh arrays, GPU clocks). */
    public static final int MIN_WARMUP_RUNS = 2;
    /**
     * Default warm-up: runs continue until this much time passed, however many runs that takes. A run count cap cut
     * the warm-up of small tensors to milliseconds, before the JIT had compiled the loops: [256,1024] backward read
     * 0.75 ms at 15 repeats and 0.28 ms at 1000 (the Vector API loops are slower still until C2 compiles them).
     */
    public static final long DEFAULT_WARMUP_NANOS = 500_000_000L;
    /**
     * After the warm-up time, runs go on until the JIT has finished no compilation for this long (and {@link
     * #JIT_QUIET_RUNS} runs): the JVM's total compilation time ({@link CompilationMXBean}) moves each time a method's
     * compilation ends. On 2 cores busy with the op, C2 compiled the CPU backend's loops of forward training on
     * [64,128,56,56] seconds after the first call (-XX:+PrintCompilation), and bench timed that op at 71-83% of the
     * copy after 0.5 s of warm-up against 82-91% after 2 s, in one quiet window (docs/cpu-performance.md).
     */
    public static final long JIT_QUIET_NANOS = 200_000_000L;
    /** Runs without a finished compilation, at least, that end the warm-up (see {@link #JIT_QUIET_NANOS}). */
    public static final int JIT_QUIET_RUNS = 3;
    /** The wait for a quiet JIT ends after this long past the warm-up time, quiet or not. */
    public static final long MAX_JIT_WAIT_NANOS = 10_000_000_000L;

    /** The JVM's total compilation time in ms, or null where the JVM does not report it. */
    private static final LongSupplier JIT_TIME = jitTime();

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

    /** {@link #time(Runnable, int, long)} with the default warm-up, {@link #DEFAULT_WARMUP_NANOS}. */
    public static Timing time(Runnable op, int repeats) {
        return time(op, repeats, DEFAULT_WARMUP_NANOS);
    }

    /**
     * Runs {@code op} for warm-up (at least {@link #MIN_WARMUP_RUNS} runs and {@code warmupNanos}, whatever the run
     * count, then, unless {@code warmupNanos} is 0, until the JIT is quiet: {@link #JIT_QUIET_NANOS}), then {@code
     * repeats} more times, each timed alone.
     */
    public static Timing time(Runnable op, int repeats, long warmupNanos) {
        if (repeats < 1) throw new IllegalArgumentException("repeat: expected >= 1, got " + repeats);
        if (warmupNanos < 0) throw new IllegalArgumentException("warmup: expected >= 0, got " + warmupNanos + " ns");
        int warmups = warmUp(op, warmupNanos);
        double[] ms = new double[repeats];
        for (int r = 0; r < repeats; r++) ms[r] = timeOnce(op);
        return timing(ms, warmups);
    }

    private static int warmUp(Runnable op, long warmupNanos) {
        return warmUp(op, warmupNanos, JIT_TIME);
    }

    /**
     * The warm-up of {@link #time(Runnable, int, long)} with {@code jitTime} (the JVM's total compilation time; null:
     * not known, the warm-up is by time only).
     */
    static int warmUp(Runnable op, long warmupNanos, LongSupplier jitTime) {
        int warmups = 0;
        long start = System.nanoTime();
        boolean watch = jitTime != null && warmupNanos > 0;
        long compiled = watch ? jitTime.getAsLong() : 0;
        long quietSince = start;
        int quietRuns = 0;
        while (true) {
            long now = System.nanoTime();
            if (warmups >= MIN_WARMUP_RUNS && now - start >= warmupNanos
                    && (!watch || quietRuns >= JIT_QUIET_RUNS && now - quietSince >= JIT_QUIET_NANOS
                        || now - start >= warmupNanos + MAX_JIT_WAIT_NANOS)) {
                return warmups;
            }
            op.run();
            warmups++;
            if (watch) {
                long c = jitTime.getAsLong();
                if (c != compiled) {
                    compiled = c;
                    quietSince = System.nanoTime();
                    quietRuns = 0;
                } else {
                    quietRuns++;
                }
            }
        }
    }

    private static LongSupplier jitTime() {
        CompilationMXBean jit = ManagementFactory.getCompilationMXBean();
        return jit != null && jit.isCompilationTimeMonitoringSupported() ? jit::getTotalCompilationTime : null;
    }

    private static double timeOnce(Runnable op) {
        long t0 = System.nanoTime();
        op.run();
        return (System.nanoTime() - t0) / 1e6;
    }

    private static Timing timing(double[] ms, int warmups) {
        return new Timing(median(ms), Arrays.stream(ms).min().orElseThrow(), ms.length, warmups);
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
     * @param method  how the bytes were copied ("System.arraycopy", "on the device", ...)
     * @param others  the other methods tried, as "method: GB/s", slowest first (empty when only one was tried)
     */
    public record CopyBandwidth(long bytes, int threads, Timing timing, String method, List<String> others) {
        /** A measurement of a single method. */
        public CopyBandwidth(long bytes, int threads, Timing timing, String method) {
            this(bytes, threads, timing, method, List.of());
        }

        /** (bytes read + bytes written) / median time, in GB/s. */
        public double gbps() {
            return BenchHarness.gbps(2.0 * bytes, timing.medianMs());
        }
    }

    /** {@link #measureCopy(long, int, int, long)} with the default warm-up. */
    public static CopyBandwidth measureCopy(long bytes, int threads, int repeats) {
        return measureCopy(bytes, threads, repeats, DEFAULT_WARMUP_NANOS);
    }

    /**
     * Measures the machine's copy bandwidth as the fastest of the ways Java can copy a float[] of {@code bytes}
     * (rounded down to whole floats) into another: {@link System#arraycopy} and, where the Vector API is present,
     * {@link FloatCopy} (stores on cache-line boundaries), each on the calling thread and split into
     * contiguous slices across up to {@code threads} threads (at least {@link #MIN_COPY_SLICE_BYTES} each), timed in
     * alternating rounds so that background load hits them alike; the fastest median is the reference. bench passes S,
     * the size of x, and all cores: the copy then meets the same caches and the same parallelism as the ops it is
     * compared with (a tensor that fits in the last-level cache is compared with a copy that fits too, one that does
     * not with a copy from memory). Counts bytes read + bytes written. (What else was measured, and how far this is
     * from a C copy on the same machine: docs/cpu-performance.md.)
     */
    public static CopyBandwidth measureCopy(long bytes, int threads, int repeats, long warmupNanos) {
        if (threads < 1) throw new IllegalArgumentException("threads: expected >= 1, got " + threads);
        if (bytes < Float.BYTES) throw new IllegalArgumentException("bytes: expected >= 4, got " + bytes);
        if (repeats < 1) throw new IllegalArgumentException("repeat: expected >= 1, got " + repeats);
        int n = (int) Math.min(bytes / Float.BYTES, Integer.MAX_VALUE - 8);
        int used = (int) Math.max(1, Math.min(threads, (long) n * Float.BYTES / MIN_COPY_SLICE_BYTES));
        float[] src = new float[n];
        float[] dst = new float[n];
        for (int i = 0; i < n; i++) src[i] = i + 1; // touch every page before timing; never zeros
        ExecutorService pool = used == 1 ? null : Executors.newFixedThreadPool(used - 1, r -> {
            Thread t = new Thread(r, "bench-copy");
            t.setDaemon(true);
            return t;
        });
        try {
            List<String> names = new ArrayList<>();
            List<Runnable> ways = new ArrayList<>();
            List<Integer> threadCounts = new ArrayList<>();
            names.add("System.arraycopy, 1 thread");
            ways.add(() -> System.arraycopy(src, 0, dst, 0, n));
            threadCounts.add(1);
            if (used > 1) {
                names.add("System.arraycopy, " + used + " threads");
                ways.add(() -> parallelCopy(pool, src, dst, used, false));
                threadCounts.add(used);
            }
            if (FloatCopy.vectorized()) { // vector stores on cache-line boundaries: faster from memory (FloatCopy)
                names.add("vector copy, 1 thread");
                ways.add(() -> FloatCopy.copy(src, dst, 0, n));
                threadCounts.add(1);
                if (used > 1) {
                    names.add("vector copy, " + used + " threads");
                    ways.add(() -> parallelCopy(pool, src, dst, used, true));
                    threadCounts.add(used);
                }
            }
            int k = ways.size();
            int[] warmups = new int[k];
            for (int w = 0; w < k; w++) warmups[w] = warmUp(ways.get(w), warmupNanos / k);
            double[][] ms = new double[k][repeats];
            for (int r = 0; r < repeats; r++) {
                for (int w = 0; w < k; w++) ms[w][r] = timeOnce(ways.get(w));
            }
            checkCopied(src, dst);
            Integer[] order = new Integer[k];
            for (int w = 0; w < k; w++) order[w] = w;
            Arrays.sort(order, (a, b) -> Double.compare(median(ms[b]), median(ms[a]))); // slowest first
            int best = order[k - 1];
            List<String> others = new ArrayList<>();
            for (int i = 0; i < k - 1; i++) {
                others.add(String.format(Locale.ROOT, "%s: %.3g GB/s", names.get(order[i]),
                        gbps(2.0 * n * Float.BYTES, median(ms[order[i]]))));
            }
            return new CopyBandwidth((long) n * Float.BYTES, threadCounts.get(best), timing(ms[best], warmups[best]),
                    names.get(best), others);
        } finally {
            if (pool != null) pool.shutdownNow();
        }
    }

    private static void checkCopied(float[] src, float[] dst) {
        int n = src.length;
        if (dst[n - 1] != src[n - 1] || dst[n / 2] != src[n / 2] || dst[0] != src[0]) {
            throw new IllegalStateException("copy bandwidth: the copy did not happen");
        }
    }

    private static void copy(float[] src, float[] dst, int from, int to, boolean vector) {
        if (vector) {
            FloatCopy.copy(src, dst, from, to);
        } else {
            System.arraycopy(src, from, dst, from, to - from);
        }
    }

    /** Slice 0 on the calling thread, the others on the pool's threads. */
    private static void parallelCopy(ExecutorService pool, float[] src, float[] dst, int threads, boolean vector) {
        List<Future<?>> parts = new ArrayList<>(threads);
        int n = src.length;
        for (int t = 1; t < threads; t++) {
            int from = (int) ((long) n * t / threads);
            int to = (int) ((long) n * (t + 1) / threads);
            parts.add(pool.submit(() -> copy(src, dst, from, to, vector)));
        }
        copy(src, dst, 0, (int) ((long) n / threads), vector);
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
