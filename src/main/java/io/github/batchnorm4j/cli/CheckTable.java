package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.DType;
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

    /** Whether the report has more than float32 (then the tables have a dtype column). */
    private static boolean typed(CrossCheck.Report report) {
        return !report.dtypes().equals(List.of(DType.FLOAT32));
    }

    /** The two text tables on System.out. */
    static void print(CrossCheck.Report report, long seed) {
        boolean typed = typed(report);
        System.out.printf(Locale.ROOT, "check %s, seed %d: %d shapes (both layouts) x %d ops%s%n",
                String.join(", ", report.backends()), seed, CrossCheck.shapes().size(), CrossCheck.OPS.size(),
                typed ? " x " + report.dtypes().size() + " dtypes (" + report.dtypes().stream().map(DType::toString)
                        .collect(java.util.stream.Collectors.joining(", ")) + ")" : "");
        System.out.printf(Locale.ROOT, "%nagainst float64: max |a - e|/max(|e|, 1) over the op's outputs; tolerance "
                + "%.0e forward and statistics, %.0e gradients%n", CrossCheck.FORWARD_TOLERANCE,
                CrossCheck.GRADIENT_TOLERANCE);
        for (DType t : report.dtypes()) {
            if (!t.is16Bit()) continue;
            System.out.printf(Locale.ROOT, "  %s: x, dy and z rounded to %s first; y, dx and dz stored in %s, tolerance "
                    + "u + 2 x that = %.2e forward, %.2e gradients (u = %.2e, half an ulp); the float32 outputs as "
                    + "above%n", t, t, t, CrossCheck.tolerance(t, "forward", "y"),
                    CrossCheck.tolerance(t, "backward", "dx"), t.unitRoundoff());
        }
        String dtypeColumn = typed ? "%-9s " : "%s";
        System.out.printf("%-9s " + dtypeColumn + "%-20s %-15s %-12s %12s %10s  %-11s %s%n", "backend",
                typed ? "dtype" : "", "op", "layout", "shape", "max_rel_err", "tolerance", "result",
                "worst output / reason");
        // Grouped by backend (CrossCheck interleaves them case by case).
        List<CrossCheck.Row> rows = new ArrayList<>(report.rows());
        rows.sort(java.util.Comparator.comparingInt(r -> report.backends().indexOf(r.backend())));
        for (CrossCheck.Row r : rows) {
            System.out.printf(Locale.ROOT, "%-9s " + dtypeColumn + "%-20s %-15s %-12s %12s %10s  %-11s %s%n",
                    r.backend(), typed ? r.dtype() : "", r.op(), r.layout(), r.shape(), error(r.maxRelError()),
                    tolerance(r.tolerance()), r.result(), r.detail());
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
            cases.computeIfAbsent(p.dtype() + " " + p.op() + " " + p.layout() + " " + p.shape(),
                    k -> new ArrayList<>()).add(p);
        }
        List<CrossCheck.PairRow> first = cases.values().iterator().next();
        StringBuilder header = new StringBuilder(String.format(dtypeColumn + "%-20s %-15s %-12s %10s",
                typed ? "dtype" : "", "op", "layout", "shape", "tolerance"));
        for (CrossCheck.PairRow p : first) header.append(' ').append(pad(p.pair(), first));
        System.out.println(header);
        for (List<CrossCheck.PairRow> row : cases.values()) {
            CrossCheck.PairRow p0 = row.get(0);
            StringBuilder line = new StringBuilder(String.format(Locale.ROOT, dtypeColumn + "%-20s %-15s %-12s %10s",
                    typed ? p0.dtype() : "", p0.op(), p0.layout(), p0.shape(), tolerance(p0.tolerance())));
            for (CrossCheck.PairRow p : row) line.append(' ').append(pad(cell(p), first));
            System.out.println(line);
        }
    }

    /** One JSON object per row of both tables on System.out. */
    static void printJson(CrossCheck.Report report) {
        for (CrossCheck.Row r : report.rows()) {
            System.out.println(new Json().put("kind", "float64").put("backend", r.backend())
                    .put("dtype", r.dtype().toString()).put("op", r.op())
                    .put("layout", r.layout()).put("shape", r.shape()).put("max_rel_error", r.maxRelError())
                    .put("tolerance", r.tolerance()).put("result", r.result().name()).put("detail", r.detail()));
        }
        for (CrossCheck.PairRow p : report.pairs()) {
            System.out.println(new Json().put("kind", "pairwise").put("a", p.a()).put("b", p.b())
                    .put("dtype", p.dtype().toString()).put("op", p.op())
                    .put("layout", p.layout()).put("shape", p.shape()).put("max_rel_error", p.maxRelError())
                    .put("tolerance", p.tolerance()).put("result", p.result().name()).put("detail", p.detail()));
        }
    }

    /** A tolerance as "1e-05" (float32's round ones), or with three digits ("5.10e-04", a 16-bit one). */
    private static String tolerance(double t) {
        String round = String.format(Locale.ROOT, "%.0e", t);
        return Double.parseDouble(round) == t ? round : String.format(Locale.ROOT, "%.2e", t);
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
