package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.BackendUnavailableException;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.train.Dataset;
import io.github.batchnorm4j.train.Mlp;
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
import java.util.Arrays;
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
            if (hidden.length == 0) {
                // The model allows none (softmax regression), but then there is no batch norm to train or plot.
                throw new IllegalArgumentException("--hidden: expected at least one width, got none");
            }
            if (out != null && out.toString().isEmpty()) {
                throw new IllegalArgumentException("--out: expected a folder, got an empty path");
            }
            TrainConfig base = new TrainConfig(hidden, !noBn, epochs, batchSize, lr, momentum, weightDecay, seed,
                    1e-5, 0.1, dtype);
            if (compare) validateHighLr(base);
            validateDevices();
            Dataset.Split split = loadData();
            checkSplit(split);
            checkMemory(split);
            List<RunResult> runs = new ArrayList<>();
            String backendName;
            // The output folder is checked and staged (a hidden folder beside or inside it) before any training, so
            // that an unwritable --out fails in a second, not after the training; the files appear together at the
            // end, and a failure or Ctrl-C leaves nothing behind.
            try (OutputFolder folder = OutputFolder.prepare("--out", outputDir(), OUTPUT_FILES, Map.of());
                 RankBackends ranks = openBackends()) {
                List<TrainBackend> backends = ranks.list();
                TrainBackend be = backends.get(0);
                backendName = be.name();
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
                folder.write("the plots", d -> Plots.write(d, datasetName(), runs));
                folder.write("the metrics", d -> MetricsFiles.write(d, datasetName(), backendName, runs));
                folder.commit();
                Path dir = folder.dir();
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
            }
            return 0;
        } catch (BackendUnavailableException e) {
            return Main.error(stderr, Main.UNAVAILABLE, e.getMessage());
        } catch (IllegalArgumentException e) {
            return Main.error(stderr, Main.BAD_INPUT, withOptionName(e.getMessage()));
        } catch (IOException e) {
            return Main.error(stderr, Main.BAD_INPUT, Inputs.describe(e));
        }
    }

    /** The files train writes into its output folder. */
    static final List<String> OUTPUT_FILES = concat(Plots.FILES, List.of(MetricsFiles.CSV, MetricsFiles.JSON));

    private static List<String> concat(List<String> a, List<String> b) {
        List<String> all = new ArrayList<>(a);
        all.addAll(b);
        return List.copyOf(all);
    }

    /** Both sets must have rows: an empty test set (a tiny --test-fraction) would fail only after the training. */
    private void checkSplit(Dataset.Split split) {
        int all = split.train().rows() + split.test().rows();
        if (split.test().rows() < 1) {
            throw new IllegalArgumentException("--test-fraction: expected a fraction that holds out at least 1 of the"
                    + " " + all + " samples for testing, got " + testFraction + " (0 test samples)");
        }
        if (split.train().rows() < 2) {
            throw new IllegalArgumentException("--test-fraction: expected a fraction that leaves at least 2 of the "
                    + all + " samples for training, got " + testFraction + " (" + split.train().rows()
                    + " training samples)");
        }
    }

    /**
     * The model's host memory, from --hidden and the data, against the JVM's heap, before anything is allocated: a
     * width too large is a clear error with the memory needed, not an OutOfMemoryError (or an integer overflow)
     * after minutes of work. Device backends keep the same tensors in device memory (the emulator's is this heap).
     */
    private void checkMemory(Dataset.Split split) {
        int features = split.train().features();
        int classes = split.train().classes();
        int[] sizes = new int[hidden.length + 2];
        sizes[0] = features;
        System.arraycopy(hidden, 0, sizes, 1, hidden.length);
        sizes[sizes.length - 1] = classes;
        for (int l = 0; l + 1 < sizes.length; l++) {
            long weights = (long) sizes[l] * sizes[l + 1];
            if (weights > Integer.MAX_VALUE - 8) {
                throw new IllegalArgumentException("--hidden " + hiddenText() + ": layer " + (l + 1) + " has "
                        + sizes[l] + " x " + sizes[l + 1] + " = " + weights + " weights; at most "
                        + (Integer.MAX_VALUE - 8) + " fit in one array");
            }
        }
        int evalRows = Math.min(split.test().rows(), Trainer.EVAL_CHUNK);
        long bytes = Mlp.estimatedBytes(sizes, !noBn || compare, batchSize, evalRows);
        if (backend.equalsIgnoreCase("cpu") || backend.equalsIgnoreCase("emulator")) {
            Inputs.requireMemory("--hidden " + hiddenText(), bytes, "weights, gradients, momentum and activations"
                    + " of a " + Arrays.toString(sizes) + " network at batch size " + batchSize);
        }
    }

    private String hiddenText() {
        StringBuilder b = new StringBuilder();
        for (int h : hidden) b.append(b.length() > 0 ? "," : "").append(h);
        return b.toString();
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

    /** The backends of the ranks, one per device; closing closes them all. */
    private record RankBackends(List<TrainBackend> list) implements AutoCloseable {
        @Override
        public void close() {
            RuntimeException first = null;
            for (TrainBackend b : list) {
                try {
                    b.close();
                } catch (RuntimeException e) {
                    if (first == null) first = e;
                }
            }
            if (first != null) throw first;
        }
    }

    /** One backend per device (rank); all or none: a failure closes the ones already open. */
    private RankBackends openBackends() {
        if (backend.equalsIgnoreCase("auto")) {
            spec.commandLine().getErr().println(TrainBackends.describeAuto());
        }
        RankBackends out = new RankBackends(new ArrayList<>());
        try {
            for (int r = 0; r < devices; r++) out.list().add(TrainBackends.open(backend, r));
        } catch (RuntimeException e) {
            try {
                out.close();
            } catch (RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
        return out;
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

    /** --out, or a new runs/train-<date>-<time> (numbered when that exists); created by OutputFolder. */
    private Path outputDir() {
        if (out != null) return out;
        String stamp = LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss"));
        Path dir = Path.of("runs", "train-" + stamp);
        for (int i = 2; Files.exists(dir); i++) dir = Path.of("runs", "train-" + stamp + "-" + i);
        return dir;
    }
}
