package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.Backends;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.DeviceResidentTiming;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.gpu.KernelLaunch;
import io.github.batchnorm4j.gpu.LaunchReporting;
import io.github.batchnorm4j.gpu.MeasuredOps;
import io.github.batchnorm4j.gpu.TrafficMetrics;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * The ops {@code bench} times, each validated once before timing: on the CPU backend against {@link Float64Check}
 * (comparing the CPU with itself would prove nothing), on any other backend against the CPU backend's float32 result
 * with twice the check tolerances (both sides carry float32 rounding). Closing it closes the CPU reference it opened,
 * never the backend under test.
 *
 * <p>What is timed: the host API ({@code float[]} in and out), or, for backends implementing
 * {@link DeviceResidentTiming}, the device-resident operation on inputs uploaded once (a GPU's host API would
 * otherwise time the PCIe copies).
 */
final class BenchSuite implements AutoCloseable {
    static final double EPS = 1e-5;
    static final double MOMENTUM = 0.1;

    private final BatchNormOps ops;
    private final long warmupNanos;
    private final DType dtype;
    private BatchNormOps cpu;

    /** A suite timing {@code ops} in float32, each op warmed up for {@code warmupNanos} (and at least 2 runs). */
    BenchSuite(BatchNormOps ops, long warmupNanos) {
        this(ops, warmupNanos, DType.FLOAT32);
    }

    /**
     * A suite timing {@code ops} with x, dy, y, dx (and z, dz) in {@code dtype}: the 16-bit host API, or the 16-bit
     * device-resident operations where the backend has them; validated with {@link CrossCheck#tolerance}.
     */
    BenchSuite(BatchNormOps ops, long warmupNanos, DType dtype) {
        this.ops = ops;
        this.warmupNanos = warmupNanos;
        this.dtype = dtype;
    }

    /**
     * The outcome of one op.
     *
     * @param maxRelError validation error (ErrorMetric) of the first run
     * @param tolerance   the bound it was held to
     * @param worst       the output with the largest error
     * @param timing      timings (null when validation failed: nothing is timed)
     * @param metrics     traffic of the validation run when the backend measures it
     * @param timed       "host" (the float[] API) or "device" (device-resident, inputs uploaded once)
     * @param launches    the kernels of the validation run with their occupancy, when the backend reports them
     */
    record Result(double maxRelError, double tolerance, String worst, BenchHarness.Timing timing,
                  Optional<TrafficMetrics> metrics, String timed, List<KernelLaunch> launches) {
        boolean valid() {
            return maxRelError <= tolerance;
        }
    }

