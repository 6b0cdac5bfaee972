package io.github.batchnorm4j.cpu;

import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.testing.Reference64;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A benchmark, not a test: A/B timings of the CPU backend's loops (scalar {@link ElementLoops} against the Vector
 * API's {@link VectorLoops}), interleaved call by call in one process so that a shared machine's background load hits
 * every variant alike; the copy reference of the same size is timed in the same rounds.
 *
 * <p>Each round runs, for every layout and op, one call of every variant (in rotating order). Reported per variant:
 * the median wall time, GB/s under the S-based accounting of bench (statistics 1 S, forward-train 3 S, forward-eval
 * 2 S, backward 5 S, backward-eval 3 S; S = bytes of x) and, with one thread, the median CPU time of the calling
 * thread, which a loaded machine inflates much less than wall time. Before timing, every variant's saved mean and
 * invstd are validated against the float64 reference.
 *
 * <pre>
 * mvn -q -B -o test-compile
 * java --add-modules jdk.incubator.vector -Xmx4g -cp target/classes:target/test-classes \
 *     io.github.batchnorm4j.cpu.CpuSpeedMain [repeat] [threads] [N,C,H,W] [variants] [ops]
 * </pre>
 * variants: comma-separated scalar, vector, vector-forward (vector with second passes front to back),
 * vector-pieces (vector, channels-first always in pieces, never channel by channel; default:
 * scalar and vector when the module is present); ops: comma-separated
 * statistics, forward-train, forward-eval, backward, backward-eval (default all).
 */
public final class CpuSpeedMain {
    private CpuSpeedMain() {
    }

    private static final String[] ALL_OPS = {"statistics", "forward-train", "forward-eval", "backward",
        "backward-eval"};

    public static void main(String[] args) {
        int repeat = args.length > 0 ? Integer.parseInt(args[0]) : 20;
        int threads = args.length > 1 ? Integer.parseInt(args[1]) : Runtime.getRuntime().availableProcessors();
        String dims = args.length > 2 ? args[2] : "32,64,56,56";
        String[] variants = args.length > 3 ? args[3].split(",")
                : CpuBatchNormOps.VECTOR_AVAILABLE ? new String[] {"scalar", "vector"} : new String[] {"scalar"};
        String[] ops = args.length > 4 ? args[4].split(",") : ALL_OPS;
        Shape cf = Shape.parse(Layout.CHANNELS_FIRST, dims);
        long[] d = cf.dims();
        List<Shape> shapes = new ArrayList<>();
        if (d.length > 2) shapes.add(cf);
        long[] last = new long[d.length];
        last[0] = d[0];
        System.arraycopy(d, 2, last, 1, d.length - 2);
        last[d.length - 1] = d[1];
        shapes.add(Shape.channelsLast(last));
        int n = cf.elementCountAsInt();
        double bytes = 4.0 * n; // S
        System.out.printf("shape %s, S = %.2f MB, threads %d, repeat %d, java %s, %d processors, load %s%n",
                dims, bytes / 1e6, threads, repeat, System.getProperty("java.version"),
                Runtime.getRuntime().availableProcessors(), loadAverage());

        SplittableRandom rng = new SplittableRandom(42);
        float[] x = new float[n];
        float[] dy = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (0.5 + 2 * (rng.nextDouble() - 0.5));
            dy[i] = (float) (rng.nextDouble() - 0.5);
        }
        float[] out = new float[n];
        int c = cf.channels();
        float[] gamma = new float[c];
        float[] beta = new float[c];
        Arrays.fill(gamma, 1.25f);
        Arrays.fill(beta, 0.5f);
        float[] rm = new float[c];
        float[] rv = new float[c];
        Arrays.fill(rv, 1f);
        float[] sm = new float[c];
        float[] si = new float[c];
        float[] dg = new float[c];
        float[] db = new float[c];

