package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.BackendUnavailableException;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.Shape;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.function.Function;

/**
 * The GPU cross-check behind {@code batchnorm4j check --backends cpu,cuda,cudnn}: runs every available backend on the
 * same seeded inputs, for each op (forward-train, forward-eval, backward-train, backward-eval), both layouts and a few
 * shapes, and compares the backends <em>pairwise</em>. A backend that cannot be opened is skipped with its reason; an
 * op a backend does not support (cuDNN has no frozen-statistics backward) is reported as such; the rest is still
 * checked.
 *
 * <p>Error measure, per output tensor and pair (a, b): max over elements of
 * {@code |a − b| / max(|a|, |b|, 1e-2·max|b|)}, i.e. elementwise relative error with a floor at a hundredth of the
 * tensor's scale so that values near zero (where float32 rounding of x·scale + shift cancels) do not dominate; the row shows the worst tensor of the op (forward-train:
 * y, saved mean/invstd, running mean/var; forward-eval: y; backward: dx, dgamma, dbeta). Two float32 backends that are
 * each within DESIGN §6's bounds of float64 (1e-5 forward, 1e-4 gradients) agree within twice that, which is the
 * pass mark used here.
 */
public final class CrossCheck {
    /** Pairwise pass mark for forward outputs (2 × the 1e-5 bound against float64). */
    public static final double FORWARD_TOLERANCE = 2e-5;
    /** Pairwise pass mark for gradients (2 × the 1e-4 bound against float64). */
    public static final double GRADIENT_TOLERANCE = 2e-4;

    /** The shapes checked by default: both layouts, ranks 2 to 5, odd sizes, C = 1 and a channel count not % 4. */
    public static final List<Shape> DEFAULT_SHAPES = List.of(
            Shape.channelsFirst(8, 16, 7, 7), Shape.channelsLast(8, 7, 7, 16),
            Shape.channelsFirst(4, 5, 33), Shape.channelsLast(4, 33, 5),
            Shape.channelsLast(256, 67), Shape.channelsFirst(3, 1, 5, 4, 3), Shape.channelsLast(2, 3, 5, 4, 6));

    static final List<String> OPS = List.of("forward-train", "forward-eval", "backward-train", "backward-eval");

    /**
     * One comparison.
     *
     * @param op          forward-train, forward-eval, backward-train or backward-eval
     * @param shape       the input shape (with its layout)
     * @param pair        "a vs b"
     * @param maxRelError the measure above, NaN when the pair could not be compared
     * @param status      "ok", "MISMATCH", or why the pair was not compared
     */
    public record Row(String op, Shape shape, String pair, double maxRelError, String status) {
        /** True unless the pair was compared and exceeded its tolerance. */
        public boolean passed() {
            return !status.equals("MISMATCH");
        }
    }

    /**
     * Everything the cross-check found.
     *
     * @param compared backends that were opened and compared
     * @param skipped  backend → the reason it was skipped
     * @param rows     one row per op, shape and pair
     */
    public record Report(List<String> compared, Map<String, String> skipped, List<Row> rows) {
        /** True when no compared pair exceeded its tolerance. */
        public boolean passed() {
            return rows.stream().allMatch(Row::passed);
        }

        /** A plain-text table, one line per row, then the skipped backends with their reasons. */
        public String toTable() {
            StringBuilder sb = new StringBuilder();
            sb.append(String.format(Locale.ROOT, "%-15s %-32s %-18s %-12s %s%n", "op", "shape", "pair", "max rel err",
                    "status"));
            for (Row r : rows) {
                sb.append(String.format(Locale.ROOT, "%-15s %-32s %-18s %-12s %s%n", r.op(), r.shape(), r.pair(),
                        Double.isNaN(r.maxRelError()) ? "-" : String.format(Locale.ROOT, "%.2e", r.maxRelError()),
                        r.status()));
            }
            for (Map.Entry<String, String> e : skipped.entrySet()) {
                sb.append("skipped ").append(e.getKey()).append(": ").append(e.getValue()).append('\n');
            }
            if (compared.size() < 2) {
                sb.append("fewer than two backends available: nothing to compare pairwise\n");
            }
            return sb.toString();
        }
    }

    private CrossCheck() {
    }

    /**
     * Runs the cross-check.
     *
     * @param backends names to open (in order)
     * @param opener   opens a backend by name (e.g. {@code io.github.batchnorm4j.Backends::open}); a
     *                 {@link BackendUnavailableException} skips that backend with its reason
     * @param shapes   shapes to check
     * @param seed     seed of the random inputs
     */
    public static Report run(List<String> backends, Function<String, BatchNormOps> opener, List<Shape> shapes,
                             long seed) {
        Map<String, BatchNormOps> open = new LinkedHashMap<>();
        Map<String, String> skipped = new LinkedHashMap<>();
        List<Row> rows = new ArrayList<>();
        try {
            for (String name : backends) {
                try {
                    open.put(name, opener.apply(name));
                } catch (BackendUnavailableException e) {
                    skipped.put(name, e.getMessage());
                }
            }
            List<String> names = new ArrayList<>(open.keySet());
            int shapeIndex = 0;
            for (Shape shape : shapes) {
                for (String op : OPS) {
                    Inputs in = new Inputs(shape, seed * 1_000_003L + 31L * shapeIndex + op.hashCode());
                    Map<String, Object> results = new LinkedHashMap<>(); // float[][] outputs, or a String reason
                    for (String name : names) results.put(name, runOp(open.get(name), op, in));
                    for (int i = 0; i < names.size(); i++) {
                        for (int j = i + 1; j < names.size(); j++) {
                            rows.add(compare(op, shape, names.get(i), names.get(j), results.get(names.get(i)),
                                    results.get(names.get(j))));
                        }
                    }
                }
                shapeIndex++;
            }
        } finally {
            for (BatchNormOps o : open.values()) o.close();
        }
        return new Report(List.copyOf(open.keySet()), skipped, rows);
    }