    /**
     * Validates, then times {@code op} (one of {@link BenchCommand#ALL_OPS}; the fused ones with a residual). The
     * fused ops are timed on the host API until the device-resident API has them.
     */
    Result run(String op, RandomInputs in, int repeat) {
        if (dtype.is16Bit()) return run16(op, in.rounded(dtype), repeat);
        Shape s = in.shape();
        int c = s.channels();
        float[] y = nan(in.x().length);
        float[] mean = nan(c);
        float[] invstd = nan(c);
        float[] rm = in.runningMean().clone();
        float[] rv = in.runningVar().clone();
        Runnable body;
        Errors err;
        Optional<TrafficMetrics> metrics;
        List<KernelLaunch> launches;
        switch (op) {
            case "forward-train": {
                body = () -> ops.forwardTraining(s, in.x(), in.gamma(), in.beta(), EPS, rm, rv, MOMENTUM, y, mean,
                        invstd);
                body.run();
                metrics = metrics();
                launches = launches();
                err = forwardTrainErrors(in, y, mean, invstd, rm, rv);
                break;
            }
            case "forward-eval": {
                body = () -> ops.forwardInference(s, in.x(), in.gamma(), in.beta(), in.runningMean(), in.runningVar(),
                        EPS, y);
                body.run();
                metrics = metrics();
                launches = launches();
                err = new Errors(BenchCommand.CROSS_BACKEND_FACTOR, false);
                if (isCpu()) {
                    err.add("y", y, Float64Check.forwardInference(s, in.x(), in.gamma(), in.beta(), in.runningMean(),
                            in.runningVar(), EPS));
                } else {
                    float[] ref = new float[y.length];
                    cpu().forwardInference(s, in.x(), in.gamma(), in.beta(), in.runningMean(), in.runningVar(), EPS,
                            ref);
                    err.add("y", y, ref);
                }
                break;
            }
            case "backward": {
                ops.forwardTraining(s, in.x(), in.gamma(), in.beta(), EPS, null, null, 0, y, mean, invstd);
                float[] dx = nan(in.x().length);
                float[] dgamma = nan(c);
                float[] dbeta = nan(c);
                body = () -> ops.backwardTraining(s, in.x(), in.dy(), in.gamma(), mean, invstd, dx, dgamma, dbeta);
                body.run();
                metrics = metrics();
                launches = launches();
                err = new Errors(BenchCommand.CROSS_BACKEND_FACTOR, true);
                if (isCpu()) {
                    Float64Check.Gradients g = Float64Check.backwardTraining(s, in.x(), in.dy(), in.gamma(), EPS);
                    err.add("dx", dx, g.dx()).add("dgamma", dgamma, g.dgamma()).add("dbeta", dbeta, g.dbeta());
                } else {
                    float[] rdx = new float[dx.length];
                    float[] rdg = new float[c];
                    float[] rdb = new float[c];
                    cpu().backwardTraining(s, in.x(), in.dy(), in.gamma(), mean, invstd, rdx, rdg, rdb);
                    err.add("dx", dx, rdx).add("dgamma", dgamma, rdg).add("dbeta", dbeta, rdb);
                }
                break;
            }
            case "forward-train-relu": {
                float[] z = RandomInputs.residual(s, BenchCommand.SEED);
                int[] mask = new int[(in.x().length + 31) / 32];
                body = () -> ops.forwardTrainingRelu(s, in.x(), z, in.gamma(), in.beta(), EPS, rm, rv, MOMENTUM, y,
                        mask, mean, invstd);
                body.run();
                metrics = metrics();
                launches = launches();
                err = forwardTrainReluErrors(in, z, y, mask, mean, invstd, rm, rv);
                break;
            }
            case "forward-eval-relu": {
                float[] z = RandomInputs.residual(s, BenchCommand.SEED);
                int[] mask = new int[(in.x().length + 31) / 32];
                body = () -> ops.forwardInferenceRelu(s, in.x(), z, in.gamma(), in.beta(), in.runningMean(),
                        in.runningVar(), EPS, y, mask);
                body.run();
                metrics = metrics();
                launches = launches();
                double[] v = Float64Check.preActivation(Float64Check.forwardInference(s, in.x(), in.gamma(),
                        in.beta(), in.runningMean(), in.runningVar(), EPS), z);
                err = new Errors(BenchCommand.CROSS_BACKEND_FACTOR, false);
                reluErrors(err, y, mask, v, isCpu() ? null : ref -> cpu().forwardInferenceRelu(s, in.x(), z,
                        in.gamma(), in.beta(), in.runningMean(), in.runningVar(), EPS, ref, null));
                break;
            }
            case "backward-relu": {
                float[] z = RandomInputs.residual(s, BenchCommand.SEED);
                ops.forwardTrainingRelu(s, in.x(), z, in.gamma(), in.beta(), EPS, null, null, 0, y, null, mean,
                        invstd);
                // The float64 mask, the same for the backend and its reference.
                int[] mask = Float64Check.mask(Float64Check.preActivation(Float64Check.forwardTraining(s, in.x(),
                        in.gamma(), in.beta(), EPS, null, null, 0).y(), z));
                float[] dx = nan(in.x().length);
                float[] dz = nan(in.x().length);
                float[] dgamma = nan(c);
                float[] dbeta = nan(c);
                body = () -> ops.backwardTrainingRelu(s, in.x(), in.dy(), mask, in.gamma(), mean, invstd, dx, dz,
                        dgamma, dbeta);
                body.run();
                metrics = metrics();
                launches = launches();
                err = new Errors(BenchCommand.CROSS_BACKEND_FACTOR, true);
                float[] g = Float64Check.gate(in.dy(), mask);
                if (isCpu()) {
                    Float64Check.Gradients d = Float64Check.backwardTraining(s, in.x(), g, in.gamma(), EPS);
                    err.add("dx", dx, d.dx()).add("dz", dz, g).add("dgamma", dgamma, d.dgamma())
                            .add("dbeta", dbeta, d.dbeta());
                } else {
                    float[] rdx = new float[dx.length];
                    float[] rdg = new float[c];
                    float[] rdb = new float[c];
                    cpu().backwardTraining(s, in.x(), g, in.gamma(), mean, invstd, rdx, rdg, rdb);
                    err.add("dx", dx, rdx).add("dz", dz, g).add("dgamma", dgamma, rdg).add("dbeta", dbeta, rdb);
                }
                break;
            }
            default:
                throw new IllegalArgumentException("op: unknown '" + op + "'");
        }
        if (!(err.worstError <= err.tolerance)) {
            return new Result(err.worstError, err.tolerance, err.worstName, null, metrics, null, launches);
        }
        if (ops instanceof DeviceResidentTiming d && !op.contains("relu")) {
            DeviceResidentTiming.Op dop = op.equals("forward-train") ? DeviceResidentTiming.Op.FORWARD_TRAINING
                    : op.equals("forward-eval") ? DeviceResidentTiming.Op.FORWARD_INFERENCE
                    : DeviceResidentTiming.Op.BACKWARD_TRAINING;
            // mean/invstd hold the backend's own saved statistics here (backward needs them).
            try (DeviceResidentTiming.Timed timed = d.prepareTiming(dop, s, in.x(), in.dy(), in.gamma(), in.beta(),
                    in.runningMean(), in.runningVar(), mean, invstd, EPS, MOMENTUM)) {
                BenchHarness.Timing t = BenchHarness.time(timed::run, repeat, warmupNanos);
                return new Result(err.worstError, err.tolerance, err.worstName, t, metrics, "device", launches);
            }
        }
        BenchHarness.Timing t = BenchHarness.time(body, repeat, warmupNanos);
        return new Result(err.worstError, err.tolerance, err.worstName, t, metrics, "host", launches);
    }

