package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.Backends;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.BatchNormOptions;
import io.github.batchnorm4j.Shape;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code batchnorm4j forward}: batch-norm forward of a .npy tensor. Writes {@code y.npy}; in training mode also
 * {@code save_mean.npy} and {@code save_invstd.npy}, and the updated {@code running_mean.npy} and
 * {@code running_var.npy} when running statistics are tracked. Input files are never modified.
 */
@Command(name = "forward", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Batch-norm forward of X.npy into DIR/y.npy (PyTorch semantics).",
            "Train mode also writes save_mean.npy, save_invstd.npy and, when running statistics are tracked, the "
                + "updated running_mean.npy and running_var.npy."})
final class ForwardCommand implements Callable<Integer> {

    @Option(names = "--x", required = true, paramLabel = "X.npy", description = "Input (float32 or float64, C order).")
    Path x;

    @Option(names = "--gamma", paramLabel = "G.npy", description = "Scale per channel (default 1).")
    Path gamma;

    @Option(names = "--beta", paramLabel = "B.npy", description = "Shift per channel (default 0).")
    Path beta;

    @Mixin
    RunningStatsOptions running;

    @Option(names = "--layout", defaultValue = "channels-first", paramLabel = "L",
            description = "channels-first, channels-last, or a named layout that also fixes the rank: NCL, NCHW, "
                    + "NCDHW, NLC, NHWC, NDHWC, NC (default: ${DEFAULT-VALUE}; a 2-D x is always [N, C]).")
    String layout;

    @Option(names = "--mode", defaultValue = "train", paramLabel = "train|eval",
            description = "train: batch statistics; eval: running statistics (default: ${DEFAULT-VALUE}).")
    Mode mode;

    @Option(names = "--eps", defaultValue = "1e-5", description = "Added to the variance (default: ${DEFAULT-VALUE}).")
    double eps;

    @Option(names = "--momentum", defaultValue = "0.1", paramLabel = "M|cumulative",
            description = "Weight of this batch in the running statistics, PyTorch's sense (Keras decay d is 1 - d); "
                    + "'cumulative' averages all batches: 1/(K+1) (default: ${DEFAULT-VALUE}).")
    String momentum;

    @Option(names = "--num-batches-tracked", defaultValue = "0", paramLabel = "K",
            description = "Batches already in the running statistics (for cumulative momentum; default: ${DEFAULT-VALUE}).")
    long numBatchesTracked;

    @Option(names = "--no-affine", description = "No gamma/beta (gamma = 1, beta = 0).")
    boolean noAffine;

    @Option(names = "--no-running-stats",
            description = "Do not track running statistics (eval mode then uses batch statistics).")
    boolean noRunningStats;

    @Mixin
    BackendAndOutOptions target;

    @Override
    public Integer call() throws Exception {
        // Validate everything cheap before reading tensors or opening a backend.
        Inputs.checkEps(eps);
        Double m = Inputs.momentum(momentum);
        if (numBatchesTracked < 0) {
            throw new IllegalArgumentException("--num-batches-tracked: expected >= 0, got " + numBatchesTracked);
        }
        if (noAffine && (gamma != null || beta != null)) {
            throw new IllegalArgumentException("--gamma/--beta cannot be combined with --no-affine");
        }
        if (noRunningStats && running.given()) {
            throw new IllegalArgumentException("--running-mean/--running-var cannot be combined with --no-running-stats");
        }
        NpyArray xa = Inputs.read("--x", x);
        Shape shape = Inputs.shapeOf(xa, x, layout);
        int c = shape.channels();
        float[] g = Inputs.perChannel("--gamma", gamma, shape);
        float[] b = Inputs.perChannel("--beta", beta, shape);
        boolean tracked = !noRunningStats;
        float[] rm = null;
        float[] rv = null;
        if (tracked) {
            rm = running.mean(shape);
            rv = running.variance(shape);
        }
        if (mode == Mode.train) Inputs.checkTrainable(shape);
        // Affine on without files: gamma = 1, beta = 0, which is what null means to the backend.
        BatchNormOptions options = (m == null ? BatchNormOptions.builder().cumulativeMomentum()
                : BatchNormOptions.builder().momentum(m)).eps(eps).build();
        float[] y = new float[xa.data().length];
        List<String> written = new ArrayList<>();
        String detail;
        try (BatchNormOps ops = Backends.open(target.backend)) {
            // Created once the backend is open: an unavailable backend (exit 3) leaves nothing behind.
            Path dir = Inputs.outDir(target.out);
            if (mode == Mode.train || !tracked) {
                float[] mean = new float[c];
                float[] invstd = new float[c];
                double factor = tracked && mode == Mode.train ? options.momentumFactor(numBatchesTracked + 1) : 0;
                float[] newMean = mode == Mode.train && tracked ? rm.clone() : null;
                float[] newVar = mode == Mode.train && tracked ? rv.clone() : null;
                ops.forwardTraining(shape, xa.data(), g, b, eps, newMean, newVar, factor, y, mean, invstd);
                Inputs.write(dir, "y.npy", xa.dims(), y);
                written.add("y.npy");
                if (mode == Mode.train) {
                    Inputs.write(dir, "save_mean.npy", Inputs.vector(c), mean);
                    Inputs.write(dir, "save_invstd.npy", Inputs.vector(c), invstd);
                    written.addAll(List.of("save_mean.npy", "save_invstd.npy"));
                    if (tracked) {
                        Inputs.write(dir, "running_mean.npy", Inputs.vector(c), newMean);
                        Inputs.write(dir, "running_var.npy", Inputs.vector(c), newVar);
                        written.addAll(List.of("running_mean.npy", "running_var.npy"));
                    }
                }
                detail = mode == Mode.train && tracked
                        ? "momentum " + factor + (m == null ? " (cumulative)" : "") + ", num_batches_tracked "
                            + (numBatchesTracked + 1)
                        : "batch statistics, running statistics not tracked";
            } else {
                ops.forwardInference(shape, xa.data(), g, b, rm, rv, eps, y);
                Inputs.write(dir, "y.npy", xa.dims(), y);
                written.add("y.npy");
                detail = "running statistics";
            }
            System.out.println("forward " + mode + " on " + ops.name() + ": x (" + xa.dimsText() + ") "
                    + shape.layout().cliName() + ", M = " + shape.reductionSize() + ", " + detail + " -> " + dir + ": "
                    + String.join(", ", written));
        }
        return Main.OK;
    }
}
