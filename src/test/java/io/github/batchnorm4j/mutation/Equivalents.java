package io.github.batchnorm4j.mutation;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Mutants classified as equivalent by reading the code (what no rule detects), one per line, tab-separated:
 * {@code module:line} or {@code module:kernel}, the mutated instruction, the reason. {@code #} starts a comment. The
 * kernel form survives rebuilds that move lines (the mutated instruction, registers included, is nearly always unique
 * in its kernel; where it is not, every copy is meant). A survivor that matches is
 * reported as equivalent with the reason; a killed mutant that matches is an error in the file (it is reported, and
 * stays killed).
 */
final class Equivalents {
    static final Equivalents NONE = new Equivalents(Map.of());

    private final Map<String, String> reasons;

    private Equivalents(Map<String, String> reasons) {
        this.reasons = reasons;
    }

    static Equivalents read(Path file) throws IOException {
        Map<String, String> r = new HashMap<>();
        int n = 0;
        for (String row : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            n++;
            if (row.isBlank() || row.startsWith("#")) continue;
            // The mutated instruction may itself hold tabs: the first field ends at the first tab, the reason
            // starts after the last.
            int first = row.indexOf('\t');
            int last = row.lastIndexOf('\t');
            if (first < 0 || last == first) {
                throw new IllegalArgumentException(file + ":" + n + ": expected 'module:line<TAB>mutated<TAB>reason'");
            }
            r.put(key(row.substring(0, first).trim(), row.substring(first + 1, last)), row.substring(last + 1).trim());
        }
        return new Equivalents(r);
    }

    private static String key(String moduleLine, String mutated) {
        return moduleLine + "\t" + mutated.trim().replaceAll("\\s+", " ");
    }

    /** The results with matching survivors turned into equivalents; mismatches (a "equivalent" mutant killed) noted. */
    List<MutationRun.Result> apply(List<MutationRun.Result> results) {
        List<MutationRun.Result> out = new ArrayList<>();
        for (MutationRun.Result r : results) {
            String why = reasons.get(key(r.mutant().module() + ":" + r.mutant().line(), r.mutant().mutated()));
            if (why == null) why = reasons.get(key(r.mutant().module() + ":" + r.mutant().function(), r.mutant().mutated()));
            if (why != null && r.status() == MutationRun.Status.SURVIVED) {
                out.add(new MutationRun.Result(r.mutant(), MutationRun.Status.EQUIVALENT, r.seconds(), "by review: " + why));
            } else if (why != null && r.status() != MutationRun.Status.EQUIVALENT) {
                out.add(new MutationRun.Result(r.mutant(), r.status(), r.seconds(),
                        r.detail() + " [listed as equivalent (" + why + ") but " + r.status().label() + ": fix the list]"));
            } else {
                out.add(r);
            }
        }
        return out;
    }
}