    /**
     * {@link #run} in the 16-bit type: inputs already rounded to it, the 16-bit operations, y, dx and dz validated
     * widened (against float64 on the CPU backend, else against the CPU backend's 16-bit result).
     */
    private Result run16(String op, RandomInputs in, int repeat) {
        DType t = dtype;
        Shape s = in.shape();
        int n = in.x().length;
        int c = s.channels();
        short[] x = t.encode(in.x());
        short[] dy = t.encode(in.dy());
        float[] zf = t.decode(t.encode(RandomInputs.residual(s, BenchCommand.SEED)));
        short[] z = t.encode(zf);
        short[] y = new short[n];
        float[] mean = nan(c);
        float[] invstd = nan(c);
        float[] rm = in.runningMean().clone();
        float[] rv = in.runningVar().clone();
        boolean cpuSide = isCpu();
        Runnable body;
        Errors err;
        switch (op) {
            case "forward-train" -> {
                body = () -> ops.forwardTraining(s, t, x, in.gamma(), in.beta(), EPS, rm, rv, MOMENTUM, y, mean,
                        invstd);
                body.run();
                err = forwardTrainErrors(in, t.decode(y), mean, invstd, rm, rv);
            }
            case "forward-eval" -> {
                body = () -> ops.forwardInference(s, t, x, in.gamma(), in.beta(), in.runningMean(), in.runningVar(),
                        EPS, y);
                body.run();
                err = new Errors(BenchCommand.CROSS_BACKEND_FACTOR, false);
                if (cpuSide) {
                    err.add("y", t.decode(y), Float64Check.forwardInference(s, in.x(), in.gamma(), in.beta(),
                            in.runningMean(), in.runningVar(), EPS));
                } else {
                    short[] ref = new short[n];
                    cpu().forwardInference(s, t, x, in.gamma(), in.beta(), in.runningMean(), in.runningVar(), EPS,
                            ref);
                    err.add("y", t.decode(y), t.decode(ref));
                }
            }
            case "backward" -> {
                ops.forwardTraining(s, t, x, in.gamma(), in.beta(), EPS, null, null, 0, y, mean, invstd);
                short[] dx = new short[n];
                float[] dgamma = nan(c);
                float[] dbeta = nan(c);
                body = () -> ops.backwardTraining(s, t, x, dy, in.gamma(), mean, invstd, dx, dgamma, dbeta);
                body.run();
                err = new Errors(BenchCommand.CROSS_BACKEND_FACTOR, true);
                if (cpuSide) {
                    Float64Check.Gradients g = Float64Check.backwardTraining(s, in.x(), in.dy(), in.gamma(), EPS);
                    err.add("dx", t.decode(dx), g.dx()).add("dgamma", dgamma, g.dgamma())
                            .add("dbeta", dbeta, g.dbeta());
                } else {
                    short[] rdx = new short[n];
                    float[] rdg = new float[c];
                    float[] rdb = new float[c];
                    cpu().backwardTraining(s, t, x, dy, in.gamma(), mean, invstd, rdx, rdg, rdb);
                    err.add("dx", t.decode(dx), t.decode(rdx)).add("dgamma", dgamma, rdg).add("dbeta", dbeta, rdb);
                }
            }
            case "forward-train-relu", "forward-eval-relu" -> {
                boolean train = op.equals("forward-train-relu");
                int[] mask = new int[(n + 31) / 32];
                body = train
                        ? () -> ops.forwardTrainingRelu(s, t, x, z, in.gamma(), in.beta(), EPS, rm, rv, MOMENTUM, y,
                                mask, mean, invstd)
                        : () -> ops.forwardInferenceRelu(s, t, x, z, in.gamma(), in.beta(), in.runningMean(),
                                in.runningVar(), EPS, y, mask);
                body.run();
                double[] bn = train ? Float64Check.forwardTraining(s, in.x(), in.gamma(), in.beta(), EPS,
                        in.runningMean(), in.runningVar(), MOMENTUM).y()
                        : Float64Check.forwardInference(s, in.x(), in.gamma(), in.beta(), in.runningMean(),
                                in.runningVar(), EPS);
                double[] v = Float64Check.preActivation(bn, zf);
                err = new Errors(BenchCommand.CROSS_BACKEND_FACTOR, false);
                reluErrors(err, t.decode(y), mask, v, cpuSide ? null : ref -> {
                    short[] ry = new short[n];
                    if (train) {
                        cpu().forwardTrainingRelu(s, t, x, z, in.gamma(), in.beta(), EPS, null, null, 0, ry, null,
                                new float[c], new float[c]);
                    } else {
                        cpu().forwardInferenceRelu(s, t, x, z, in.gamma(), in.beta(), in.runningMean(),
                                in.runningVar(), EPS, ry, null);
                    }
                    System.arraycopy(t.decode(ry), 0, ref, 0, n);
                });
                if (train) {
                    Float64Check.Forward f = Float64Check.forwardTraining(s, in.x(), in.gamma(), in.beta(), EPS,
                            in.runningMean(), in.runningVar(), MOMENTUM);
                    err.add("save_mean", mean, f.mean()).add("save_invstd", invstd, f.invstd())
                            .add("running_mean", rm, f.runningMean()).add("running_var", rv, f.runningVar());
                }
            }
            case "backward-relu" -> {
                ops.forwardTrainingRelu(s, t, x, z, in.gamma(), in.beta(), EPS, null, null, 0, y, null, mean, invstd);
                int[] mask = Float64Check.mask(Float64Check.preActivation(Float64Check.forwardTraining(s, in.x(),
                        in.gamma(), in.beta(), EPS, null, null, 0).y(), zf));
                short[] dx = new short[n];
                short[] dz = new short[n];
                float[] dgamma = nan(c);
                float[] dbeta = nan(c);
                body = () -> ops.backwardTrainingRelu(s, t, x, dy, mask, in.gamma(), mean, invstd, dx, dz, dgamma,
                        dbeta);
                body.run();
                err = new Errors(BenchCommand.CROSS_BACKEND_FACTOR, true);
                float[] g = Float64Check.gate(in.dy(), mask);
                if (cpuSide) {
                    Float64Check.Gradients d = Float64Check.backwardTraining(s, in.x(), g, in.gamma(), EPS);
                    err.add("dx", t.decode(dx), d.dx()).add("dz", t.decode(dz), g).add("dgamma", dgamma, d.dgamma())
                            .add("dbeta", dbeta, d.dbeta());
                } else {
                    short[] rdx = new short[n];
                    short[] rdz = new short[n];
                    float[] rdg = new float[c];
                    float[] rdb = new float[c];
                    cpu().backwardTrainingRelu(s, t, x, dy, mask, in.gamma(), mean, invstd, rdx, rdz, rdg, rdb);
                    err.add("dx", t.decode(dx), t.decode(rdx)).add("dz", t.decode(dz), g).add("dgamma", dgamma, rdg)
                            .add("dbeta", dbeta, rdb);
                }
            }
            default -> throw new IllegalArgumentException("op: unknown '" + op + "'");
        }
        Optional<TrafficMetrics> metrics = metrics();
        List<KernelLaunch> launches = launches();
        if (!(err.worstError <= err.tolerance)) {
            return new Result(err.worstError, err.tolerance, err.worstName, null, metrics, null, launches);
        }
        if (ops instanceof DeviceResidentTiming d && !op.contains("relu")) {
            DeviceResidentTiming.Op dop = op.equals("forward-train") ? DeviceResidentTiming.Op.FORWARD_TRAINING
                    : op.equals("forward-eval") ? DeviceResidentTiming.Op.FORWARD_INFERENCE
                    : DeviceResidentTiming.Op.BACKWARD_TRAINING;
            DeviceResidentTiming.Timed timed = d.prepareTiming(dop, s, t, x, dy, in.gamma(), in.beta(),
                    in.runningMean(), in.runningVar(), mean, invstd, EPS, MOMENTUM);
            if (timed != null) {
                try (timed) {
                    BenchHarness.Timing tm = BenchHarness.time(timed::run, repeat, warmupNanos);
                    return new Result(err.worstError, err.tolerance, err.worstName, tm, metrics, "device", launches);
                }
            }
        }
        BenchHarness.Timing tm = BenchHarness.time(body, repeat, warmupNanos);
        return new Result(err.worstError, err.tolerance, err.worstName, tm, metrics, "host", launches);
    }

