package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.Backends;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.DeviceResidentTiming;
import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.gpu.DeviceResidentBatchNorm;
import io.github.batchnorm4j.gpu.Dim3;
import io.github.batchnorm4j.gpu.HostArrayBatchNormOps;
import io.github.batchnorm4j.gpu.KernelLaunch;
import io.github.batchnorm4j.gpu.MeasuredOps;
import io.github.batchnorm4j.gpu.TrafficMetrics;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code batchnorm4j bench}: times forward-train, forward-eval and backward (training) on one backend. Each op is
 * first validated (its output against the float64 computation on the CPU backend, or against the CPU backend for any
 * other backend), then warmed up, then timed {@code --repeat} times; the median is reported. Bandwidth is S-based
 * (S = bytes of x): 3 S forward-train, 2 S forward-eval, 5 S backward — the least traffic each op needs (docs/design.md
 * §3). Warm-up is by time ({@code --warmup}, whatever the tensor size), then until the JIT is quiet. On the CPU
 * backend the machine's copy bandwidth is measured in the same run, as the fastest of the Java copies {@link
 * BenchHarness#measureCopy} tries (on a device backend that implements {@link DeviceResidentTiming}, the device's)
 * and each op is also shown as a fraction of it. The fused batch norm + add + ReLU ops run with a residual and count the budgets of {@link #trafficUnits}.
 * Device backends are timed on device-resident buffers when they implement {@link DeviceResidentTiming}.
 * Backends implementing {@link MeasuredOps} also report traffic_ratio and sector_efficiency; backends running our
 * kernels ({@link io.github.batchnorm4j.gpu.LaunchReporting}: cuda, emulator) list each kernel of an op with its grid,
 * block, registers, resident blocks per SM, occupancy and waves (JSON: a "kernels" array).
 */
@Command(name = "bench", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Times the ops (median of --repeat runs after validation and warm-up) and reports S-based GB/s.",
            "GB/s counts 3 S forward-train, 2 S forward-eval, 5 S backward (S = bytes of x), 4 S + S/32 "
                + "forward-train-relu, 3 S + S/32 forward-eval-relu, 6 S + S/32 backward-relu. On the CPU backend the "
                + "machine's copy bandwidth (the fastest Java copy) is measured in the same run."})
final class BenchCommand implements Callable<Integer> {
    /** Validation tolerances against a float32 CPU result: both sides carry float32 error. */
    static final double CROSS_BACKEND_FACTOR = 2;
    static final long SEED = 20261125L;

    @Option(names = "--backend", defaultValue = "auto", paramLabel = "B",
            description = "Backend to time (default: ${DEFAULT-VALUE}).")
    String backend;

    @Option(names = "--layout", paramLabel = "L",
            description = "channels-first, channels-last or a named layout (default: both).")
    String layout;

    @Option(names = "--shape", defaultValue = "32,64,56,56", paramLabel = "N,C,H,W",
            description = "Logical shape N,C,S1..Sk; channels-last runs it as N,S1..Sk,C (default: ${DEFAULT-VALUE}).")
    String shape;

    @Option(names = "--op", defaultValue = "all", paramLabel = "OP",
            description = "forward-train, forward-eval, backward, forward-train-relu, forward-eval-relu, backward-relu "
                    + "(the fused batch norm + add + ReLU, with a residual) or all (default: ${DEFAULT-VALUE}).")
    String op;

    @Option(names = "--repeat", defaultValue = "10", paramLabel = "R",
            description = "Timed runs per op; the median is reported (default: ${DEFAULT-VALUE}).")
    int repeat;

    @Option(names = "--warmup", defaultValue = "0.5", paramLabel = "SECONDS",
            description = "Warm-up of each op before timing, by time whatever the tensor size (at least 2 runs), "
                    + "then on until the JIT has finished no compilation for 0.2 s (unless 0; "
                    + "default: ${DEFAULT-VALUE}).")
    double warmup;

    @Option(names = "--dtype", defaultValue = "float32", converter = DTypeConverter.class,
            paramLabel = "float32|float16|bfloat16",
            description = "Storage type of x, dy, y and dx (and z, dz): S counts its bytes (2 per element in float16 and "
                    + "bfloat16), the ReLU mask is then S/16; statistics and parameters stay float32 "
                    + "(default: ${DEFAULT-VALUE}).")
    DType dtype;

    @Option(names = "--json", description = "One JSON object per line instead of a table.")
    boolean json;

    @Option(names = "--path", defaultValue = "auto", paramLabel = "P",
            description = "Training kernels of the GPU and emulator backends: auto (the persistent single-pass kernels "
                    + "when the tensor fits on chip, else two-pass), two-pass, or persistent (the persistent kernels' "
                    + "decomposition on any device: one launch where it fits, else two; the same bits on every "
                    + "device) (default: ${DEFAULT-VALUE}).")
    String path;

