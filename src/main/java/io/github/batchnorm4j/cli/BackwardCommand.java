package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.Activation;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.ChannelStatistics;
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
 * {@code batchnorm4j backward}: batch-norm backward of .npy tensors into {@code dx.npy}, {@code dgamma.npy} and
 * {@code dbeta.npy}. Training mode uses the saved statistics given with --save-mean/--save-invstd, or recomputes them
 * from x (mean and 1/sqrt(var + eps)) when they are not given; eval mode uses the frozen running statistics. With
 * {@code --activation relu}, dy is the gradient of y = relu(bn(x) + z): it is gated by the ReLU mask ({@code --mask},
 * or recomputed by running the same forward again, which gives the forward's bits on the same backend), and
 * {@code dz.npy} (the residual's gradient) is written too when {@code --residual} is given.
 */
@Command(name = "backward", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Batch-norm backward: DIR/dx.npy, DIR/dgamma.npy, DIR/dbeta.npy from X.npy and DY.npy.",
            "Train mode recomputes mean/invstd from x when --save-mean/--save-invstd are not given; eval mode uses "
                + "--running-mean/--running-var.",
            "--activation relu: dy is the gradient of y = relu(bn(x) + z); gated by --mask M.npy (the forward's "
                + "mask.npy) or by the mask recomputed from x, --gamma, --beta and --residual; with --residual also "
                + "writes dz.npy."})
final class BackwardCommand implements Callable<Integer> {

    @Option(names = "--x", required = true, paramLabel = "X.npy", description = "Forward input.")
    Path x;

    @Option(names = "--dy", required = true, paramLabel = "DY.npy", description = "Gradient w.r.t. y (x's shape).")
    Path dy;

    @Option(names = "--dtype", converter = DTypeConverter.class, paramLabel = "float32|float16|bfloat16",
            description = "Storage type of x, dy and dx (and z, dz), as for forward: 16-bit types round x and dy once, compute in "
                    + "float32 and round dx once (dgamma and dbeta stay float32); dx.npy is '<f2' for float16, float32 "
                    + "holding exact bfloat16 values for bfloat16 (default: float16 for a '<f2' x, else float32).")
    DType dtype;

    @Option(names = "--gamma", paramLabel = "G.npy", description = "Scale per channel (default 1).")
    Path gamma;

    @Option(names = "--beta", paramLabel = "B.npy",
            description = "Shift per channel (default 0); only to recompute the ReLU mask (--activation relu, no --mask).")
    Path beta;

    @Option(names = "--save-mean", paramLabel = "F", description = "Train mode: the forward's save_mean.npy.")
    Path saveMean;

    @Option(names = "--save-invstd", paramLabel = "F", description = "Train mode: the forward's save_invstd.npy.")
    Path saveInvstd;

    @Option(names = "--mode", defaultValue = "train", paramLabel = "train|eval",
            description = "train: batch statistics; eval: frozen running statistics (default: ${DEFAULT-VALUE}).")
    Mode mode;

    @Mixin
    RunningStatsOptions running; // eval mode only

    @Option(names = "--eps", defaultValue = "1e-5", description = "Added to the variance (default: ${DEFAULT-VALUE}).")
    double eps;

    @Option(names = "--layout", defaultValue = "channels-first", paramLabel = "L",
            description = "As for forward (default: ${DEFAULT-VALUE}).")
    String layout;

    @Option(names = "--activation", defaultValue = "none", paramLabel = "none|relu",
            description = "relu: backward of the fused batch norm + (add) + ReLU (default: ${DEFAULT-VALUE}).")
    String activation;

    @Option(names = "--mask", paramLabel = "M.npy",
            description = "With --activation relu: the forward's mask.npy (otherwise recomputed from x).")
    Path mask;

    @Option(names = "--residual", paramLabel = "Z.npy",
            description = "With --activation relu: the forward had this residual; also writes dz.npy. Read only to "
                    + "recompute the mask.")
    Path residual;

    @Mixin
    BackendAndOutOptions target;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        Inputs.checkEps(eps);
        if ((saveMean == null) != (saveInvstd == null)) {
            throw new IllegalArgumentException("--save-mean and --save-invstd must be given together");
        }
        if (mode == Mode.eval && saveMean != null) {
            throw new IllegalArgumentException("--save-mean/--save-invstd apply to --mode train only");
        }
        if (mode == Mode.train && running.given()) {
            throw new IllegalArgumentException("--running-mean/--running-var apply to --mode eval only");
        }
        boolean relu = Inputs.activation(activation) == Activation.RELU;
        if (!relu && (mask != null || residual != null)) {
            throw new IllegalArgumentException((mask != null ? "--mask" : "--residual")
                    + ": needs --activation relu");
        }
        if (beta != null && (!relu || mask != null)) {
            throw new IllegalArgumentException("--beta: only used to recompute the ReLU mask (--activation relu"
                    + " without --mask)");
        }
        Inputs.checkOut(target.out);
        NpyArray xa = Inputs.read("--x", x, relu ? 5 : 3); // x, dy and dx (and z, dz or the recomputing forward's y)
        DType t = Inputs.dtype(dtype, xa);
        Shape shape = Inputs.shapeOf(xa, x, layout);
        int c = shape.channels();
        float[] dya = Inputs.likeX("--dy", dy, xa);
        float[] g = Inputs.perChannel("--gamma", gamma, shape);
        float[] sm = Inputs.perChannel("--save-mean", saveMean, shape);
        float[] si = Inputs.perChannel("--save-invstd", saveInvstd, shape);
        float[] rm = null;
        float[] rv = null;
        if (mode == Mode.eval) {
            rm = running.mean(shape);
            rv = running.variance(shape);
        } else {
            Inputs.checkTrainable(shape);
        }
        boolean recompute = relu && mask == null;
        int[] m = relu && !recompute ? MaskFile.read("--mask", mask, xa.elementCount()) : null;
        float[] za = recompute && residual != null ? Inputs.likeX("--residual", residual, xa) : null;
        float[] b = recompute ? Inputs.perChannel("--beta", beta, shape) : null;
        List<String> names = new ArrayList<>(List.of("dx.npy", "dgamma.npy", "dbeta.npy"));
        if (relu && residual != null) names.add("dz.npy");
        Map<String, Path> inputs = new LinkedHashMap<>();
        inputs.put("--x", x);
        inputs.put("--dy", dy);
        inputs.put("--gamma", gamma);
        inputs.put("--save-mean", saveMean);
        inputs.put("--save-invstd", saveInvstd);
        inputs.put("--running-mean", running.runningMean);
        inputs.put("--running-var", running.runningVar);
        inputs.put("--beta", beta);
        inputs.put("--mask", mask);
        inputs.put("--residual", residual);
        boolean sixteen = t.is16Bit();
        short[] xs = sixteen ? t.encode(xa.data()) : null; // the one rounding of x and dy to the storage type
        short[] dys = sixteen ? t.encode(dya) : null;
        short[] zs = sixteen && za != null ? t.encode(za) : null;
        int n = xa.data().length;
        short[] dxs = sixteen ? new short[n] : null;
        float[] dx = sixteen ? null : new float[n];
        boolean withDz = relu && residual != null;
        float[] dz = withDz && !sixteen ? new float[n] : null;
        short[] dzs = withDz && sixteen ? new short[n] : null;
        float[] dgamma = new float[c];
        float[] dbeta = new float[c];
        String stats;
        // Staged before the backend opens and removed on any failure (see ForwardCommand).
        try (OutputFolder out = OutputFolder.prepare("--out", target.out, names, inputs);
             BatchNormOps ops = Inputs.openBackend(target.backend)) {
            if (recompute) {
                // The same forward again, on the same backend: its mask has the forward's bits (the kernels are
                // deterministic); in train mode its saved statistics serve when none were given.
                m = ReluMask.allocate(shape);
                float[] y = sixteen ? null : new float[n];
                short[] ys = sixteen ? new short[n] : null;
                if (mode == Mode.train) {
                    float[] fm = new float[c];
                    float[] fi = new float[c];
                    if (sixteen) ops.forwardTrainingRelu(shape, t, xs, zs, g, b, eps, null, null, 0, ys, m, fm, fi);
                    else ops.forwardTrainingRelu(shape, xa.data(), za, g, b, eps, null, null, 0, y, m, fm, fi);
                    if (sm == null) {
                        sm = fm;
                        si = fi;
                    }
                } else if (sixteen) {
                    ops.forwardInferenceRelu(shape, t, xs, zs, g, b, rm, rv, eps, ys, m);
                } else {
                    ops.forwardInferenceRelu(shape, xa.data(), za, g, b, rm, rv, eps, y, m);
                }
            }
            if (mode == Mode.train) {
                stats = saveMean != null ? "saved statistics" : "statistics recomputed from x";
                if (sm == null) {
                    ChannelStatistics st = sixteen ? ops.statistics(shape, t, xs) : ops.statistics(shape, xa.data());
                    sm = st.meansAsFloats();
                    si = st.invstdAsFloats(eps);
                }
                if (relu && sixteen) ops.backwardTrainingRelu(shape, t, xs, dys, m, g, sm, si, dxs, dzs, dgamma, dbeta);
                else if (relu) ops.backwardTrainingRelu(shape, xa.data(), dya, m, g, sm, si, dx, dz, dgamma, dbeta);
                else if (sixteen) ops.backwardTraining(shape, t, xs, dys, g, sm, si, dxs, dgamma, dbeta);
                else ops.backwardTraining(shape, xa.data(), dya, g, sm, si, dx, dgamma, dbeta);
            } else {
                stats = "running statistics";
                if (relu && sixteen) {
                    ops.backwardInferenceRelu(shape, t, xs, dys, m, g, rm, rv, eps, dxs, dzs, dgamma, dbeta);
                } else if (relu) {
                    ops.backwardInferenceRelu(shape, xa.data(), dya, m, g, rm, rv, eps, dx, dz, dgamma, dbeta);
                }
                else if (sixteen) ops.backwardInference(shape, t, xs, dys, g, rm, rv, eps, dxs, dgamma, dbeta);
                else ops.backwardInference(shape, xa.data(), dya, g, rm, rv, eps, dx, dgamma, dbeta);
            }
            if (relu) {
                stats += ", ReLU mask " + (recompute ? "recomputed from x" : "from " + mask) + " ("
                        + ReluMask.count(m, n) + " of " + n + " passed)";
            }
            if (sixteen) out.writeNpy("dx.npy", xa.dims(), t, dxs);
            else out.writeNpy("dx.npy", xa.dims(), dx);
            out.writeNpy("dgamma.npy", Inputs.vector(c), dgamma);
            out.writeNpy("dbeta.npy", Inputs.vector(c), dbeta);
            if (dz != null) out.writeNpy("dz.npy", xa.dims(), dz);
            if (dzs != null) out.writeNpy("dz.npy", xa.dims(), t, dzs);
            out.commit();
            spec.commandLine().getOut().println("backward " + mode + " on " + ops.name() + Inputs.inDtype(t)
                    + ": x (" + xa.dimsText()
                    + ") " + shape.layout().cliName() + ", M = " + shape.reductionSize() + ", " + stats + " -> "
                    + out.dir() + ": " + String.join(", ", names));
            spec.commandLine().getOut().flush();
        }
        return Main.OK;
    }
}