    /**
     * The copy bandwidth to compare with: the host's for the CPU backend (all cores, a copy of {@code bytes}), the
     * device's for a {@link DeviceResidentTiming} backend that can time a device copy, else null.
     */
    BenchHarness.CopyBandwidth copyBandwidth(long bytes, int repeat) {
        if (isCpu()) {
            return BenchHarness.measureCopy(bytes, Runtime.getRuntime().availableProcessors(), repeat, warmupNanos);
        }
        if (ops instanceof DeviceResidentTiming d) {
            DeviceResidentTiming.Timed copy = d.prepareCopy(bytes);
            if (copy != null) {
                try (copy) {
                    return new BenchHarness.CopyBandwidth(bytes, 0, BenchHarness.time(copy::run, repeat, warmupNanos),
                            "on the device");
                }
            }
        }
        return null;
    }

    private Errors forwardTrainErrors(RandomInputs in, float[] y, float[] mean, float[] invstd, float[] rm,
                                      float[] rv) {
        Shape s = in.shape();
        Errors err = new Errors(BenchCommand.CROSS_BACKEND_FACTOR, false);
        if (isCpu()) {
            Float64Check.Forward f = Float64Check.forwardTraining(s, in.x(), in.gamma(), in.beta(), EPS,
                    in.runningMean(), in.runningVar(), MOMENTUM);
            return err.add("y", y, f.y()).add("save_mean", mean, f.mean()).add("save_invstd", invstd, f.invstd())
                    .add("running_mean", rm, f.runningMean()).add("running_var", rv, f.runningVar());
        }
        int c = s.channels();
        float[] ry = new float[y.length];
        float[] rmean = new float[c];
        float[] rinv = new float[c];
        float[] rrm = in.runningMean().clone();
        float[] rrv = in.runningVar().clone();
        cpu().forwardTraining(s, in.x(), in.gamma(), in.beta(), EPS, rrm, rrv, MOMENTUM, ry, rmean, rinv);
        return err.add("y", y, ry).add("save_mean", mean, rmean).add("save_invstd", invstd, rinv)
                .add("running_mean", rm, rrm).add("running_var", rv, rrv);
    }