    /** The ops of {@code --op all}, in the order of the table. */
    static final List<String> ALL_OPS = List.of("forward-train", "forward-eval", "backward", "forward-train-relu",
            "forward-eval-relu", "backward-relu");

    /**
     * Traffic of each op in units of S, the budget of the two-pass kernels (docs/design.md §3): the least bytes each
     * op moves when x does not stay on chip between passes. The fused ops run with a residual z and a float32 ReLU
     * mask of S/32: forward-train-relu 4 S + S/32 (x read twice, z read, y written, the mask written), forward-eval-relu
     * 3 S + S/32, backward-relu 6 S + S/16 (x, dy and the mask read by the sums; x, dy and the mask read again and dx
     * and dz = the gated dy written by the elementwise pass: the fused kernels never read y).
     */
    static double trafficUnits(String op) {
        return trafficUnits(op, DType.FLOAT32);
    }

    /**
     * {@link #trafficUnits(String)} with S the bytes of x in {@code t}: the same multiples of S, and the mask of one
     * bit per element is S/(8·bytes per element): S/32 in float32, S/16 in the 16-bit types.
     */
    static double trafficUnits(String op, DType t) {
        double mask = 1.0 / (8 * t.bytes());
        switch (op) {
            case "forward-train": return 3;
            case "forward-eval": return 2;
            case "backward": return 5;
            case "forward-train-relu": return 4 + mask;
            case "forward-eval-relu": return 3 + mask;
            case "backward-relu": return 6 + 2 * mask;
            default: throw new IllegalArgumentException("--op: expected " + String.join(", ", ALL_OPS) + " or all, "
                    + "got '" + op + "'");
        }
    }

    /**
     * The traffic budget of the path that ran, in units of S: the persistent single-pass kernels (the device's
     * {@code bn_persist_*} launches) keep x and dy on chip, so forward-train is 2 S and backward 3 S; everything else
     * is {@link #trafficUnits}.
     */
    static double trafficUnits(String op, DType t, String path) {
        if (path.equals("persistent")) {
            if (op.equals("forward-train")) return 2;
            if (op.equals("backward")) return 3;
        }
        return trafficUnits(op, t);
    }

    /**
     * "persistent" when one persistent kernel launch did the op, "persistent-split" when the persistent kernels ran in
     * two launches (partials, then outputs: the grid did not fit the device at once), "two-pass" when other kernels
     * ran, "host" without launches.
     */
    static String path(List<KernelLaunch> launches) {
        if (launches.isEmpty()) return "host";
        long persist = launches.stream().filter(k -> k.kernel().startsWith("bn_persist_")).count();
        return persist == 0 ? "two-pass" : persist == 1 ? "persistent" : "persistent-split";
    }

