package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.BackendUnavailableException;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.train.Dataset;
import io.github.batchnorm4j.train.DigitsData;
import io.github.batchnorm4j.train.FashionMnistData;
import io.github.batchnorm4j.train.Plots;
import io.github.batchnorm4j.train.RunResult;
import io.github.batchnorm4j.train.TrainBackend;
import io.github.batchnorm4j.train.TrainBackends;
import io.github.batchnorm4j.train.TrainConfig;
import io.github.batchnorm4j.train.Trainer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code batchnorm4j train}: trains the example multilayer perceptron with batch norm (the project's main job) and
 * writes plots and metrics. With {@code --compare} it trains the same network with and without batch norm at the
 * normal and at a high learning rate (four runs, same seed, same batches).
 *
 * <p>Output: one line per epoch on stdout (a progress bar on stderr when interactive), the output folder, and as the
 * last line one JSON object with test_accuracy (plus bn_/plain_test_accuracy with --compare), epochs, seconds,
 * backend and out. Exit codes: 0 success, 2 bad usage or input (a line starting with {@code error:} on stderr),
 * 3 backend unavailable.
 */
@Command(name = "train", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Train the example MLP (inputs -> 256 -> BN -> ReLU -> 256 -> BN -> ReLU -> classes) with SGD"
                + " and momentum, on the embedded 8x8 digits by default; write PNG plots, metrics.csv and metrics.json.",
                "--compare trains it with and without batch norm at --lr and at --high-lr."})
