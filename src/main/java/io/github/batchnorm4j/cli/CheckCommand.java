package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.BackendInfo;
import io.github.batchnorm4j.BackendUnavailableException;
import io.github.batchnorm4j.Backends;
import io.github.batchnorm4j.BatchNormOps;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code batchnorm4j check}: cross-checks backends against the float64 computation ({@link CrossCheck}) and prints a
 * table of max relative errors with PASS/FAIL. Exit 0 when every row passes, 1 on any FAIL, 3 when a backend named
 * in --backends is unavailable (with {@code all}, unavailable backends are listed with their reason and skipped).
 */
@Command(name = "check", mixinStandardHelpOptions = true,
        description = {"Cross-checks backends against a float64 computation on small shapes in both layouts, all ops.",
            "Tolerances: max relative error 1e-5 forward, 1e-4 gradients. Exit 1 on any FAIL."})
final class CheckCommand implements Callable<Integer> {

    @Option(names = "--backends", defaultValue = "all", paramLabel = "all|LIST",
            description = "'all' (every available backend; the unavailable ones are listed and skipped) or a "
                    + "comma-separated list (an unavailable one is exit 3) (default: ${DEFAULT-VALUE}).")
    String backends;

    @Option(names = "--seed", defaultValue = "42", paramLabel = "S",
            description = "Seed of the random inputs (default: ${DEFAULT-VALUE}).")
    long seed;

    @Override
    public Integer call() {
        List<String> toRun = new ArrayList<>();
        if (backends.equalsIgnoreCase("all")) {
            for (BackendInfo info : Backends.probeAll()) {
                if (info.available()) toRun.add(info.name());
                else System.out.println("skipped " + info.name() + ": unavailable (" + info.detail() + ")");
            }
        } else {
            Set<String> names = new LinkedHashSet<>();
            for (String n : backends.split(",")) {
                String name = n.strip().toLowerCase(Locale.ROOT);
                if (name.isEmpty()) throw new IllegalArgumentException("--backends: empty name in '" + backends + "'");
                names.add(name.equals(Backends.AUTO) ? Backends.resolveAuto() : name);
            }
            // Unknown names (exit 2) and unavailable ones (exit 3) are reported before anything runs.
            for (String name : names) Backends.provider(name);
            for (String name : names) {
                BackendInfo info = probe(name);
                if (!info.available()) throw new BackendUnavailableException(name, info.detail());
            }
            toRun.addAll(names);
        }
        List<CrossCheck.Row> rows = new ArrayList<>();
        System.out.printf("%-9s %-20s %-15s %-12s %12s %10s  %-6s %s%n", "backend", "op", "layout", "shape",
                "max_rel_err", "tolerance", "result", "worst output");
        int openFailures = 0;
        for (String name : toRun) {
            List<CrossCheck.Row> result;
            try (BatchNormOps ops = Backends.open(name)) {
                result = CrossCheck.run(ops, seed);
            } catch (BackendUnavailableException e) {
                if (!backends.equalsIgnoreCase("all")) throw e;
                System.out.println("skipped " + name + ": " + e.getMessage());
                continue;
            } catch (RuntimeException e) {
                // Probed available but failed to open (e.g. its kernels did not load): a failure of that backend.
                System.out.println("FAIL " + name + ": could not be opened: " + e);
                openFailures++;
                continue;
            }
            for (CrossCheck.Row r : result) {
                System.out.printf(Locale.ROOT, "%-9s %-20s %-15s %-12s %12.3e %10.0e  %-6s %s%n", r.backend(), r.op(),
                        r.layout(), r.shape(), r.maxRelError(), r.tolerance(), r.pass() ? "PASS" : "FAIL", r.worst());
            }
            rows.addAll(result);
        }
        long failed = rows.stream().filter(r -> !r.pass()).count() + openFailures;
        if (rows.isEmpty() && openFailures == 0) {
            System.out.println("check: no backend was available to check");
            return Main.FAILED;
        }
        System.out.println(failed == 0
                ? "check: PASS, " + rows.size() + " checks on " + String.join(", ", toRun)
                : "check: FAIL, " + failed + " of " + (rows.size() + openFailures) + " checks failed");
        return failed == 0 ? Main.OK : Main.FAILED;
    }

    private static BackendInfo probe(String name) {
        for (BackendInfo i : Backends.probeAll()) {
            if (i.name().equals(name)) return i;
        }
        throw new IllegalArgumentException("--backends: unknown backend '" + name + "'");
    }
}