        CpuBatchNormOps[] impl = new CpuBatchNormOps[variants.length];
        for (int v = 0; v < variants.length; v++) {
            impl[v] = switch (variants[v]) {
                case "scalar" -> new CpuBatchNormOps(threads, CpuBatchNormOps.MIN_ELEMENTS_PER_TASK, false);
                case "vector" -> new CpuBatchNormOps(threads, CpuBatchNormOps.MIN_ELEMENTS_PER_TASK, true);
                case "vector-forward" -> new CpuBatchNormOps(threads, CpuBatchNormOps.MIN_ELEMENTS_PER_TASK, true,
                        false, true);
                case "vector-pieces" -> new CpuBatchNormOps(threads, CpuBatchNormOps.MIN_ELEMENTS_PER_TASK, true,
                        true, false);
                default -> throw new IllegalArgumentException("variant: scalar, vector, vector-forward (second "
                        + "passes front to back) or vector-pieces (no channel-wise walk), got " + variants[v]);
            };
        }
        // work[layout][op][variant]
        Runnable[][][] work = new Runnable[shapes.size()][ops.length][variants.length];
        for (int s = 0; s < shapes.size(); s++) {
            Shape shape = shapes.get(s);
            for (int v = 0; v < variants.length; v++) {
                CpuBatchNormOps o = impl[v];
                validate(o, shape, x, gamma, beta, out, sm, si);
                for (int k = 0; k < ops.length; k++) {
                    work[s][k][v] = switch (ops[k]) {
                        case "statistics" -> () -> o.statistics(shape, x);
                        case "forward-train" -> () -> o.forwardTraining(shape, x, gamma, beta, 1e-5, rm, rv, 0.1,
                                out, sm, si);
                        case "forward-eval" -> () -> o.forwardInference(shape, x, gamma, beta, sm, si, 1e-5, out);
                        case "backward" -> () -> o.backwardTraining(shape, x, dy, gamma, sm, si, out, dg, db);
                        case "backward-eval" -> () -> o.backwardInference(shape, x, dy, gamma, sm, si, 1e-5, out, dg,
                                db);
                        default -> throw new IllegalArgumentException("op: unknown " + ops[k]);
                    };
                }
            }
        }
        ThreadMXBean tmx = ManagementFactory.getThreadMXBean();
        long[][][] wall = new long[shapes.size()][ops.length][variants.length * repeat];
        long[][][] cpu = new long[shapes.size()][ops.length][variants.length * repeat];
        long[] copyWall = new long[repeat];
        for (int rep = -Math.max(5, repeat / 4); rep < repeat; rep++) {
            long t0 = System.nanoTime();
            System.arraycopy(x, 0, out, 0, n);
            if (rep >= 0) copyWall[rep] = System.nanoTime() - t0;
            for (int s = 0; s < shapes.size(); s++) {
                for (int k = 0; k < ops.length; k++) {
                    for (int j = 0; j < variants.length; j++) {
                        int v = Math.floorMod(j + rep, variants.length); // rotate who goes first
                        long c0 = tmx.getCurrentThreadCpuTime();
                        long w0 = System.nanoTime();
                        work[s][k][v].run();
                        long dw = System.nanoTime() - w0;
                        long dc = tmx.getCurrentThreadCpuTime() - c0;
                        if (rep >= 0) {
                            wall[s][k][v * repeat + rep] = dw;
                            cpu[s][k][v * repeat + rep] = dc;
                        }
                    }
                }
            }
        }
        double copy = 2 * bytes / median(copyWall);
        System.out.printf("copy (System.arraycopy, 1 thread, same rounds): %.1f GB/s; load at end %s%n", copy,
                loadAverage());
        System.out.printf("%-15s %-14s %-8s %10s %8s %10s %8s%n", "layout", "op", "variant", "wall ms", "GB/s",
                threads == 1 ? "cpu ms" : "", threads == 1 ? "cpu GB/s" : "");
        for (int s = 0; s < shapes.size(); s++) {
            for (int k = 0; k < ops.length; k++) {
                double units = switch (ops[k]) {
                    case "statistics" -> 1;
                    case "forward-train", "backward-eval" -> 3;
                    case "forward-eval" -> 2;
                    default -> 5;
                };
                for (int v = 0; v < variants.length; v++) {
                    double w = median(Arrays.copyOfRange(wall[s][k], v * repeat, (v + 1) * repeat));
                    double cp = median(Arrays.copyOfRange(cpu[s][k], v * repeat, (v + 1) * repeat));
                    System.out.printf("%-15s %-14s %-8s %10.3f %8.1f %10s %8s%n", shapes.get(s).layout().cliName(),
                            ops[k], variants[v], w / 1e6, units * bytes / w,
                            threads == 1 ? String.format("%.3f", cp / 1e6) : "",
                            threads == 1 ? String.format("%.1f", units * bytes / cp) : "");
                }
            }
        }
        for (CpuBatchNormOps o : impl) o.close();
    }

    private static String loadAverage() {
        return String.format("%.2f", ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage());
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
}