    private static Row compare(String op, Shape shape, String a, String b, Object ra, Object rb) {
        String pair = a + " vs " + b;
        if (ra instanceof String why) return new Row(op, shape, pair, Double.NaN, a + ": " + why);
        if (rb instanceof String why) return new Row(op, shape, pair, Double.NaN, b + ": " + why);
        float[][] x = (float[][]) ra;
        float[][] y = (float[][]) rb;
        double worst = 0;
        for (int t = 0; t < x.length; t++) worst = Math.max(worst, maxRelError(x[t], y[t]));
        double tol = op.startsWith("backward") ? GRADIENT_TOLERANCE : FORWARD_TOLERANCE;
        return new Row(op, shape, pair, worst, worst <= tol ? "ok" : "MISMATCH");
    }

    /** max_i |a_i − b_i| / max(|a_i|, |b_i|, 1e-2·max_j |b_j|); NaN anywhere counts as infinitely wrong. */
    static double maxRelError(float[] a, float[] b) {
        double scale = 0;
        for (float v : b) scale = Math.max(scale, Math.abs(v));
        double floor = Math.max(1e-2 * scale, Double.MIN_NORMAL);
        double worst = 0;
        for (int i = 0; i < a.length; i++) {
            double d = Math.abs((double) a[i] - b[i]);
            if (Double.isNaN(d)) return Double.POSITIVE_INFINITY;
            worst = Math.max(worst, d / Math.max(Math.max(Math.abs(a[i]), Math.abs(b[i])), floor));
        }
        return worst;
    }

    /** Runs one op; returns its outputs, or a String saying why it could not run. */
    private static Object runOp(BatchNormOps ops, String op, Inputs in) {
        Shape s = in.shape;
        int n = s.elementCountAsInt();
        int c = s.channels();
        try {
            switch (op) {
                case "forward-train": {
                    float[] y = new float[n];
                    float[] mean = new float[c];
                    float[] invstd = new float[c];
                    float[] rm = in.runningMean.clone();
                    float[] rv = in.runningVar.clone();
                    ops.forwardTraining(s, in.x, in.gamma, in.beta, in.eps, rm, rv, 0.1, y, mean, invstd);
                    return new float[][] {y, mean, invstd, rm, rv};
                }
                case "forward-eval": {
                    float[] y = new float[n];
                    ops.forwardInference(s, in.x, in.gamma, in.beta, in.runningMean, in.runningVar, in.eps, y);
                    return new float[][] {y};
                }
                case "backward-train": {
                    // every backend differentiates at the same saved statistics: the exact ones of x
                    float[] dx = new float[n];
                    float[] dg = new float[c];
                    float[] db = new float[c];
                    ops.backwardTraining(s, in.x, in.dy, in.gamma, in.saveMean, in.saveInvstd, dx, dg, db);
                    return new float[][] {dx, dg, db};
                }
                case "backward-eval": {
                    float[] dx = new float[n];
                    float[] dg = new float[c];
                    float[] db = new float[c];
                    ops.backwardInference(s, in.x, in.dy, in.gamma, in.runningMean, in.runningVar, in.eps, dx, dg, db);
                    return new float[][] {dx, dg, db};
                }
                default:
                    throw new IllegalArgumentException("unknown op " + op);
            }
        } catch (UnsupportedOperationException e) {
            return "unsupported (" + e.getMessage() + ")";
        } catch (RuntimeException e) {
            return "failed (" + e + ")";
        }
    }

    /** Seeded random inputs of one case (never zeros; an offset mean so that centering matters). */
    private static final class Inputs {
        final Shape shape;
        final float[] x;
        final float[] dy;
        final float[] gamma;
        final float[] beta;
        final float[] runningMean;
        final float[] runningVar;
        final float[] saveMean;
        final float[] saveInvstd;
        final double eps = 1e-5;

        Inputs(Shape shape, long seed) {
            this.shape = shape;
            Random r = new Random(seed);
            int n = shape.elementCountAsInt();
            int c = shape.channels();
            x = gaussian(r, n, 2.0, 3.0);
            dy = gaussian(r, n, 1.0, 0.1);
            gamma = gaussian(r, c, 0.5, 1.0);
            beta = gaussian(r, c, 0.5, 0.0);
            runningMean = gaussian(r, c, 1.0, 3.0);
            runningVar = new float[c];
            for (int i = 0; i < c; i++) runningVar[i] = (float) (0.5 + 4 * r.nextDouble());
            // exact per-channel statistics in double, so backward inputs do not depend on any backend
            saveMean = new float[c];
            saveInvstd = new float[c];
            long m = shape.reductionSize();
            long inner = shape.inner();
            double[] sum = new double[c];
            double[] sq = new double[c];
            for (int pass = 0; pass < 2; pass++) {
                for (int i = 0; i < n; i++) {
                    int ch = (int) (shape.layout() == io.github.batchnorm4j.Layout.CHANNELS_FIRST ? (i / inner) % c : i % c);
                    if (pass == 0) sum[ch] += x[i];
                    else sq[ch] += (x[i] - sum[ch] / m) * (x[i] - sum[ch] / m);
                }
            }
            for (int i = 0; i < c; i++) {
                saveMean[i] = (float) (sum[i] / m);
                saveInvstd[i] = (float) (1 / Math.sqrt(sq[i] / m + eps));
            }
        }

        private static float[] gaussian(Random r, int n, double sd, double mean) {
            float[] a = new float[n];
            for (int i = 0; i < n; i++) a[i] = (float) (r.nextGaussian() * sd + mean);
            return a;
        }
    }
}