    @Override
    public Integer call() {
        if (repeat < 1) throw new IllegalArgumentException("--repeat: expected >= 1, got " + repeat);
        if (!(warmup >= 0 && warmup <= 3600)) {
            throw new IllegalArgumentException("--warmup: expected seconds in [0, 3600], got " + warmup);
        }
        long[] logical;
        try {
            logical = Shape.parse(Layout.CHANNELS_FIRST, shape).dims();
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(Inputs.asOption("--shape", "shape", e.getMessage()), e);
        }
        List<String> ops = op.equalsIgnoreCase("all") ? ALL_OPS : List.of(op.toLowerCase(Locale.ROOT));
        for (String o : ops) trafficUnits(o);
        List<Shape> shapes = new ArrayList<>();
        if (layout != null) {
            Layout l;
            try {
                l = Layout.parse(layout);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(Inputs.asOption("--layout", "layout", e.getMessage()), e);
            }
            int required = Layout.requiredRank(layout);
            if (required > 0 && required != logical.length) {
                throw new IllegalArgumentException("--layout " + layout + " expects a " + required + "-D --shape, got "
                        + shape);
            }
            shapes.add(shapeIn(l, logical));
        } else {
            if (logical.length > 2) shapes.add(shapeIn(Layout.CHANNELS_FIRST, logical));
            shapes.add(shapeIn(Layout.CHANNELS_LAST, logical)); // a 2-D [N, C] is channels-last only
        }
        for (Shape s : shapes) {
            try {
                s.elementCountAsInt(); // too large for the host API: a usage error before any work
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("--shape " + shape + ": " + e.getMessage(), e);
            }
        }
        // x, dy, y, dx, the reference result and the float64 check: at least 6 arrays of the size of x.
        Inputs.requireMemory("--shape " + shape, 6 * shapes.get(0).elementCount() * Float.BYTES,
                "at least 6 float32 arrays of " + shapes.get(0).elementCount() + " values");
        long m = shapes.get(0).reductionSize(); // the same in every layout
        if (m < 2 && ops.stream().anyMatch(o -> !o.startsWith("forward-eval"))) {
            // PyTorch's rule for training; checked here so that the error comes before any output, not mid-table.
            throw new IllegalArgumentException("--shape " + shape + ": expected more than 1 value per channel when "
                    + "training (M = " + m + "); only --op forward-eval runs on it");
        }

        DeviceResidentBatchNorm.TrainingPath trainingPath = switch (path) {
            case "auto" -> DeviceResidentBatchNorm.TrainingPath.AUTO;
            case "two-pass" -> DeviceResidentBatchNorm.TrainingPath.TWO_PASS;
            case "persistent" -> DeviceResidentBatchNorm.TrainingPath.PERSISTENT;
            default -> throw new IllegalArgumentException("--path: expected auto, two-pass or persistent, got '" + path
                    + "'");
        };
        try (BatchNormOps ops0 = Inputs.openBackend(backend); BenchSuite suite = new BenchSuite(ops0,
                (long) (warmup * 1e9), dtype)) {
            if (ops0 instanceof HostArrayBatchNormOps h) h.deviceApi().setTrainingPath(trainingPath);
            long bytes = shapes.get(0).elementCount() * dtype.bytes();
            BenchHarness.CopyBandwidth copy = suite.copyBandwidth(bytes, repeat);
            if (!json) {
                System.out.printf(Locale.ROOT, "bench %s: shape %s%s, S = %s (bytes of x), median of %d runs after "
                        + "validation and %.3g s of warm-up per op, timing %s%n", ops0.name(), shape,
                        dtype.is16Bit() ? " in " + dtype : "", size(bytes),
                        repeat, warmup, ops0 instanceof DeviceResidentTiming
                                ? "the device-resident ops (inputs uploaded once)" : "the host API");
                String maskS = dtype.is16Bit() ? "S/16" : "S/32";
                // Only the device backends have a persistent path (bench runs it when the tensor fits); the CPU
                // backend and cuDNN are charged the two-pass traffic.
                boolean persistent = ops0 instanceof HostArrayBatchNormOps
                        && trainingPath == DeviceResidentBatchNorm.TrainingPath.AUTO;
                System.out.println("GB/s = traffic charged / median time: forward-train 3 S (x read twice, y "
                        + "written" + (persistent ? "; 2 S on the persistent path" : "") + "), forward-eval 2 S (x "
                        + "read, y written), backward 5 S (x and dy read twice, dx written"
                        + (persistent ? "; 3 S on the persistent path" : "") + "); the fused ops with a residual z: "
                        + "forward-train-relu 4 S + " + maskS + " (x twice, z, y, the mask), forward-eval-relu 3 S + "
                        + maskS + ", backward-relu 6 S + 2 x " + maskS + " (x, dy, the mask read twice; dx, dz "
                        + "written; never y)");
                if (copy != null) {
                    System.out.printf(Locale.ROOT, "copy: %.3g GB/s (read + write; %s copying %s like x, median %.4g ms)%s%n",
                            copy.gbps(), copy.method(), size(copy.bytes()), copy.timing().medianMs(),
                            copy.others().isEmpty() ? "" : "; slower: " + String.join(", ", copy.others()));
                }
                System.out.printf("%-18s %-15s %-16s %10s %8s %10s %12s%s%n", "op", "layout", "shape", "median_ms",
                        "GB/s", copy != null ? "% of copy" : "", "max_rel_err",
                        ops0 instanceof MeasuredOps ? "   traffic/S  sector_eff" : "");
            } else if (copy != null) {
                Json row = new Json().put("backend", ops0.name()).put("op", "copy").put("layout", null)
                        .put("shape", Long.toString(copy.bytes() / dtype.bytes())).put("bytes", copy.bytes())
                        .put("median_ms", copy.timing().medianMs()).put("gbps", copy.gbps())
                        .put("timed", copy.threads() == 0 ? "device" : "host").put("method", copy.method());
                if (copy.threads() > 0) row.put("threads", copy.threads());
                System.out.println(row.put("repeat", repeat));
            }
            for (Shape s : shapes) {
                RandomInputs in = RandomInputs.of(s, SEED);
                for (String o : ops) {
                    BenchSuite.Result r = suite.run(o, in, repeat);
                    if (!r.valid()) {
                        System.out.flush();
                        Main.error(new PrintWriter(System.err, true), Main.FAILED, "bench " + ops0.name() + " "
                                + o + " " + s + ": validation failed before timing: " + r.worst()
                                + " max relative error " + r.maxRelError() + " > " + r.tolerance());
                        return Main.FAILED;
                    }
                    print(ops0.name(), o, s, r, copy);
                }
            }
        }
        return Main.OK;
    }

