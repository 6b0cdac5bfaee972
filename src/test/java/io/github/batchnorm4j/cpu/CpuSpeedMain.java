package io.github.batchnorm4j.cpu;

import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.testing.Reference64;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;

/**
 * A benchmark, not a test: median times of the CPU backend's forward training and backward (training mode) on one
 * shape in both layouts, and this machine's copy bandwidth measured in the same run, so every figure reads as a
 * fraction of it.
 *
 * <p>Effective bandwidth is S-based (docs/design.md §3): forward training counts 3 S, backward 5 S, S = bytes of x.
 * Copy bandwidth counts bytes read + written of a float array of S bytes, copied with System.arraycopy by one thread
 * and by the backend's thread count (each thread a contiguous slice); the larger is the denominator. The measurements
 * run round robin (copy, copy, forward, backward per layout, repeated), so a shared machine's background load hits them
 * alike. Before timing, each layout's saved mean and invstd are validated against the float64 reference.
 *
 * <pre>
 * mvn -q -B -o test-compile
 * java -Xmx4g -cp target/classes:target/test-classes io.github.batchnorm4j.cpu.CpuSpeedMain [repeat] [threads] [N,C,H,W]
 * </pre>
 */
public final class CpuSpeedMain {
    private CpuSpeedMain() {
    }

    public static void main(String[] args) {
        int repeat = args.length > 0 ? Integer.parseInt(args[0]) : 20;
        int threads = args.length > 1 ? Integer.parseInt(args[1]) : Runtime.getRuntime().availableProcessors();
        String dims = args.length > 2 ? args[2] : "32,64,56,56";
        Shape cf = Shape.parse(Layout.CHANNELS_FIRST, dims);
        long[] d = cf.dims();
        long[] last = new long[d.length];
        last[0] = d[0];
        System.arraycopy(d, 2, last, 1, d.length - 2);
        last[d.length - 1] = d[1];
        Shape cl = Shape.channelsLast(last);
        int n = cf.elementCountAsInt();
        double bytes = 4.0 * n; // S
        System.out.printf("shape %s, S = %.1f MB, threads %d, repeat %d, java %s, %d processors%n",
                dims, bytes / 1e6, threads, repeat, System.getProperty("java.version"),
                Runtime.getRuntime().availableProcessors());

        SplittableRandom rng = new SplittableRandom(42);
        float[] x = new float[n];
        float[] dy = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (0.5 + 2 * (rng.nextDouble() - 0.5));
            dy[i] = (float) (rng.nextDouble() - 0.5);
        }
        float[] out = new float[n];

