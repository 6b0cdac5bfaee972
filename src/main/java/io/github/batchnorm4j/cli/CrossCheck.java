package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The work of {@code batchnorm4j check}: runs one backend over a fixed set of small shapes in both layouts and every
 * operation, and measures each result against {@link Float64Check} with {@link ErrorMetric}. Outputs are NaN-filled
 * before each call so that an element a backend forgets to write fails.
 *
 * <p>Operations: {@code forward-train} (y, saved mean and invstd, updated running mean and variance with momentum
 * 0.1), {@code forward-train-plain} (affine off, running statistics not tracked: the path of eval without tracked
 * statistics), {@code forward-eval}, {@code backward-train} (dx, dgamma, dbeta from the backend's own saved
 * statistics) and {@code backward-eval}.
 */
public final class CrossCheck {
    /** Tolerance of forward outputs and statistics (max relative error, DESIGN §6). */
    public static final double FORWARD_TOLERANCE = 1e-5;
    /** Tolerance of gradients (max relative error, DESIGN §6). */
    public static final double GRADIENT_TOLERANCE = 1e-4;
    /** Momentum of the running-statistics update checked. */
    static final double MOMENTUM = 0.1;
    static final double EPS = 1e-5;

    /**
     * Shapes in logical order [N, C, S1..Sk]; each runs channels-first and channels-last ([N, S1..Sk, C]), and 2-D
     * shapes once (they are always channels-last). They cover C = 1, N = 1 with spatial &gt; 1, M = 2, odd inner
     * sizes, C % 4 ≠ 0, 3-D, 4-D and 5-D tensors and many channels.
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

    private CrossCheck() {
    }

    /**
     * One line of the table.
     *
     * @param backend     backend name
     * @param op          operation
     * @param layout      "channels-first" or "channels-last"
     * @param shape       dims in the layout's order, "2,3,4,5"
     * @param maxRelError the largest error over the operation's outputs (NaN when an output is NaN or the call threw)
     * @param tolerance   the bound it is held to
     * @param worst       which output had the largest error, or the exception when the call failed
     */
    public record Row(String backend, String op, String layout, String shape, double maxRelError, double tolerance,
                      String worst) {
        /** True when the error is within tolerance (NaN never passes). */
        public boolean pass() {
            return maxRelError <= tolerance;
        }
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

    /** Runs every operation on every shape; never throws for a backend failure (that is a FAIL row). */
    public static List<Row> run(BatchNormOps ops, long seed) {
        List<Row> rows = new ArrayList<>();
        long caseSeed = seed;
        for (Shape shape : shapes()) {
            RandomInputs in = RandomInputs.of(shape, caseSeed++);
            rows.add(guard(ops, "forward-train", shape, FORWARD_TOLERANCE, () -> forwardTrain(ops, in, true)));
            rows.add(guard(ops, "forward-train-plain", shape, FORWARD_TOLERANCE, () -> forwardTrain(ops, in, false)));
            rows.add(guard(ops, "forward-eval", shape, FORWARD_TOLERANCE, () -> forwardEval(ops, in)));
            rows.add(guard(ops, "backward-train", shape, GRADIENT_TOLERANCE, () -> backwardTrain(ops, in)));
            rows.add(guard(ops, "backward-eval", shape, GRADIENT_TOLERANCE, () -> backwardEval(ops, in)));
        }
        return rows;
    }

    /** The worst output of one operation: its name and error. */
    private record Worst(String output, double error) {
        Worst and(String name, float[] actual, double[] expected) {
            double e = ErrorMetric.maxRelativeError(actual, expected);
            if (Double.isNaN(error)) return this;
            if (Double.isNaN(e) || e > error) return new Worst(name, e);
            return this;
        }
    }

    private interface Op {
        Worst run();
    }

    private static Row guard(BatchNormOps ops, String op, Shape shape, double tol, Op body) {
        String dims = dimsText(shape.dims());
        try {
            Worst w = body.run();
            return new Row(ops.name(), op, shape.layout().cliName(), dims, w.error(), tol, w.output());
        } catch (RuntimeException e) {
            return new Row(ops.name(), op, shape.layout().cliName(), dims, Double.NaN, tol, "threw " + e);
        }
    }

    private static float[] poisoned(int n) {
        float[] a = new float[n];
        Arrays.fill(a, Float.NaN);
        return a;
    }

    private static Worst forwardTrain(BatchNormOps ops, RandomInputs in, boolean full) {
        Shape s = in.shape();
        int c = s.channels();
        float[] gamma = full ? in.gamma() : null;
        float[] beta = full ? in.beta() : null;
        float[] rm = full ? in.runningMean().clone() : null;
        float[] rv = full ? in.runningVar().clone() : null;
        float[] y = poisoned(in.x().length);
        float[] mean = poisoned(c);
        float[] invstd = poisoned(c);
        ops.forwardTraining(s, in.x(), gamma, beta, EPS, rm, rv, MOMENTUM, y, mean, invstd);
        Float64Check.Forward ref = Float64Check.forwardTraining(s, in.x(), gamma, beta, EPS,
                full ? in.runningMean() : null, full ? in.runningVar() : null, MOMENTUM);
        Worst w = new Worst("y", 0).and("y", y, ref.y()).and("save_mean", mean, ref.mean())
                .and("save_invstd", invstd, ref.invstd());
        if (full) w = w.and("running_mean", rm, ref.runningMean()).and("running_var", rv, ref.runningVar());
        return w;
    }

    private static Worst forwardEval(BatchNormOps ops, RandomInputs in) {
        Shape s = in.shape();
        float[] y = poisoned(in.x().length);
        ops.forwardInference(s, in.x(), in.gamma(), in.beta(), in.runningMean(), in.runningVar(), EPS, y);
        double[] ref = Float64Check.forwardInference(s, in.x(), in.gamma(), in.beta(), in.runningMean(),
                in.runningVar(), EPS);
        return new Worst("y", 0).and("y", y, ref);
    }

    private static Worst backwardTrain(BatchNormOps ops, RandomInputs in) {
        Shape s = in.shape();
        int c = s.channels();
        // The backend's own saved statistics, as in a real training step.
        float[] y = new float[in.x().length];
        float[] mean = new float[c];
        float[] invstd = new float[c];
        ops.forwardTraining(s, in.x(), in.gamma(), in.beta(), EPS, null, null, 0, y, mean, invstd);
        float[] dx = poisoned(in.x().length);
        float[] dgamma = poisoned(c);
        float[] dbeta = poisoned(c);
        ops.backwardTraining(s, in.x(), in.dy(), in.gamma(), mean, invstd, dx, dgamma, dbeta);
        Float64Check.Gradients ref = Float64Check.backwardTraining(s, in.x(), in.dy(), in.gamma(), EPS);
        return new Worst("dx", 0).and("dx", dx, ref.dx()).and("dgamma", dgamma, ref.dgamma())
                .and("dbeta", dbeta, ref.dbeta());
    }

    private static Worst backwardEval(BatchNormOps ops, RandomInputs in) {
        Shape s = in.shape();
        int c = s.channels();
        float[] dx = poisoned(in.x().length);
        float[] dgamma = poisoned(c);
        float[] dbeta = poisoned(c);
        ops.backwardInference(s, in.x(), in.dy(), in.gamma(), in.runningMean(), in.runningVar(), EPS, dx, dgamma,
                dbeta);
        Float64Check.Gradients ref = Float64Check.backwardInference(s, in.x(), in.dy(), in.gamma(), in.runningMean(),
                in.runningVar(), EPS);
        return new Worst("dx", 0).and("dx", dx, ref.dx()).and("dgamma", dgamma, ref.dgamma())
                .and("dbeta", dbeta, ref.dbeta());
    }

    static String dimsText(long[] dims) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < dims.length; i++) {
            if (i > 0) sb.append(',');
            sb.append(dims[i]);
        }
        return sb.toString();
    }
}
