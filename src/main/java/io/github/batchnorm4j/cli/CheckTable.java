package io.github.batchnorm4j.cli;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Prints a {@link CrossCheck.Report} for {@code batchnorm4j check}: as two text tables (each backend against
 * float64, one line per backend, op, layout and shape; then the pairwise table, one line per op, layout and shape and
 * one column per pair of backends; the float64 rows say which side failed or does not support an op), or as JSON,
 * one object per row.
 */
final class CheckTable {

    private CheckTable() {
    }

    /** The two text tables on System.out. */
    static void print(CrossCheck.Report report, long seed) {
        System.out.printf(Locale.ROOT, "check %s, seed %d: %d shapes (both layouts) x %d ops%n",
                String.join(", ", report.backends()), seed, CrossCheck.shapes().size(), CrossCheck.OPS.size());
        System.out.printf(Locale.ROOT, "%nagainst float64: max |a - e|/max(|e|, 1) over the op's outputs; tolerance "
                + "%.0e forward and statistics, %.0e gradients%n", CrossCheck.FORWARD_TOLERANCE,
                CrossCheck.GRADIENT_TOLERANCE);
        System.out.printf("%-9s %-20s %-15s %-12s %12s %10s  %-11s %s%n", "backend", "op", "layout", "shape",
                "max_rel_err", "tolerance", "result", "worst output / reason");
        // Grouped by backend (CrossCheck interleaves them case by case).
        List<CrossCheck.Row> rows = new ArrayList<>(report.rows());
        rows.sort(java.util.Comparator.comparingInt(r -> report.backends().indexOf(r.backend())));
        for (CrossCheck.Row r : rows) {
            System.out.printf(Locale.ROOT, "%-9s %-20s %-15s %-12s %12s %10.0e  %-11s %s%n", r.backend(), r.op(),
                    r.layout(), r.shape(), error(r.maxRelError()), r.tolerance(), r.result(), r.detail());
        }
        System.out.printf(Locale.ROOT, "%npairwise: max |a - b|/max(|a|, |b|, 1) over the op's outputs; tolerance "
                + "%.0e forward and statistics, %.0e gradients%n",
                CrossCheck.PAIRWISE_FACTOR * CrossCheck.FORWARD_TOLERANCE,
                CrossCheck.PAIRWISE_FACTOR * CrossCheck.GRADIENT_TOLERANCE);
        if (report.pairs().isEmpty()) {
            System.out.println("fewer than two backends: nothing to compare pairwise");
            return;
        }
        // One line per case (op, layout, shape), one column per pair, in the order CrossCheck produced them.
        Map<String, List<CrossCheck.PairRow>> cases = new LinkedHashMap<>();
        for (CrossCheck.PairRow p : report.pairs()) {
            cases.computeIfAbsent(p.op() + " " + p.layout() + " " + p.shape(), k -> new ArrayList<>()).add(p);
        }
        List<CrossCheck.PairRow> first = cases.values().iterator().next();
        StringBuilder header = new StringBuilder(String.format("%-20s %-15s %-12s %10s", "op", "layout", "shape",
                "tolerance"));
        for (CrossCheck.PairRow p : first) header.append(' ').append(pad(p.pair(), first));
        System.out.println(header);
        for (List<CrossCheck.PairRow> row : cases.values()) {
            CrossCheck.PairRow p0 = row.get(0);
            StringBuilder line = new StringBuilder(String.format(Locale.ROOT, "%-20s %-15s %-12s %10.0e", p0.op(),
                    p0.layout(), p0.shape(), p0.tolerance()));
            for (CrossCheck.PairRow p : row) line.append(' ').append(pad(cell(p), first));
            System.out.println(line);
        }
    }

    /** One JSON object per row of both tables on System.out. */
    static void printJson(CrossCheck.Report report) {
        for (CrossCheck.Row r : report.rows()) {
            System.out.println(new Json().put("kind", "float64").put("backend", r.backend()).put("op", r.op())
                    .put("layout", r.layout()).put("shape", r.shape()).put("max_rel_error", r.maxRelError())
                    .put("tolerance", r.tolerance()).put("result", r.result().name()).put("detail", r.detail()));
        }
        for (CrossCheck.PairRow p : report.pairs()) {
            System.out.println(new Json().put("kind", "pairwise").put("a", p.a()).put("b", p.b()).put("op", p.op())
                    .put("layout", p.layout()).put("shape", p.shape()).put("max_rel_error", p.maxRelError())
                    .put("tolerance", p.tolerance()).put("result", p.result().name()).put("detail", p.detail()));
        }
    }

    private static String error(double e) {
        return Double.isNaN(e) ? "-" : String.format(Locale.ROOT, "%.3e", e);
    }

    /** A pair's cell: its error, "FAIL" with the error or the side that failed, or "unsupported" (by either side). */
    private static String cell(CrossCheck.PairRow p) {
        return switch (p.result()) {
            case PASS -> String.format(Locale.ROOT, "%.2e", p.maxRelError());
            case FAIL -> Double.isNaN(p.maxRelError()) ? "FAIL " + p.detail().split(" ")[0]
                    : String.format(Locale.ROOT, "FAIL %.2e", p.maxRelError());
            case UNSUPPORTED -> "unsupported";
        };
    }

    /** Right-aligns a cell to its column: as wide as the widest pair name, and at least 13 ("FAIL 1.23e-04"). */
    private static String pad(String s, List<CrossCheck.PairRow> pairs) {
        int width = 13;
        for (CrossCheck.PairRow p : pairs) width = Math.max(width, p.pair().length());
        return String.format("%" + width + "s", s);
    }
}
