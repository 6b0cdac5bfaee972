package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.ChannelStatistics;
import io.github.batchnorm4j.Shape;
import java.nio.file.Path;
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
 * from x (mean and 1/sqrt(var + eps)) when they are not given; eval mode uses the frozen running statistics.
 */
@Command(name = "backward", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Batch-norm backward: DIR/dx.npy, DIR/dgamma.npy, DIR/dbeta.npy from X.npy and DY.npy.",
            "Train mode recomputes mean/invstd from x when --save-mean/--save-invstd are not given; eval mode uses "
                + "--running-mean/--running-var."})
final class BackwardCommand implements Callable<Integer> {

    @Option(names = "--x", required = true, paramLabel = "X.npy", description = "Forward input.")
    Path x;

    @Option(names = "--dy", required = true, paramLabel = "DY.npy", description = "Gradient w.r.t. y (x's shape).")
    Path dy;

    @Option(names = "--gamma", paramLabel = "G.npy", description = "Scale per channel (default 1).")
    Path gamma;

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
        Inputs.checkOut(target.out);
        NpyArray xa = Inputs.read("--x", x, 3); // x, dy and dx
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
        List<String> names = List.of("dx.npy", "dgamma.npy", "dbeta.npy");
        Map<String, Path> inputs = new LinkedHashMap<>();
        inputs.put("--x", x);
        inputs.put("--dy", dy);
        inputs.put("--gamma", gamma);
        inputs.put("--save-mean", saveMean);
        inputs.put("--save-invstd", saveInvstd);
        inputs.put("--running-mean", running.runningMean);
        inputs.put("--running-var", running.runningVar);
        float[] dx = new float[xa.data().length];
        float[] dgamma = new float[c];
        float[] dbeta = new float[c];
        String stats;
        // Staged before the backend opens and removed on any failure (see ForwardCommand).
        try (OutputFolder out = OutputFolder.prepare("--out", target.out, names, inputs);
             BatchNormOps ops = Inputs.openBackend(target.backend)) {
            if (mode == Mode.train) {
                stats = "saved statistics";
                if (sm == null) {
                    ChannelStatistics st = ops.statistics(shape, xa.data());
                    sm = st.meansAsFloats();
                    si = st.invstdAsFloats(eps);
                    stats = "statistics recomputed from x";
                }
                ops.backwardTraining(shape, xa.data(), dya, g, sm, si, dx, dgamma, dbeta);
            } else {
                stats = "running statistics";
                ops.backwardInference(shape, xa.data(), dya, g, rm, rv, eps, dx, dgamma, dbeta);
            }
            out.writeNpy("dx.npy", xa.dims(), dx);
            out.writeNpy("dgamma.npy", Inputs.vector(c), dgamma);
            out.writeNpy("dbeta.npy", Inputs.vector(c), dbeta);
            out.commit();
            spec.commandLine().getOut().println("backward " + mode + " on " + ops.name() + ": x (" + xa.dimsText()
                    + ") " + shape.layout().cliName() + ", M = " + shape.reductionSize() + ", " + stats + " -> "
                    + out.dir() + ": dx.npy, dgamma.npy, dbeta.npy");
            spec.commandLine().getOut().flush();
        }
        return Main.OK;
    }
}