    private void print(String backendName, String o, Shape s, BenchSuite.Result r, BenchHarness.CopyBandwidth copy) {
        long bytes = s.elementCount() * dtype.bytes();
        String path = path(r.launches());
        double budget = trafficUnits(o, dtype, path);
        double gbps = BenchHarness.gbps(budget * bytes, r.timing().medianMs());
        Optional<TrafficMetrics> m = r.metrics();
        String dims = CrossCheck.dimsText(s.dims());
        if (json) {
            Json row = new Json().put("backend", backendName).put("op", o).put("dtype", dtype.toString())
                    .put("layout", s.layout().cliName())
                    .put("shape", dims).put("bytes", bytes).put("median_ms", r.timing().medianMs()).put("gbps", gbps)
                    .put("min_ms", r.timing().minMs()).put("repeat", r.timing().repeats())
                    .put("max_rel_error", r.maxRelError()).put("timed", r.timed()).put("budget", budget)
                    .put("path", path);
            if (copy != null) row.put("pct_of_copy", 100 * gbps / copy.gbps());
            if (m.isPresent()) {
                row.put("traffic_ratio", (double) m.get().bytesMoved() / bytes)
                        .put("sector_efficiency", m.get().sectorEfficiency());
            }
            if (!r.launches().isEmpty()) {
                List<Json> kernels = new ArrayList<>();
                for (KernelLaunch k : r.launches()) {
                    kernels.add(new Json().put("kernel", k.kernel()).put("grid", dims(k.grid())).put("block", dims(k.block()))
                            .put("registers", k.registersPerThread() < 0 ? null : k.registersPerThread())
                            .put("blocks_per_sm", k.blocksPerSm()).put("occupancy", k.occupancy()).put("waves", k.waves()));
                }
                row.put("kernels", kernels);
            }
            System.out.println(row);
        } else {
            System.out.printf(Locale.ROOT, "%-18s %-15s %-16s %10.3f %8.3g %10s %12.2e%s%n", o, s.layout().cliName(),
                    dims, r.timing().medianMs(), gbps,
                    copy != null ? String.format(Locale.ROOT, "%.1f%%", 100 * gbps / copy.gbps()) : "",
                    r.maxRelError(),
                    m.map(t -> String.format(Locale.ROOT, " %11.3f %11.3f", (double) t.bytesMoved() / bytes,
                            t.sectorEfficiency())).orElse(""));
            if (!r.launches().isEmpty()) {
                System.out.printf(Locale.ROOT, "    path: %s (budget %.4g S)%n", path, budget);
            }
            for (KernelLaunch k : r.launches()) {
                System.out.printf(Locale.ROOT, "    %-26s grid %-12s block %-8s %8s %3d blocks/SM %6.1f%% occupancy %6.2f waves%n",
                        k.kernel(), CrossCheck.dimsText(dimsArray(k.grid())), CrossCheck.dimsText(dimsArray(k.block())),
                        k.registersPerThread() < 0 ? "? regs" : k.registersPerThread() + " regs", k.blocksPerSm(),
                        100 * k.occupancy(), k.waves());
            }
        }
    }

    /** [x, y, z] without trailing 1s, e.g. [528] or [8, 99]. */
    private static List<Integer> dims(Dim3 d) {
        return d.z() > 1 ? List.of(d.x(), d.y(), d.z()) : d.y() > 1 ? List.of(d.x(), d.y()) : List.of(d.x());
    }

    private static long[] dimsArray(Dim3 d) {
        return dims(d).stream().mapToLong(Integer::longValue).toArray();
    }

    /** Bytes for people: "1440 B", "4.61 kB", "25.7 MB", "1.03 GB" (powers of 1000, like GB/s). */
    static String size(long bytes) {
        if (bytes < 1000) return bytes + " B";
        if (bytes < 1_000_000) return String.format(Locale.ROOT, "%.3g kB", bytes / 1e3);
        if (bytes < 1_000_000_000) return String.format(Locale.ROOT, "%.3g MB", bytes / 1e6);
        return String.format(Locale.ROOT, "%.3g GB", bytes / 1e9);
    }

    /** [N, C, S..] in the memory order of a layout. */
    static Shape shapeIn(Layout l, long[] logical) {
        return l == Layout.CHANNELS_FIRST ? Shape.channelsFirst(logical)
                : Shape.channelsLast(CrossCheck.toChannelsLast(logical));
    }
}