public final class TrainCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--epochs", description = "passes over the training set (default: ${DEFAULT-VALUE})")
    int epochs = 20;

    @Option(names = "--batch-size", description = "rows per SGD step, >= 2 (default: ${DEFAULT-VALUE})")
    int batchSize = 64;

    @Option(names = "--lr", description = "learning rate (default: ${DEFAULT-VALUE})")
    float lr = 0.05f;

    @Option(names = "--high-lr", description = "the second, high learning rate of --compare, where the plain network"
            + " struggles (default: ${DEFAULT-VALUE})")
    float highLr = 0.5f;

    @Option(names = "--momentum", description = "SGD momentum in [0, 1) (default: ${DEFAULT-VALUE})")
    float momentum = 0.9f;

    @Option(names = "--weight-decay", description = "L2 weight decay (default: ${DEFAULT-VALUE})")
    float weightDecay = 0f;

    @Option(names = "--hidden", split = ",", paramLabel = "W1,W2,...", hideParamSyntax = true,
            description = "hidden layer widths (default: 256,256)")
    int[] hidden = {256, 256};

    @Option(names = "--seed", description = "seeds the weights, the batch order and the digits split"
            + " (default: ${DEFAULT-VALUE})")
    long seed = 42;

    @Option(names = "--no-bn", description = "train without batch norm")
    boolean noBn;

    @Option(names = "--compare", description = "train with and without batch norm, at --lr and at --high-lr")
    boolean compare;

    @Option(names = "--data", paramLabel = "digits|fashion-mnist|DIR",
            description = "digits (embedded, default), fashion-mnist (the IDX files of Debian's dataset-fashion-mnist"
                    + " in /usr/share/datasets/fashion-mnist) or a folder with those IDX files")
    String data = "digits";

    @Option(names = "--test-fraction", description = "digits only: share of each class held out for testing"
            + " (default: ${DEFAULT-VALUE})")
    double testFraction = 0.2;

    @Option(names = "--out", paramLabel = "DIR", description = "output folder (default: a new runs/train-<time>)")
    Path out;

    @Option(names = "--backend", description = "auto (cuda when a GPU is usable, else cpu), cpu, cuda, or emulator"
            + " (the GPU path on the PTX emulator: same results, slow) (default: ${DEFAULT-VALUE})")
    String backend = "auto";

    @Option(names = "--dtype", paramLabel = "float32|float16|bfloat16", converter = DTypeConverter.class,
            description = "storage type of the activations between layers: float16 and bfloat16 train in mixed"
                    + " precision (float32 master weights and arithmetic; float16 with dynamic loss scaling)"
                    + " (default: float32)")
    DType dtype = DType.FLOAT32;

    @Option(names = "--devices", paramLabel = "K", description = "data parallel over K devices of --backend (GPUs 0..K-1,"
            + " K emulated devices, or K CPU backends), one thread each: every global batch of --batch-size rows is"
            + " cut into K slices, batch norm is synchronized across them and the gradients are summed, so the run is"
            + " that of one device with the same batch; float32 only (default: ${DEFAULT-VALUE})")
    int devices = 1;

    @Option(names = "--no-progress", description = "no progress bar even on a terminal")
    boolean noProgress;

    @Override
    public Integer call() {
        PrintWriter stdout = spec.commandLine().getOut();
        PrintWriter stderr = spec.commandLine().getErr();
        long start = System.nanoTime();
        // Charts render off-screen; set before anything touches AWT so that no display is ever needed.
        System.setProperty("java.awt.headless", "true");
        try {
            if (compare && noBn) throw new IllegalArgumentException("--compare and --no-bn: expected at most one");
            TrainConfig base = new TrainConfig(hidden, !noBn, epochs, batchSize, lr, momentum, weightDecay, seed,
                    1e-5, 0.1, dtype);
            if (compare) validateHighLr(base);
            validateDevices();
            Dataset.Split split = loadData();
            List<RunResult> runs = new ArrayList<>();
            String backendName;
            Path dir;
            List<TrainBackend> backends = openBackends();
            try {
                TrainBackend be = backends.get(0);
                backendName = be.name();
                dir = outputDir(); // only once data and backend are known good: bad input leaves no folder behind
                stdout.println(TrainProgress.fmt("data %s: %d training and %d test samples, %d features, %d classes;"
                                + " backend %s%s, activations %s", datasetName(), split.train().rows(),
                        split.test().rows(), split.train().features(), split.train().classes(), backendName,
                        devices > 1 ? " on " + devices + " devices (data parallel, synchronized batch norm)" : "",
                        dtype));
                TrainProgress progress = new TrainProgress(stdout, !noProgress && TrainProgress.interactive());
                if (compare) {
                    for (float rate : new float[] {lr, highLr}) {
                        for (boolean bn : new boolean[] {true, false}) {
                            TrainConfig c = base.withBatchNorm(bn).withLr(rate);
                            runs.add(Trainer.trainDataParallel(backends, split, c, label(bn, rate), progress));
                        }
                    }
                } else {
                    runs.add(Trainer.trainDataParallel(backends, split, base, label(base.batchNorm(), lr), progress));
                }
            } finally {
                closeAll(backends);
            }
            Plots.write(dir, datasetName(), runs);
            MetricsFiles.write(dir, datasetName(), backendName, runs);
            for (RunResult r : runs) {
                stdout.println(TrainProgress.fmt("%-16s final test accuracy %.4f after %d epochs, %.3f s/epoch"
                                + " (training), %.1f s in all%s", r.label(), r.testAccuracy(), r.epochs().size(),
                        r.secondsPerEpoch(), r.seconds(), dtype == DType.FLOAT16 ? TrainProgress.fmt(
                                "; loss scale %s at the end, %d steps skipped", Json.number(r.lossScale()),
                                r.skippedSteps()) : ""));
            }
            stdout.println("output: " + dir);
            double seconds = (System.nanoTime() - start) / 1e9;
            stdout.println(summaryJson(runs, backendName, dir, seconds));
            stdout.flush();
            return 0;
        } catch (BackendUnavailableException e) {
            return Main.error(stderr, Main.UNAVAILABLE, e.getMessage());
        } catch (IllegalArgumentException e) {
            return Main.error(stderr, Main.BAD_INPUT, withOptionName(e.getMessage()));
        } catch (IOException e) {
            return Main.error(stderr, Main.BAD_INPUT, e.toString());
        }
    }

    private String summaryJson(List<RunResult> runs, String backendName, Path dir, double seconds) {
        RunResult main = runs.get(0);
        Json j = Json.spaced().put("test_accuracy", main.testAccuracy());
        if (compare) {
            j.put("bn_test_accuracy", runs.get(0).testAccuracy()).put("plain_test_accuracy", runs.get(1).testAccuracy())
                    .put("high_lr", highLr)
                    .put("bn_high_lr_test_accuracy", runs.get(2).testAccuracy())
                    .put("plain_high_lr_test_accuracy", runs.get(3).testAccuracy());
        }
        return j.put("batch_norm", main.config().batchNorm()).put("lr", lr).put("epochs", epochs)
                .put("seconds", seconds).put("seconds_per_epoch", main.secondsPerEpoch())
                .put("backend", backendName).put("devices", devices).put("dataset", datasetName())
                .put("dtype", dtype.cliName())
                .put("out", dir.toString()).toString();
    }

    /** Validates --high-lr before any work; TrainConfig's message would name --lr. */
    private void validateHighLr(TrainConfig base) {
        try {
            base.withLr(highLr);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--high-lr" + e.getMessage().substring("lr".length()), e);
        }
    }

    /** The train package names its fields (batchSize: ...); the user typed options (--batch-size). */
    private static final Map<String, String> OPTION_OF_FIELD = Map.of("hidden", "--hidden", "epochs", "--epochs",
            "batchSize", "--batch-size", "lr", "--lr", "momentum", "--momentum", "weightDecay", "--weight-decay",
            "testFraction", "--test-fraction", "backend", "--backend");

    /** Rewrites a leading "field:" of a train-package message into the option's name. */
    static String withOptionName(String message) {
        int colon = message.indexOf(':');
        String option = colon > 0 ? OPTION_OF_FIELD.get(message.substring(0, colon)) : null;
        return option == null ? message : option + message.substring(colon);
    }

    private static String label(boolean bn, float rate) {
        return (bn ? "BN" : "plain") + " lr=" + Json.number(rate);
    }

    /** --devices against the other options, before any work. */
    private void validateDevices() {
        if (devices < 1) throw new IllegalArgumentException("--devices: expected >= 1, got " + devices);
        if (devices > 1 && dtype != DType.FLOAT32) {
            throw new IllegalArgumentException("--dtype: data-parallel training (--devices " + devices
                    + ") supports float32 only, got " + dtype.cliName());
        }
        if (devices > batchSize) {
            throw new IllegalArgumentException("--batch-size: expected at least one row per device (--devices "
                    + devices + "), got " + batchSize);
        }
    }

    /** One backend per device (rank); all or none: a failure closes the ones already open. */
    private List<TrainBackend> openBackends() {
        if (backend.equalsIgnoreCase("auto")) {
            spec.commandLine().getErr().println(TrainBackends.describeAuto());
        }
        List<TrainBackend> out = new ArrayList<>();
        try {
            for (int r = 0; r < devices; r++) out.add(TrainBackends.open(backend, r));
        } catch (RuntimeException e) {
            try {
                closeAll(out);
            } catch (RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
        return out;
    }

    private static void closeAll(List<TrainBackend> backends) {
        RuntimeException first = null;
        for (TrainBackend b : backends) {
            try {
                b.close();
            } catch (RuntimeException e) {
                if (first == null) first = e;
            }
        }
        if (first != null) throw first;
    }

    private String datasetName() {
        return switch (data) {
            case "digits" -> "digits";
            case "fashion-mnist" -> "fashion-mnist";
            default -> "fashion-mnist (" + data + ")";
        };
    }

    private Dataset.Split loadData() throws IOException {
        if (data.equals("digits")) return DigitsData.loadSplit(testFraction, seed);
        Path dir = data.equals("fashion-mnist") ? FashionMnistData.DEBIAN_DIR : Path.of(data);
        if (!Files.isDirectory(dir)) {
            throw new IllegalArgumentException("--data: expected digits, fashion-mnist or a folder with the"
                    + " Fashion-MNIST IDX files, got '" + data + "'" + (data.equals("fashion-mnist")
                    ? " (" + dir + " does not exist: apt-get install dataset-fashion-mnist, or pass --data DIR)" : ""));
        }
        return FashionMnistData.load(dir);
    }

    private Path outputDir() throws IOException {
        Path dir = out;
        if (dir == null) {
            String stamp = LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss"));
            dir = Path.of("runs", "train-" + stamp);
            for (int i = 2; Files.exists(dir); i++) dir = Path.of("runs", "train-" + stamp + "-" + i);
        }
        if (Files.exists(dir) && !Files.isDirectory(dir)) {
            throw new IllegalArgumentException("--out: expected a folder, got the file " + dir);
        }
        Files.createDirectories(dir);
        return dir;
    }
}
