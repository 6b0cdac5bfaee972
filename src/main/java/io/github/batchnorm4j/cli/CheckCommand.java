package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.BackendInfo;
import io.github.batchnorm4j.BackendUnavailableException;
import io.github.batchnorm4j.Backends;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.DType;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code batchnorm4j check}: runs the backends through {@link CrossCheck} and prints two tables: each backend against
 * the float64 computation (PASS/FAIL/UNSUPPORTED per backend, op, layout and shape), and every pair of backends
 * against each other (max relative error per op, layout and shape, one column per pair). Exit 0 when nothing fails,
 * 1 on any FAIL, 3 when a backend named in --backends is unavailable (with {@code all}, unavailable backends are
 * listed with their reason and skipped).
 */
@Command(name = "check", mixinStandardHelpOptions = true,
        description = {"Cross-checks backends against a float64 computation and pairwise against each other, on small "
                + "shapes in both layouts, all ops.",
            "Tolerances: max relative error 1e-5 forward, 1e-4 gradients (twice that between two backends). "
                + "Exit 1 on any FAIL."})
final class CheckCommand implements Callable<Integer> {

    @Option(names = "--backends", defaultValue = "all", paramLabel = "all|LIST",
            description = "'all' (every available backend; the unavailable ones are listed and skipped) or a "
                    + "comma-separated list (an unavailable one is exit 3) (default: ${DEFAULT-VALUE}).")
    String backends;

    @Option(names = "--seed", defaultValue = "42", paramLabel = "S",
            description = "Seed of the random inputs (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--dtype", defaultValue = "float32", paramLabel = "float32|float16|bfloat16|all",
            description = "Storage types to check, comma-separated, or 'all': 16-bit types round x and dy to the type, "
                    + "store y, dx and dz in it (tolerance: the type's unit roundoff plus twice float32's) and keep the "
                    + "statistics and parameter gradients float32; a type a "
                    + "backend refuses (cuDNN's bfloat16 before 8.1 or Ampere) is unsupported, not failed "
                    + "(default: ${DEFAULT-VALUE}).")
    String dtype;

    @Option(names = "--json", description = "One JSON object per line (kind: skipped, float64, pairwise, summary).")
    boolean json;

    @Override
    public Integer call() {
        List<DType> dtypes = dtypes(dtype);
        boolean all = backends.equalsIgnoreCase("all");
        Map<String, String> skipped = new LinkedHashMap<>();
        List<String> names = all ? availableNames(skipped) : namedBackends();
        List<BatchNormOps> open = new ArrayList<>();
        List<String> openFailures = new ArrayList<>();
        try {
            for (String name : names) {
                try {
                    open.add(Backends.open(name));
                } catch (BackendUnavailableException e) {
                    if (!all) throw e;
                    skipped.put(name, e.getMessage());
                } catch (RuntimeException e) {
                    // Probed available but failed to open (e.g. its kernels did not load): a failure of that backend.
                    openFailures.add(name + ": could not be opened: " + e);
                }
            }
            for (Map.Entry<String, String> s : skipped.entrySet()) {
                if (json) System.out.println(new Json().put("kind", "skipped").put("backend", s.getKey())
                        .put("reason", s.getValue()));
                else System.out.println("skipped " + s.getKey() + ": " + s.getValue());
            }
            for (String f : openFailures) {
                System.out.println(json ? new Json().put("kind", "open-failure").put("detail", f) : "FAIL " + f);
            }
            CrossCheck.Report report = CrossCheck.run(open, seed, dtypes);
            if (json) CheckTable.printJson(report);
            else if (!open.isEmpty()) CheckTable.print(report, seed);
            long failed = report.failures() + openFailures.size();
            long checks = report.rows().size() + report.pairs().size() + openFailures.size();
            String summary;
            if (checks == 0) {
                summary = "check: FAIL, no backend was available to check";
                failed = 1;
            } else {
                summary = (failed == 0 ? "check: PASS, " + checks + " checks" : "check: FAIL, " + failed + " of "
                        + checks + " checks failed") + " (" + report.rows().size() + " against float64, "
                        + report.pairs().size() + " pairwise) on " + String.join(", ", report.backends())
                        + (dtypes.equals(List.of(DType.FLOAT32)) ? "" : " in " + dtypes.stream().map(DType::toString)
                            .collect(java.util.stream.Collectors.joining(", ")))
                        + (skipped.isEmpty() ? "" : "; skipped " + String.join(", ", skipped.keySet()));
            }
            System.out.println(json ? new Json().put("kind", "summary").put("result", failed == 0 ? "PASS" : "FAIL")
                    .put("failures", failed).put("detail", summary) : summary);
            return failed == 0 ? Main.OK : Main.FAILED;
        } finally {
            for (BatchNormOps o : open) o.close();
        }
    }

    /** --dtype: "all" or a comma-separated list of storage types, each once, in the order given. */
    static List<DType> dtypes(String text) {
        if (text.strip().equalsIgnoreCase("all")) return List.of(DType.values());
        Set<DType> out = new LinkedHashSet<>();
        for (String n : text.split(",", -1)) {
            try {
                out.add(DType.parse(n.strip()));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("--dtype: expected float32, float16, bfloat16 or all (or a "
                        + "comma-separated list), got '" + text + "'");
            }
        }
        return List.copyOf(out);
    }

    /** The available backends; the unavailable ones go to {@code skipped} with their reason. */
    private static List<String> availableNames(Map<String, String> skipped) {
        List<String> out = new ArrayList<>();
        for (BackendInfo info : Backends.probeAll()) {
            if (info.available()) out.add(info.name());
            else skipped.put(info.name(), "unavailable (" + info.detail() + ")");
        }
        return out;
    }

    /** The names in --backends: unknown ones are exit 2, unavailable ones exit 3, both before anything runs. */
    private List<String> namedBackends() {
        Set<String> names = new LinkedHashSet<>();
        // -1: keep trailing empty names, so that ",," is refused like "cpu,,emulator" (split drops them otherwise).
        for (String n : backends.split(",", -1)) {
            String name = n.strip().toLowerCase(Locale.ROOT);
            if (name.isEmpty()) throw new IllegalArgumentException("--backends: empty name in '" + backends + "'");
            names.add(name.equals(Backends.AUTO) ? Backends.resolveAuto() : name);
        }
        for (String name : names) {
            try {
                Backends.provider(name);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(Inputs.asOption("--backends", "backend", e.getMessage()), e);
            }
        }
        List<BackendInfo> infos = Backends.probeAll();
        for (String name : names) {
            BackendInfo info = infos.stream().filter(i -> i.name().equals(name)).findFirst().orElseThrow(
                    () -> new IllegalArgumentException("--backends: unknown backend '" + name + "'"));
            if (!info.available()) throw new BackendUnavailableException(name, info.detail());
        }
        return new ArrayList<>(names);
    }
}