    private Errors forwardTrainReluErrors(RandomInputs in, float[] z, float[] y, int[] mask, float[] mean,
                                          float[] invstd, float[] rm, float[] rv) {
        Shape s = in.shape();
        Float64Check.Forward f = Float64Check.forwardTraining(s, in.x(), in.gamma(), in.beta(), EPS,
                in.runningMean(), in.runningVar(), MOMENTUM);
        Errors err = new Errors(BenchCommand.CROSS_BACKEND_FACTOR, false);
        if (isCpu()) {
            err.add("save_mean", mean, f.mean()).add("save_invstd", invstd, f.invstd())
                    .add("running_mean", rm, f.runningMean()).add("running_var", rv, f.runningVar());
            reluErrors(err, y, mask, Float64Check.preActivation(f.y(), z), null);
            return err;
        }
        int c = s.channels();
        float[] rmean = new float[c];
        float[] rinv = new float[c];
        float[] rrm = in.runningMean().clone();
        float[] rrv = in.runningVar().clone();
        float[] ry = new float[y.length];
        cpu().forwardTrainingRelu(s, in.x(), z, in.gamma(), in.beta(), EPS, rrm, rrv, MOMENTUM, ry, null, rmean, rinv);
        err.add("save_mean", mean, rmean).add("save_invstd", invstd, rinv).add("running_mean", rm, rrm)
                .add("running_var", rv, rrv);
        reluErrors(err, y, mask, Float64Check.preActivation(f.y(), z), out -> System.arraycopy(ry, 0, out, 0,
                ry.length));
        return err;
    }

