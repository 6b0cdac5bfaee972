package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.Activation;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.BatchNormOptions;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.ReluMask;
import io.github.batchnorm4j.Shape;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code batchnorm4j forward}: batch-norm forward of a .npy tensor. Writes {@code y.npy}; in training mode also
 * {@code save_mean.npy} and {@code save_invstd.npy}, and the updated {@code running_mean.npy} and
 * {@code running_var.npy} when running statistics are tracked. With {@code --activation relu} y = relu(bn(x) + z)
 * (z from {@code --residual}, or none) and the ReLU mask in {@code mask.npy} ({@link MaskFile}). Input files are never
 * modified.
 */
@Command(name = "forward", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Batch-norm forward of X.npy into DIR/y.npy (PyTorch semantics).",
            "Train mode also writes save_mean.npy, save_invstd.npy and, when running statistics are tracked, the "
                + "updated running_mean.npy and running_var.npy.",
            "--activation relu: y = relu(bn(x) + z) with z from --residual (or none), and the ReLU mask in mask.npy "
                + "(uint8, np.packbits(v > 0, bitorder='little') of the flat pre-activation)."})
final class ForwardCommand implements Callable<Integer> {

    @Option(names = "--x", required = true, paramLabel = "X.npy",
            description = "Input (float16, float32 or float64, C order).")
    Path x;

    @Option(names = "--dtype", converter = DTypeConverter.class, paramLabel = "float32|float16|bfloat16",
            description = "Storage type of x, y (and z): float16 and bfloat16 round x (and z) once to the type (exact for a '<f2' "
                    + "file, or float32 values that are bfloat16 values), compute in float32 with float32 statistics "
                    + "and parameters, and round y once. y.npy is '<f2' for float16 and, as NumPy has no bfloat16, "
                    + "float32 holding the exact bfloat16 values for bfloat16 (default: float16 for a '<f2' x, else "
                    + "float32).")
    DType dtype;

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

    @Option(names = "--activation", defaultValue = "none", paramLabel = "none|relu",
            description = "relu: fused batch norm + (add) + ReLU, also writes mask.npy (default: ${DEFAULT-VALUE}).")
    String activation;

    @Option(names = "--residual", paramLabel = "Z.npy",
            description = "With --activation relu: added to bn(x) before the ReLU (x's shape).")
    Path residual;

    @Mixin
    BackendAndOutOptions target;