        ForkJoinPool copyPool = new ForkJoinPool(threads);
        try (CpuBatchNormOps ops = new CpuBatchNormOps(threads)) {
            Shape[] shapes = {cf, cl};
            int c = cf.channels();
            float[] gamma = new float[c];
            float[] beta = new float[c];
            Arrays.fill(gamma, 1.25f);
            Arrays.fill(beta, 0.5f);
            float[] rm = new float[c];
            float[] rv = new float[c];
            float[] sm = new float[c];
            float[] si = new float[c];
            float[] dg = new float[c];
            float[] db = new float[c];
            int perShape = 5;
            Runnable[] work = new Runnable[2 + perShape * shapes.length];
            work[0] = () -> System.arraycopy(x, 0, out, 0, n);
            // With one thread the "parallel" copy runs on the calling thread too, so its CPU time is measurable.
            work[1] = threads == 1 ? work[0] : () -> parallelCopy(copyPool, threads, x, out);
            for (int s = 0; s < shapes.length; s++) {
                Shape shape = shapes[s];
                validate(ops, shape, x, gamma, beta, out, sm, si);
                int w = 2 + perShape * s;
                work[w] = () -> ops.forwardTraining(shape, x, gamma, beta, 1e-5, rm, rv, 0.1, out, sm, si);
                work[w + 1] = () -> ops.backwardTraining(shape, x, dy, gamma, sm, si, out, dg, db);
                work[w + 2] = () -> ops.statistics(shape, x);
                work[w + 3] = () -> ops.forwardInference(shape, x, gamma, beta, sm, si, 1e-5, out);
                work[w + 4] = () -> ops.backwardInference(shape, x, dy, gamma, sm, si, 1e-5, out, dg, db);
            }
            // Round robin: every measurement sees the same background load (this machine is shared), so the
            // ratios are fair even when absolute figures wander.
            long[][] t = new long[work.length][repeat];
            long[][] cpuT = new long[work.length][repeat];
            java.lang.management.ThreadMXBean tmx = java.lang.management.ManagementFactory.getThreadMXBean();
            long cpu0 = processCpuNanos();
            long wall0 = System.nanoTime();
            for (int rep = -Math.max(3, repeat / 4); rep < repeat; rep++) {
                for (int w = 0; w < work.length; w++) {
                    long c0 = tmx.getCurrentThreadCpuTime();
                    long t0 = System.nanoTime();
                    work[w].run();
                    long dt = System.nanoTime() - t0;
                    long dc = tmx.getCurrentThreadCpuTime() - c0;
                    if (rep >= 0) {
                        t[w][rep] = dt;
                        cpuT[w][rep] = dc;
                    }
                }
            }
            double cpuShare = (processCpuNanos() - cpu0) / (double) (System.nanoTime() - wall0);
            report("wall-clock medians", t, shapes, perShape, bytes, threads);
            if (threads == 1) {
                // With one thread everything runs on the calling thread, so its CPU time is the time the work took
                // on a core, whatever else the (shared) machine was doing meanwhile.
                report("calling-thread CPU-time medians (load-independent, threads = 1 only)", cpuT, shapes, perShape,
                        bytes, threads);
            }
            System.out.printf("process CPU time / wall time while timing: %.2f cores (of %d threads asked)%n",
                    cpuShare, threads);
        } finally {
            copyPool.shutdown();
        }
    }

    private static void report(String title, long[][] t, Shape[] shapes, int perShape, double bytes, int threads) {
        {
            System.out.println("-- " + title);
            double copy1 = 2 * bytes / median(t[0]);
            double copyT = 2 * bytes / median(t[1]);
            double copy = Math.max(copy1, copyT);
            System.out.printf("copy            1 thread %6.1f GB/s, %d threads %6.1f GB/s  -> reference %.1f GB/s%n",
                    copy1, threads, copyT, copy);
            for (int s = 0; s < shapes.length; s++) {
                int w = 2 + perShape * s;
                double fwd = median(t[w]);
                double bwd = median(t[w + 1]);
                double fwdGbps = 3 * bytes / fwd;
                double bwdGbps = 5 * bytes / bwd;
                System.out.printf("%-15s forward-train %7.2f ms %6.1f GB/s (%3.0f%% of copy)   backward %7.2f ms %6.1f"
                                + " GB/s (%3.0f%% of copy)%n", shapes[s].layout().cliName(), fwd / 1e6, fwdGbps,
                        100 * fwdGbps / copy, bwd / 1e6, bwdGbps, 100 * bwdGbps / copy);
                System.out.printf("%-15s   passes: statistics (1 S) %6.1f GB/s, forward-eval (2 S) %6.1f GB/s,"
                                + " backward-eval (3 S) %6.1f GB/s%n", "", bytes / median(t[w + 2]),
                        2 * bytes / median(t[w + 3]), 3 * bytes / median(t[w + 4]));
            }
        }
    }

    private static long processCpuNanos() {
        java.lang.management.OperatingSystemMXBean os = java.lang.management.ManagementFactory.getOperatingSystemMXBean();
        return os instanceof com.sun.management.OperatingSystemMXBean sun ? sun.getProcessCpuTime() : 0;
    }

    private static double median(long[] v) {
        long[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2.0;
    }

    /** Saved mean and invstd of one forward against the float64 reference (1e-5 relative), before any timing. */
    private static void validate(CpuBatchNormOps ops, Shape shape, float[] x, float[] gamma, float[] beta, float[] y,
                                 float[] sm, float[] si) {
        ops.forwardTraining(shape, x, gamma, beta, 1e-5, null, null, 0, y, sm, si);
        double[] mean = Reference64.mean(shape, x);
        double[] m2 = Reference64.m2(shape, x, mean);
        for (int c = 0; c < shape.channels(); c++) {
            double invstd = 1 / Math.sqrt(m2[c] / shape.reductionSize() + 1e-5);
            if (Math.abs(sm[c] - mean[c]) > 1e-5 * (1 + Math.abs(mean[c]))
                    || Math.abs(si[c] - invstd) > 1e-5 * invstd) {
                throw new IllegalStateException("validation failed for " + shape + " channel " + c + ": mean "
                        + sm[c] + " vs " + mean[c] + ", invstd " + si[c] + " vs " + invstd);
            }
        }
    }

    private static void parallelCopy(ForkJoinPool pool, int threads, float[] src, float[] dst) {
        ForkJoinTask<?>[] tasks = new ForkJoinTask<?>[threads];
        for (int t = 0; t < threads; t++) {
            int lo = (int) ((long) src.length * t / threads);
            int hi = (int) ((long) src.length * (t + 1) / threads);
            tasks[t] = pool.submit(() -> System.arraycopy(src, lo, dst, lo, hi - lo));
        }
        for (ForkJoinTask<?> f : tasks) f.join();
    }

}