    /**
     * y against float64's relu(v) (CPU) or the CPU backend's y ({@code reference} fills it), and the mask against
     * float64's v ({@link ErrorMetric#maskError}) in either case.
     */
    private void reluErrors(Errors err, float[] y, int[] mask, double[] v,
                            java.util.function.Consumer<float[]> reference) {
        if (reference == null) {
            err.add("y", y, Float64Check.relu(v));
        } else {
            float[] ry = new float[y.length];
            reference.accept(ry);
            err.add("y", y, ry);
        }
        float[] bits = new float[y.length];
        for (int i = 0; i < bits.length; i++) bits[i] = mask[i / 32] >>> (i % 32) & 1;
        err.note("mask", ErrorMetric.maskError(bits, v));
    }

    /**
     * Accumulates the worst error of several outputs: the one furthest past (or nearest to) its own tolerance,
     * {@link CrossCheck#tolerance} in this suite's storage type (times the cross-backend factor off the CPU).
     */
    private final class Errors {
        private final double factor;
        private final String kind;
        double tolerance;
        double worstError;
        String worstName = "-";
        private double worstRatio;

        Errors(double crossFactor, boolean gradients) {
            factor = isCpu() ? 1 : crossFactor;
            kind = gradients ? "backward" : "forward";
            tolerance = factor * CrossCheck.tolerance(DType.FLOAT32, kind, "-");
        }

        Errors add(String name, float[] actual, double[] expected) {
            return note(name, ErrorMetric.maxRelativeError(actual, expected));
        }

        Errors add(String name, float[] actual, float[] expected) {
            return note(name, ErrorMetric.maxRelativeError(actual, expected));
        }

        Errors note(String name, double e) {
            if (Double.isNaN(worstError)) return this;
            double tol = factor * CrossCheck.tolerance(dtype, kind, name);
            double ratio = e / tol;
            if (Double.isNaN(e) || ratio > worstRatio || worstName.equals("-")) {
                worstError = e;
                worstName = name;
                worstRatio = ratio;
                tolerance = tol;
            }
            return this;
        }
    }

    private boolean isCpu() {
        return ops.name().equals("cpu");
    }

    private BatchNormOps cpu() {
        if (cpu == null) cpu = Backends.open("cpu");
        return cpu;
    }

    private List<KernelLaunch> launches() {
        return ops instanceof LaunchReporting r ? r.lastOperationLaunches() : List.of();
    }

    private Optional<TrafficMetrics> metrics() {
        return ops instanceof MeasuredOps m ? m.lastOperationMetrics() : Optional.empty();
    }

    private static float[] nan(int n) {
        float[] a = new float[n];
        Arrays.fill(a, Float.NaN);
        return a;
    }

    @Override
    public void close() {
        if (cpu != null) cpu.close();
    }
}