    @Spec
    CommandSpec spec;

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
        boolean relu = Inputs.activation(activation) == Activation.RELU;
        if (residual != null && !relu) {
            throw new IllegalArgumentException("--residual: needs --activation relu (y = relu(bn(x) + z))");
        }
        Inputs.checkOut(target.out);
        NpyArray xa = Inputs.read("--x", x, residual != null ? 3 : 2); // x and y (and z)
        DType t = Inputs.dtype(dtype, xa);
        Shape shape = Inputs.shapeOf(xa, x, layout);
        float[] za = residual != null ? Inputs.likeX("--residual", residual, xa) : null;
        int c = shape.channels();
        float[] g = Inputs.perChannel("--gamma", gamma, shape);
        float[] b = Inputs.perChannel("--beta", beta, shape);
        boolean tracked = !noRunningStats;
        boolean batchStatistics = mode == Mode.train || !tracked; // eval without running statistics uses the batch's
        float[] rm = null;
        float[] rv = null;
        if (tracked) {
            rm = running.mean(shape);
            rv = running.variance(shape);
        }
        if (mode == Mode.train) {
            Inputs.checkTrainable(shape);
        } else if (!tracked && shape.reductionSize() < 2) {
            throw new IllegalArgumentException("--mode eval --no-running-stats normalizes with the batch statistics:"
                    + " expected more than 1 value per channel, got x " + shape + " (M = " + shape.reductionSize() + ")");
        }
        // Affine on without files: gamma = 1, beta = 0, which is what null means to the backend.
        BatchNormOptions options = (m == null ? BatchNormOptions.builder().cumulativeMomentum()
                : BatchNormOptions.builder().momentum(m)).eps(eps).build();
        List<String> names = new ArrayList<>(List.of("y.npy"));
        if (relu) names.add("mask.npy");
        if (mode == Mode.train) names.addAll(List.of("save_mean.npy", "save_invstd.npy"));
        if (mode == Mode.train && tracked) names.addAll(List.of("running_mean.npy", "running_var.npy"));
        Map<String, Path> inputs = new LinkedHashMap<>();
        inputs.put("--x", x);
        inputs.put("--gamma", gamma);
        inputs.put("--beta", beta);
        inputs.put("--running-mean", running.runningMean);
        inputs.put("--running-var", running.runningVar);
        inputs.put("--residual", residual);
        boolean sixteen = t.is16Bit();
        int n = xa.data().length;
        short[] xs = sixteen ? t.encode(xa.data()) : null; // the one rounding of x to the storage type
        short[] zs = sixteen && za != null ? t.encode(za) : null;
        short[] ys = sixteen ? new short[xs.length] : null;
        float[] y = sixteen ? null : new float[xa.data().length];
        int[] mask = relu ? ReluMask.allocate(shape) : null;
        String detail;
        // The output folder is checked and staged before the backend opens; an unavailable backend (exit 3), a
        // failing computation or a failed write removes the staging folder: nothing is left behind.
        try (OutputFolder out = OutputFolder.prepare("--out", target.out, names, inputs);
             BatchNormOps ops = Inputs.openBackend(target.backend)) {
            if (batchStatistics) {
                float[] mean = new float[c];
                float[] invstd = new float[c];
                double factor = tracked && mode == Mode.train ? options.momentumFactor(numBatchesTracked + 1) : 0;
                float[] newMean = mode == Mode.train && tracked ? rm.clone() : null;
                float[] newVar = mode == Mode.train && tracked ? rv.clone() : null;
                if (relu && sixteen) {
                    ops.forwardTrainingRelu(shape, t, xs, zs, g, b, eps, newMean, newVar, factor, ys, mask, mean,
                            invstd);
                } else if (relu) {
                    ops.forwardTrainingRelu(shape, xa.data(), za, g, b, eps, newMean, newVar, factor, y, mask, mean,
                            invstd);
                } else if (sixteen) {
                    ops.forwardTraining(shape, t, xs, g, b, eps, newMean, newVar, factor, ys, mean, invstd);
                } else {
                    ops.forwardTraining(shape, xa.data(), g, b, eps, newMean, newVar, factor, y, mean, invstd);
                }
                writeY(out, xa.dims(), t, y, ys);
                if (mode == Mode.train) {
                    out.writeNpy("save_mean.npy", Inputs.vector(c), mean);
                    out.writeNpy("save_invstd.npy", Inputs.vector(c), invstd);
                    if (tracked) {
                        out.writeNpy("running_mean.npy", Inputs.vector(c), newMean);
                        out.writeNpy("running_var.npy", Inputs.vector(c), newVar);
                    }
                }
                detail = mode == Mode.train && tracked
                        ? "momentum " + factor + (m == null ? " (cumulative)" : "") + ", num_batches_tracked "
                            + (numBatchesTracked + 1)
                        : "batch statistics, running statistics not tracked";
            } else {
                if (relu && sixteen) ops.forwardInferenceRelu(shape, t, xs, zs, g, b, rm, rv, eps, ys, mask);
                else if (relu) ops.forwardInferenceRelu(shape, xa.data(), za, g, b, rm, rv, eps, y, mask);
                else if (sixteen) ops.forwardInference(shape, t, xs, g, b, rm, rv, eps, ys);
                else ops.forwardInference(shape, xa.data(), g, b, rm, rv, eps, y);
                writeY(out, xa.dims(), t, y, ys);
                detail = "running statistics";
            }
            if (relu) {
                Path f = out.file("mask.npy");
                out.write("mask.npy", d -> MaskFile.write(f, mask));
                detail += ", y = relu(bn(x)" + (za != null ? " + z" : "") + "): " + ReluMask.count(mask, n)
                        + " of " + n + " passed";
            }
            out.commit();
            spec.commandLine().getOut().println("forward " + mode + " on " + ops.name() + Inputs.inDtype(t)
                    + ": x (" + xa.dimsText()
                    + ") " + shape.layout().cliName() + ", M = " + shape.reductionSize() + ", " + detail + " -> "
                    + out.dir() + ": " + String.join(", ", names));
            spec.commandLine().getOut().flush();
        }
        return Main.OK;
    }

    private static void writeY(OutputFolder out, long[] dims, DType t, float[] y, short[] ys) {
        if (t.is16Bit()) out.writeNpy("y.npy", dims, t, ys);
        else out.writeNpy("y.npy", dims, y);
    }
}
