package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.ChannelStatistics;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.Shape;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The work of {@code batchnorm4j check}: runs every given backend on the same seeded inputs (a fixed set of small
 * shapes in both layouts, every operation), then measures each backend's outputs against {@link Float64Check} and
 * each pair of backends against each other, both with {@link ErrorMetric}. Outputs are NaN-filled before each call
 * so that an element a backend forgets to write fails.
 *
 * <p>Operations and the outputs compared: {@code forward-train} (y, saved mean and invstd, updated running mean and
 * variance with momentum 0.1), {@code forward-train-plain} (affine off, running statistics not tracked),
 * {@code forward-eval} (y), {@code backward-train} (dx, dgamma, dbeta from the backend's own saved statistics, as in
 * a training step), {@code backward-eval} (dx, dgamma, dbeta with frozen running statistics), {@code statistics}
 * (count, mean, biased variance) and {@code normalize} (y from given mean and invstd). An operation a backend throws
 * {@link UnsupportedOperationException} for (cuDNN: backward-eval, statistics, normalize) is reported as unsupported,
 * not as a failure; any other exception is a failure of that row.
 *
 * <p>The fused batch norm + add + ReLU operations, with a residual z: {@code forward-train-relu} (y, the mask, saved
 * and running statistics), {@code forward-eval-relu} (y, mask), {@code backward-train-relu} and
 * {@code backward-eval-relu} (dx, dz, dgamma, dbeta). Backward gets float64's mask, the same for every backend, so
 * that the pairwise table compares equal inputs. The mask is scored by {@link ErrorMetric#maskError}: a bit may
 * differ from float64's only where |v| is within the tolerance of 0.
 *
 * <p>Pass marks: against float64, {@link #FORWARD_TOLERANCE} and {@link #GRADIENT_TOLERANCE} (docs/design.md §6);
 * between two backends, {@link #PAIRWISE_FACTOR} times that, since each side may carry the whole float32 error allowed.
 *
 * <p>Storage types ({@link DType}): in float16 and bfloat16 every backend gets x and dy rounded once to the type (the
 * float64 computation uses the same rounded values; so does the residual z of the fused operations), runs the 16-bit
 * forms of every operation and stores y, dx and dz in the type. Those outputs are held to {@link #tolerance}: the type's unit
 * roundoff u (half an ulp relative to max(|e|, 1)) plus twice the float32 tolerance; the float32 outputs (statistics,
 * running statistics, dgamma, dbeta) keep the float32 tolerances. A row's error and tolerance are those of its output
 * nearest to (or furthest past) its own tolerance.
 */
public final class CrossCheck {
    /** Tolerance of forward outputs and statistics (max relative error against float64, docs/design.md §6). */
    public static final double FORWARD_TOLERANCE = 1e-5;
    /** Tolerance of gradients (max relative error against float64, docs/design.md §6). */
    public static final double GRADIENT_TOLERANCE = 1e-4;
    /** Two float32 backends each within the float64 tolerance agree within twice it (triangle inequality). */
    public static final double PAIRWISE_FACTOR = 2;
    /** Momentum of the running-statistics update checked. */
    static final double MOMENTUM = 0.1;
    static final double EPS = 1e-5;

    /** The operations, in the order of the tables. */
    public static final List<String> OPS = List.of("forward-train", "forward-train-plain", "forward-eval",
            "backward-train", "backward-eval", "statistics", "normalize", "forward-train-relu", "forward-eval-relu",
            "backward-train-relu", "backward-eval-relu");

    /**
     * Shapes in logical order [N, C, S1..Sk]; each runs channels-first and channels-last ([N, S1..Sk, C]), and 2-D
     * shapes once (they are always channels-last). They cover C = 1, N = 1 with spatial &gt; 1, M = 2, odd inner
     * sizes, C % 4 ≠ 0, 3-D, 4-D and 5-D tensors and many channels, and stay small so that the PTX emulator checks
     * all of them in seconds.
     */
    static final long[][] LOGICAL_SHAPES = {
        {2, 3, 4, 5},
        {4, 1, 9},
        {1, 5, 3, 3},
        {2, 3},
        {2, 4, 3, 2, 3},
        {8, 5, 33},
        {4, 4099},
    };

    /** PASS, FAIL, or UNSUPPORTED (the backend does not offer the operation: not a failure). */
    public enum Result { PASS, FAIL, UNSUPPORTED }

    /**
     * One backend's operation against float64.
     *
     * @param backend     backend name
     * @param dtype       storage type of x, dy, y and dx
     * @param op          operation (one of {@link #OPS})
     * @param layout      "channels-first" or "channels-last"
     * @param shape       dims in the layout's order, "2,3,4,5"
     * @param maxRelError the largest error over the operation's outputs (NaN when an output is NaN, the call threw or
     *                    the operation is unsupported)
     * @param tolerance   the bound it is held to
     * @param result      PASS, FAIL or UNSUPPORTED
     * @param detail      which output had the largest error, or why the operation failed or is unsupported
     */
    public record Row(String backend, DType dtype, String op, String layout, String shape, double maxRelError,
                      double tolerance, Result result, String detail) {
        /** True unless the row is a FAIL. */
        public boolean pass() {
            return result != Result.FAIL;
        }
    }

    /**
     * One operation of two backends against each other.
     *
     * @param dtype       storage type
     * @param op          operation
     * @param layout      "channels-first" or "channels-last"
     * @param shape       dims in the layout's order
     * @param a           first backend
     * @param b           second backend
     * @param maxRelError {@link ErrorMetric#maxPairwiseError} over the outputs (NaN when not compared)
     * @param tolerance   the bound (PAIRWISE_FACTOR × the float64 tolerance)
     * @param result      PASS, FAIL (beyond tolerance, or one side failed), or UNSUPPORTED (by either side)
     * @param detail      the worst output, or which side failed or does not support the operation
     */
    public record PairRow(DType dtype, String op, String layout, String shape, String a, String b,
                          double maxRelError, double tolerance, Result result, String detail) {
        /** True unless the row is a FAIL. */
        public boolean pass() {
            return result != Result.FAIL;
        }

        /** "a~b", the column name of the pair. */
        public String pair() {
            return a + "~" + b;
        }
    }

    /**
     * Everything one check found.
     *
     * @param backends names of the backends checked, in order
     * @param dtypes   the storage types checked, in order
     * @param rows     per backend, storage type, operation and shape: against float64
     * @param pairs    per storage type, operation, shape and pair of backends (empty with fewer than two backends)
     */
    public record Report(List<String> backends, List<DType> dtypes, List<Row> rows, List<PairRow> pairs) {
        /** The number of FAIL rows in both tables. */
        public long failures() {
            return rows.stream().filter(r -> !r.pass()).count() + pairs.stream().filter(p -> !p.pass()).count();
        }
    }

    private CrossCheck() {
    }

    /** The shapes of the check in the given layout ([N, C, S..] → [N, S.., C] for channels-last). */
    static List<Shape> shapes() {
        List<Shape> out = new ArrayList<>();
        for (long[] logical : LOGICAL_SHAPES) {
            out.add(Shape.channelsFirst(logical));
            if (logical.length > 2) out.add(Shape.channelsLast(toChannelsLast(logical)));
        }
        return out;
    }

    /** [N, C, S1..Sk] → [N, S1..Sk, C]. */
    public static long[] toChannelsLast(long[] logical) {
        long[] d = new long[logical.length];
        d[0] = logical[0];
        for (int i = 2; i < logical.length; i++) d[i - 1] = logical[i];
        d[logical.length - 1] = logical[1];
        return d;
    }

    /**
     * Runs every operation on every shape on every backend in float32; never throws for a backend failure (that is a
     * FAIL row). The backends are used, not closed.
     */
    public static Report run(List<BatchNormOps> backends, long seed) {
        return run(backends, seed, List.of(DType.FLOAT32));
    }

    /**
     * Runs every operation in each storage type on every shape on every backend; never throws for a backend failure (that is a FAIL row; a type a backend refuses
     * is UNSUPPORTED). Each shape gets the same seeded inputs in every type, rounded to it.
     */
    public static Report run(List<BatchNormOps> backends, long seed, List<DType> dtypes) {
        List<String> names = new ArrayList<>();
        for (BatchNormOps b : backends) names.add(b.name());
        List<Row> rows = new ArrayList<>();
        List<PairRow> pairs = new ArrayList<>();
        for (DType t : dtypes) {
            long caseSeed = seed;
            for (Shape shape : shapes()) {
                long shapeSeed = caseSeed++;
                RandomInputs in = RandomInputs.of(shape, shapeSeed).rounded(t);
                String layout = shape.layout().cliName();
                String dims = dimsText(shape.dims());
                for (String op : OPS) {
                    Map<String, double[]> expected = expected(op, in, shapeSeed, t);
                    Map<String, Double> tol = new LinkedHashMap<>();
                    for (String output : expected.keySet()) tol.put(output, tolerance(t, op, output));
                    List<Outcome> outcomes = new ArrayList<>();
                    for (BatchNormOps b : backends) {
                        Outcome o = Outcome.of(() -> t.is16Bit() ? actual16(b, t, op, in, shapeSeed)
                                : actual(b, op, in, shapeSeed));
                        outcomes.add(o);
                        rows.add(o.against(b.name(), t, op, layout, dims, expected, tol));
                    }
                    for (int i = 0; i < outcomes.size(); i++) {
                        for (int j = i + 1; j < outcomes.size(); j++) {
                            pairs.add(Outcome.pair(t, op, layout, dims, names.get(i), outcomes.get(i), names.get(j),
                                    outcomes.get(j), tol, expected.get("mask")));
                        }
                    }
                }
            }
        }
        return new Report(List.copyOf(names), List.copyOf(dtypes), rows, pairs);
    }

    /** The residual z of the fused operations, rounded to {@code t} like x and dy. */
    private static float[] residual(Shape s, long seed, DType t) {
        float[] z = RandomInputs.residual(s, seed);
        return t.is16Bit() ? t.decode(t.encode(z)) : z;
    }

    /**
     * The tolerance of one output against float64: {@link #FORWARD_TOLERANCE} or {@link #GRADIENT_TOLERANCE} (for
     * the backward operations), and for y and dx stored in a 16-bit type that plus the type's unit roundoff u and
     * the float32 tolerance again (dz too, which is exact: dy gated): a float32 result within the float32
     * tolerance, rounded once to nearest, is within
     * ½ulp + 2·(float32 tolerance), and ½ulp relative to max(|e|, 1) is at most u (2^-11 in float16, 2^-8 in
     * bfloat16). Between two backends, {@link #PAIRWISE_FACTOR} times this.
     */
    public static double tolerance(DType t, String op, String output) {
        double base = op.startsWith("backward") ? GRADIENT_TOLERANCE : FORWARD_TOLERANCE;
        boolean stored = output.equals("y") || output.equals("dx") || output.equals("dz");
        return t.is16Bit() && stored ? t.unitRoundoff() + 2 * base : base;
    }

    /** What one backend did for one operation: its named outputs, or why there are none. */
    private record Outcome(Map<String, float[]> outputs, Result failure, String why) {
        static Outcome of(java.util.function.Supplier<Map<String, float[]>> call) {
            try {
                return new Outcome(call.get(), null, null);
            } catch (UnsupportedOperationException e) {
                return new Outcome(null, Result.UNSUPPORTED, "unsupported: " + e.getMessage());
            } catch (RuntimeException e) {
                return new Outcome(null, Result.FAIL, "threw " + e);
            }
        }

        /** The tolerance of a row that has no errors to compare: its first output's (all of them, in float32). */
        private static double first(Map<String, Double> tol) {
            return tol.values().iterator().next();
        }

        Row against(String backend, DType t, String op, String layout, String dims, Map<String, double[]> expected,
                    Map<String, Double> tol) {
            if (outputs == null) return new Row(backend, t, op, layout, dims, Double.NaN, first(tol), failure, why);
            String worst = null;
            double error = 0;
            double ratio = 0;
            for (Map.Entry<String, double[]> e : expected.entrySet()) {
                double err = e.getKey().equals("mask") ? ErrorMetric.maskError(outputs.get("mask"), e.getValue())
                        : ErrorMetric.maxRelativeError(outputs.get(e.getKey()), e.getValue());
                double r = err / tol.get(e.getKey());
                if (worst == null || Double.isNaN(err) || r > ratio) {
                    worst = e.getKey();
                    error = err;
                    ratio = r;
                    if (Double.isNaN(err)) break;
                }
            }
            double bound = tol.get(worst);
            return new Row(backend, t, op, layout, dims, error, bound, error <= bound ? Result.PASS : Result.FAIL,
                    worst);
        }

        static PairRow pair(DType t, String op, String layout, String dims, String a, Outcome oa, String b,
                            Outcome ob, Map<String, Double> tol, double[] v) {
            Outcome without = oa.outputs == null ? oa : ob.outputs == null ? ob : null;
            if (without != null) {
                String who = without == oa ? a : b;
                // A failed side already fails its float64 row; the pair says so too. Unsupported is no failure.
                return new PairRow(t, op, layout, dims, a, b, Double.NaN, PAIRWISE_FACTOR * first(tol),
                        without.failure, who + (without.failure == Result.UNSUPPORTED ? " unsupported" : " failed"));
            }
            String worst = null;
            double error = 0;
            double ratio = 0;
            for (Map.Entry<String, float[]> e : oa.outputs.entrySet()) {
                double err = e.getKey().equals("mask")
                        ? ErrorMetric.maskPairwiseError(e.getValue(), ob.outputs.get("mask"), v)
                        : ErrorMetric.maxPairwiseError(e.getValue(), ob.outputs.get(e.getKey()));
                double r = err / tol.get(e.getKey());
                if (worst == null || Double.isNaN(err) || r > ratio) {
                    worst = e.getKey();
                    error = err;
                    ratio = r;
                    if (Double.isNaN(err)) break;
                }
            }
            double bound = PAIRWISE_FACTOR * tol.get(worst);
            return new PairRow(t, op, layout, dims, a, b, error, bound, error <= bound ? Result.PASS : Result.FAIL,
                    worst);
        }
    }

    private static float[] poisoned(int n) {
        float[] a = new float[n];
        Arrays.fill(a, Float.NaN);
        return a;
    }

    /** Float mean and invstd of x computed in double: the statistics normalize is given. */
    private static float[][] exactStatistics(RandomInputs in) {
        Shape s = in.shape();
        double[] mean = Float64Check.mean(s, in.x());
        double[] var = Float64Check.variance(s, in.x(), mean);
        float[] m = new float[mean.length];
        float[] inv = new float[mean.length];
        for (int c = 0; c < mean.length; c++) {
            m[c] = (float) mean[c];
            inv[c] = (float) (1.0 / Math.sqrt(var[c] + EPS));
        }
        return new float[][] {m, inv};
    }

    /** The float64 outputs of {@code op}, named as {@link #actual} names the backend's. */
    private static Map<String, double[]> expected(String op, RandomInputs in, long seed, DType t) {
        Shape s = in.shape();
        Map<String, double[]> out = new LinkedHashMap<>();
        float[] z = residual(s, seed, t);
        switch (op) {
            case "forward-train-relu" -> {
                Float64Check.Forward f = Float64Check.forwardTraining(s, in.x(), in.gamma(), in.beta(), EPS,
                        in.runningMean(), in.runningVar(), MOMENTUM);
                double[] v = Float64Check.preActivation(f.y(), z);
                out.put("y", Float64Check.relu(v));
                out.put("mask", v);
                out.put("save_mean", f.mean());
                out.put("save_invstd", f.invstd());
                out.put("running_mean", f.runningMean());
                out.put("running_var", f.runningVar());
            }
            case "forward-eval-relu" -> {
                double[] v = Float64Check.preActivation(Float64Check.forwardInference(s, in.x(), in.gamma(),
                        in.beta(), in.runningMean(), in.runningVar(), EPS), z);
                out.put("y", Float64Check.relu(v));
                out.put("mask", v);
            }
            case "backward-train-relu", "backward-eval-relu" -> {
                float[] g = Float64Check.gate(in.dy(), reluMask(op, in, z));
                Float64Check.Gradients d = op.equals("backward-train-relu")
                        ? Float64Check.backwardTraining(s, in.x(), g, in.gamma(), EPS)
                        : Float64Check.backwardInference(s, in.x(), g, in.gamma(), in.runningMean(),
                                in.runningVar(), EPS);
                out.put("dx", d.dx());
                double[] dz = new double[g.length];
                for (int i = 0; i < g.length; i++) dz[i] = g[i];
                out.put("dz", dz);
                out.put("dgamma", d.dgamma());
                out.put("dbeta", d.dbeta());
            }
            case "forward-train", "forward-train-plain" -> {
                boolean full = op.equals("forward-train");
                Float64Check.Forward f = Float64Check.forwardTraining(s, in.x(), full ? in.gamma() : null,
                        full ? in.beta() : null, EPS, full ? in.runningMean() : null, full ? in.runningVar() : null,
                        MOMENTUM);
                out.put("y", f.y());
                out.put("save_mean", f.mean());
                out.put("save_invstd", f.invstd());
                if (full) {
                    out.put("running_mean", f.runningMean());
                    out.put("running_var", f.runningVar());
                }
            }
            case "forward-eval" -> out.put("y", Float64Check.forwardInference(s, in.x(), in.gamma(), in.beta(),
                    in.runningMean(), in.runningVar(), EPS));
            case "backward-train", "backward-eval" -> {
                Float64Check.Gradients g = op.equals("backward-train")
                        ? Float64Check.backwardTraining(s, in.x(), in.dy(), in.gamma(), EPS)
                        : Float64Check.backwardInference(s, in.x(), in.dy(), in.gamma(), in.runningMean(),
                                in.runningVar(), EPS);
                out.put("dx", g.dx());
                out.put("dgamma", g.dgamma());
                out.put("dbeta", g.dbeta());
            }
            case "statistics" -> {
                double[] mean = Float64Check.mean(s, in.x());
                out.put("count", new double[] {s.reductionSize()});
                out.put("mean", mean);
                out.put("var", Float64Check.variance(s, in.x(), mean));
            }
            case "normalize" -> {
                float[][] st = exactStatistics(in);
                double[] mean = new double[st[0].length];
                double[] invstd = new double[st[1].length];
                for (int c = 0; c < mean.length; c++) {
                    mean[c] = st[0][c];
                    invstd[c] = st[1][c];
                }
                out.put("y", Float64Check.apply(s, in.x(), in.gamma(), in.beta(), mean, invstd));
            }
            default -> throw new IllegalArgumentException("unknown op " + op);
        }
        return out;
    }

    /** The float64 ReLU mask the backward rows of the fused operations feed every backend. */
    private static int[] reluMask(String op, RandomInputs in, float[] z) {
        Shape s = in.shape();
        double[] bn = op.equals("backward-train-relu")
                ? Float64Check.forwardTraining(s, in.x(), in.gamma(), in.beta(), EPS, null, null, 0).y()
                : Float64Check.forwardInference(s, in.x(), in.gamma(), in.beta(), in.runningMean(), in.runningVar(),
                        EPS);
        return Float64Check.mask(Float64Check.preActivation(bn, z));
    }

    /** A mask's bits as 0/1 floats (the form the tables compare). */
    private static float[] bitsOf(int[] mask, int n) {
        float[] b = new float[n];
        for (int i = 0; i < n; i++) b[i] = mask[i / 32] >>> (i % 32) & 1;
        return b;
    }

    /** Runs {@code op} on a backend with poisoned outputs; returns the outputs by name. */
    private static Map<String, float[]> actual(BatchNormOps ops, String op, RandomInputs in, long seed) {
        Shape s = in.shape();
        int n = in.x().length;
        int c = s.channels();
        Map<String, float[]> out = new LinkedHashMap<>();
        float[] z = RandomInputs.residual(s, seed);
        switch (op) {
            case "forward-train-relu" -> {
                float[] rm = in.runningMean().clone();
                float[] rv = in.runningVar().clone();
                float[] y = poisoned(n);
                int[] mask = poisonedMask(n);
                float[] mean = poisoned(c);
                float[] invstd = poisoned(c);
                ops.forwardTrainingRelu(s, in.x(), z, in.gamma(), in.beta(), EPS, rm, rv, MOMENTUM, y, mask, mean,
                        invstd);
                out.put("y", y);
                out.put("mask", bitsOf(mask, n));
                putSaved(out, mean, invstd, rm, rv);
            }
            case "forward-eval-relu" -> {
                float[] y = poisoned(n);
                int[] mask = poisonedMask(n);
                ops.forwardInferenceRelu(s, in.x(), z, in.gamma(), in.beta(), in.runningMean(), in.runningVar(), EPS,
                        y, mask);
                out.put("y", y);
                out.put("mask", bitsOf(mask, n));
            }
            case "backward-train-relu", "backward-eval-relu" -> {
                int[] mask = reluMask(op, in, z);
                float[] dx = poisoned(n);
                float[] dz = poisoned(n);
                float[] dgamma = poisoned(c);
                float[] dbeta = poisoned(c);
                if (op.equals("backward-train-relu")) {
                    float[] mean = new float[c];
                    float[] invstd = new float[c];
                    ops.forwardTrainingRelu(s, in.x(), z, in.gamma(), in.beta(), EPS, null, null, 0, new float[n],
                            null, mean, invstd);
                    ops.backwardTrainingRelu(s, in.x(), in.dy(), mask, in.gamma(), mean, invstd, dx, dz, dgamma,
                            dbeta);
                } else {
                    ops.backwardInferenceRelu(s, in.x(), in.dy(), mask, in.gamma(), in.runningMean(), in.runningVar(),
                            EPS, dx, dz, dgamma, dbeta);
                }
                out.put("dx", dx);
                out.put("dz", dz);
                out.put("dgamma", dgamma);
                out.put("dbeta", dbeta);
            }
            case "forward-train", "forward-train-plain" -> {
                boolean full = op.equals("forward-train");
                float[] rm = full ? in.runningMean().clone() : null;
                float[] rv = full ? in.runningVar().clone() : null;
                float[] y = poisoned(n);
                float[] mean = poisoned(c);
                float[] invstd = poisoned(c);
                ops.forwardTraining(s, in.x(), full ? in.gamma() : null, full ? in.beta() : null, EPS, rm, rv,
                        MOMENTUM, y, mean, invstd);
                out.put("y", y);
                putSaved(out, mean, invstd, rm, rv);
            }
            case "forward-eval" -> {
                float[] y = poisoned(n);
                ops.forwardInference(s, in.x(), in.gamma(), in.beta(), in.runningMean(), in.runningVar(), EPS, y);
                out.put("y", y);
            }
            case "backward-train", "backward-eval" -> {
                float[] dx = poisoned(n);
                float[] dgamma = poisoned(c);
                float[] dbeta = poisoned(c);
                if (op.equals("backward-train")) {
                    // The backend's own saved statistics, as in a real training step.
                    float[] mean = new float[c];
                    float[] invstd = new float[c];
                    ops.forwardTraining(s, in.x(), in.gamma(), in.beta(), EPS, null, null, 0, new float[n], mean,
                            invstd);
                    ops.backwardTraining(s, in.x(), in.dy(), in.gamma(), mean, invstd, dx, dgamma, dbeta);
                } else {
                    ops.backwardInference(s, in.x(), in.dy(), in.gamma(), in.runningMean(), in.runningVar(), EPS,
                            dx, dgamma, dbeta);
                }
                out.put("dx", dx);
                out.put("dgamma", dgamma);
                out.put("dbeta", dbeta);
            }
            case "statistics" -> {
                putStatistics(out, ops.statistics(s, in.x()), c);
            }
            case "normalize" -> {
                float[][] st = exactStatistics(in);
                float[] y = poisoned(n);
                ops.normalize(s, in.x(), in.gamma(), in.beta(), st[0], st[1], y);
                out.put("y", y);
            }
            default -> throw new IllegalArgumentException("unknown op " + op);
        }
        return out;
    }

    /**
     * Runs {@code op} in the 16-bit type {@code t} on a backend, with x, dy and z (already rounded to {@code t}) as
     * {@code t}'s bit patterns and poisoned outputs; returns the outputs by name, y, dx and dz widened exactly.
     */
    private static Map<String, float[]> actual16(BatchNormOps ops, DType t, String op, RandomInputs in, long seed) {
        Shape s = in.shape();
        int n = in.x().length;
        int c = s.channels();
        short[] x = t.encode(in.x());
        short[] dy = t.encode(in.dy());
        short[] z = t.encode(residual(s, seed, t));
        Map<String, float[]> out = new LinkedHashMap<>();
        switch (op) {
            case "forward-train-relu" -> {
                float[] rm = in.runningMean().clone();
                float[] rv = in.runningVar().clone();
                short[] y = poisoned16(n);
                int[] mask = poisonedMask(n);
                float[] mean = poisoned(c);
                float[] invstd = poisoned(c);
                ops.forwardTrainingRelu(s, t, x, z, in.gamma(), in.beta(), EPS, rm, rv, MOMENTUM, y, mask, mean,
                        invstd);
                out.put("y", t.decode(y));
                out.put("mask", bitsOf(mask, n));
                putSaved(out, mean, invstd, rm, rv);
            }
            case "forward-eval-relu" -> {
                short[] y = poisoned16(n);
                int[] mask = poisonedMask(n);
                ops.forwardInferenceRelu(s, t, x, z, in.gamma(), in.beta(), in.runningMean(), in.runningVar(), EPS,
                        y, mask);
                out.put("y", t.decode(y));
                out.put("mask", bitsOf(mask, n));
            }
            case "backward-train-relu", "backward-eval-relu" -> {
                int[] mask = reluMask(op, in, t.decode(z));
                short[] dx = poisoned16(n);
                short[] dz = poisoned16(n);
                float[] dgamma = poisoned(c);
                float[] dbeta = poisoned(c);
                if (op.equals("backward-train-relu")) {
                    float[] mean = new float[c];
                    float[] invstd = new float[c];
                    ops.forwardTrainingRelu(s, t, x, z, in.gamma(), in.beta(), EPS, null, null, 0, new short[n],
                            null, mean, invstd);
                    ops.backwardTrainingRelu(s, t, x, dy, mask, in.gamma(), mean, invstd, dx, dz, dgamma, dbeta);
                } else {
                    ops.backwardInferenceRelu(s, t, x, dy, mask, in.gamma(), in.runningMean(), in.runningVar(), EPS,
                            dx, dz, dgamma, dbeta);
                }
                out.put("dx", t.decode(dx));
                out.put("dz", t.decode(dz));
                out.put("dgamma", dgamma);
                out.put("dbeta", dbeta);
            }
            case "forward-train", "forward-train-plain" -> {
                boolean full = op.equals("forward-train");
                float[] rm = full ? in.runningMean().clone() : null;
                float[] rv = full ? in.runningVar().clone() : null;
                short[] y = poisoned16(n);
                float[] mean = poisoned(c);
                float[] invstd = poisoned(c);
                ops.forwardTraining(s, t, x, full ? in.gamma() : null, full ? in.beta() : null, EPS, rm, rv,
                        MOMENTUM, y, mean, invstd);
                out.put("y", t.decode(y));
                putSaved(out, mean, invstd, rm, rv);
            }
            case "forward-eval" -> {
                short[] y = poisoned16(n);
                ops.forwardInference(s, t, x, in.gamma(), in.beta(), in.runningMean(), in.runningVar(), EPS, y);
                out.put("y", t.decode(y));
            }
            case "backward-train", "backward-eval" -> {
                short[] dx = poisoned16(n);
                float[] dgamma = poisoned(c);
                float[] dbeta = poisoned(c);
                if (op.equals("backward-train")) {
                    float[] mean = new float[c];
                    float[] invstd = new float[c];
                    ops.forwardTraining(s, t, x, in.gamma(), in.beta(), EPS, null, null, 0, new short[n], mean,
                            invstd);
                    ops.backwardTraining(s, t, x, dy, in.gamma(), mean, invstd, dx, dgamma, dbeta);
                } else {
                    ops.backwardInference(s, t, x, dy, in.gamma(), in.runningMean(), in.runningVar(), EPS, dx,
                            dgamma, dbeta);
                }
                out.put("dx", t.decode(dx));
                out.put("dgamma", dgamma);
                out.put("dbeta", dbeta);
            }
            case "statistics" -> {
                putStatistics(out, ops.statistics(s, t, x), c);
            }
            case "normalize" -> {
                float[][] st = exactStatistics(in);
                short[] y = poisoned16(n);
                ops.normalize(s, t, x, in.gamma(), in.beta(), st[0], st[1], y);
                out.put("y", t.decode(y));
            }
            default -> throw new IllegalArgumentException(op + " has no 16-bit form");
        }
        return out;
    }

    /** A ReLU mask of all ones: a bit a backend forgets to clear fails (as poisoned() does for values). */
    private static int[] poisonedMask(int n) {
        int[] mask = new int[(n + 31) / 32];
        Arrays.fill(mask, -1);
        return mask;
    }

    /** A training forward's saved statistics, then the running ones when it updated them (rm null: it did not). */
    private static void putSaved(Map<String, float[]> out, float[] mean, float[] invstd, float[] rm, float[] rv) {
        out.put("save_mean", mean);
        out.put("save_invstd", invstd);
        if (rm != null) {
            out.put("running_mean", rm);
            out.put("running_var", rv);
        }
    }

    /** The statistics op's outputs: the count, then the per-channel mean and variance rounded to float. */
    private static void putStatistics(Map<String, float[]> out, ChannelStatistics st, int c) {
        float[] mean = new float[c];
        float[] var = new float[c];
        for (int k = 0; k < c; k++) {
            mean[k] = (float) st.mean(k);
            var[k] = (float) st.variance(k);
        }
        out.put("count", new float[] {st.count()});
        out.put("mean", mean);
        out.put("var", var);
    }

    /** 16-bit NaNs (0x7FFF is NaN in float16 and bfloat16): an element a backend forgets to write fails. */
    private static short[] poisoned16(int n) {
        short[] a = new short[n];
        Arrays.fill(a, (short) 0x7FFF);
        return a;
    }

    /** "2,3,4,5". */
    static String dimsText(long[] dims) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < dims.length; i++) {
            if (i > 0) sb.append(',');
            sb.append(dims[i]);
        }
        return sb.toString();
    }
}
