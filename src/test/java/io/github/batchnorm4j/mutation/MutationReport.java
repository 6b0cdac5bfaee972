package io.github.batchnorm4j.mutation;

import io.github.batchnorm4j.cli.Json;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Function;

/**
 * The outcome of a mutation run: counts per operator and per kernel, the score (killed + timeouts over every mutant
 * that ran and was not found equivalent), the survivors and the equivalent mutants with their reasons, as
 * {@code report.json} and as the table {@code report.txt}.
 */
final class MutationReport {
    private final MutationRun.Options options;
    private final String coverageSource;
    private final int generated;
    private final int notExecuted;
    private final int chosen;
    private final double baselineSeconds;
    private final double timeoutSeconds;
    private final List<MutationRun.Result> results;

    MutationReport(MutationRun.Options options, String coverageSource, int generated, int notExecuted, int chosen,
                   double baselineSeconds, double timeoutSeconds, List<MutationRun.Result> results) {
        this.options = options;
        this.coverageSource = coverageSource;
        this.generated = generated;
        this.notExecuted = notExecuted;
        this.chosen = chosen;
        this.baselineSeconds = baselineSeconds;
        this.timeoutSeconds = timeoutSeconds;
        this.results = new ArrayList<>(results);
        this.results.sort(Comparator.comparing((MutationRun.Result r) -> r.mutant().module())
                .thenComparingInt(r -> r.mutant().line()).thenComparing(r -> r.mutant().mutated()));
    }

    /** Counts of each status. */
    static final class Tally {
        final Map<MutationRun.Status, Integer> n = new EnumMap<>(MutationRun.Status.class);

        void add(MutationRun.Status s) {
            n.merge(s, 1, Integer::sum);
        }

        int get(MutationRun.Status s) {
            return n.getOrDefault(s, 0);
        }

        int detected() {
            return get(MutationRun.Status.KILLED) + get(MutationRun.Status.TIMEOUT);
        }

        /** Mutants that ran and are not equivalent. */
        int judged() {
            return detected() + get(MutationRun.Status.SURVIVED);
        }

        /** detected / judged, NaN when nothing was judged. */
        double score() {
            return judged() == 0 ? Double.NaN : (double) detected() / judged();
        }
    }

    Tally total() {
        Tally t = new Tally();
        for (MutationRun.Result r : results) t.add(r.status());
        return t;
    }

    private Map<String, Tally> by(Function<MutationRun.Result, String> key) {
        Map<String, Tally> m = new TreeMap<>();
        for (MutationRun.Result r : results) m.computeIfAbsent(key.apply(r), k -> new Tally()).add(r.status());
        return m;
    }

    private List<MutationRun.Result> with(MutationRun.Status s) {
        return results.stream().filter(r -> r.status() == s).toList();
    }

    void write(Path dir) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("report.json"), json() + "\n", StandardCharsets.UTF_8);
        Files.writeString(dir.resolve("report.txt"), table(), StandardCharsets.UTF_8);
    }

    String json() {
        Tally t = total();
        Json counts = counts(t);
        Map<String, Object> ops = new TreeMap<>();
        by(r -> r.mutant().operator().label()).forEach((k, v) -> ops.put(k, counts(v)));
        Map<String, Object> kernels = new TreeMap<>();
        by(r -> r.mutant().module() + " " + r.mutant().function()).forEach((k, v) -> kernels.put(k, counts(v)));
        List<Object> rows = new ArrayList<>();
        for (MutationRun.Result r : results) rows.add(MutationRun.toJson(r));
        return new Json().put("modules", options.modules).put("operators",
                        options.operators.stream().map(PtxMutator.Operator::label).toList())
                .put("test_command", testCommand()).put("sample", options.sample > 0 ? options.sample : null)
                .put("seed", options.seed).put("coverage", coverageSource).put("generated", generated)
                .put("not_executed", notExecuted).put("chosen", chosen).put("baseline_seconds", baselineSeconds)
                .put("timeout_seconds", timeoutSeconds).put("counts", counts).put("by_operator", ops)
                .put("by_kernel", kernels).put("mutants", rows).toString();
    }

    private static Json counts(Tally t) {
        return new Json().put("killed", t.get(MutationRun.Status.KILLED)).put("timeout", t.get(MutationRun.Status.TIMEOUT))
                .put("survived", t.get(MutationRun.Status.SURVIVED)).put("equivalent", t.get(MutationRun.Status.EQUIVALENT))
                .put("score", t.score());
    }

    private String testCommand() {
        return options.testCommand != null ? options.testCommand : "SuiteRunner " + options.tests;
    }

    String table() {
        StringBuilder sb = new StringBuilder();
        Tally t = total();
        sb.append(String.format(Locale.ROOT, "PTX mutation report: %s%n", String.join(", ", options.modules)));
        sb.append(String.format(Locale.ROOT, "tests: %s (unmutated run %.1f s, timeout %.0f s)%n", testCommand(),
                baselineSeconds, timeoutSeconds));
        sb.append(String.format(Locale.ROOT, "mutants: %d generated, %d on never-executed lines skipped (coverage: %s), "
                + "%d chosen%s%n", generated, notExecuted, coverageSource, chosen,
                options.sample > 0 ? " (random sample, seed " + options.seed + ")" : " (all)"));
        sb.append(String.format(Locale.ROOT, "result: %d killed + %d timeouts of %d non-equivalent = %.1f%%; %d survived; "
                        + "%d equivalent%n%n", t.get(MutationRun.Status.KILLED), t.get(MutationRun.Status.TIMEOUT),
                t.judged(), 100 * t.score(), t.get(MutationRun.Status.SURVIVED), t.get(MutationRun.Status.EQUIVALENT)));
        table(sb, "operator", by(r -> r.mutant().operator().label()));
        sb.append('\n');
        table(sb, "kernel", by(r -> r.mutant().function()));
        List<MutationRun.Result> survivors = with(MutationRun.Status.SURVIVED);
        sb.append(String.format(Locale.ROOT, "%nsurvivors (%d):%n", survivors.size()));
        for (MutationRun.Result r : survivors) line(sb, r, "");
        List<MutationRun.Result> wrong = results.stream().filter(r -> r.detail() != null
                && r.detail().contains("[listed as equivalent")).toList();
        if (!wrong.isEmpty()) {
            sb.append(String.format(Locale.ROOT, "%nlisted as equivalent, yet detected (%d):%n", wrong.size()));
            for (MutationRun.Result r : wrong) line(sb, r, "   " + r.detail());
        }
        List<MutationRun.Result> eq = with(MutationRun.Status.EQUIVALENT);
        sb.append(String.format(Locale.ROOT, "%nequivalent (%d):%n", eq.size()));
        for (MutationRun.Result r : eq) line(sb, r, "   " + r.detail());
        return sb.toString();
    }

    private static void table(StringBuilder sb, String what, Map<String, Tally> rows) {
        sb.append(String.format(Locale.ROOT, "%-26s %7s %7s %8s %10s %7s%n", what, "killed", "timeout", "survived",
                "equivalent", "score"));
        for (Map.Entry<String, Tally> e : rows.entrySet()) {
            Tally t = e.getValue();
            sb.append(String.format(Locale.ROOT, "%-26s %7d %7d %8d %10d %7s%n", e.getKey(),
                    t.get(MutationRun.Status.KILLED), t.get(MutationRun.Status.TIMEOUT),
                    t.get(MutationRun.Status.SURVIVED), t.get(MutationRun.Status.EQUIVALENT),
                    t.judged() == 0 ? "-" : String.format(Locale.ROOT, "%.1f%%", 100 * t.score())));
        }
    }

    private static void line(StringBuilder sb, MutationRun.Result r, String tail) {
        PtxMutant m = r.mutant();
        sb.append(String.format(Locale.ROOT, "  %-28s %-26s %-6s %s  ->  %s%s%n", m.module() + ":" + m.line(),
                m.function(), m.operator().label(), m.original(), m.mutated(), tail));
    }
}
