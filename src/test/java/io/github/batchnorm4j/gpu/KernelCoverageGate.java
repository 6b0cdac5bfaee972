package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.ptx.Coverage;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The coverage gate of the shipped batch-norm kernels (issue 10): every kernel of {@link PtxModules#FORWARD} and
 * {@link PtxModules#BACKWARD} was launched, and every one of its PTX instructions that some launch geometry of the
 * host can reach was executed by at least one thread, and every guarded instruction ran at least once with its guard
 * true (a branch never taken, or a load or store that never fired, was never tested).
 *
 * <p>Unreachable in the emulator, and only these: the slow path nvcc emits for a 64-bit division or remainder whose
 * operands do not fit in 32 bits (the instruction {@code div/rem .s64/.u64} and the {@code bra.uni} after it). It runs
 * only for a channel of more than 2^32 units (16 GiB of floats), beyond the emulator's 2 GiB buffers; they are at
 * most {@link #MAX_UNREACHABLE_FRACTION} of the shipped batch-norm PTX. Everything else that the host cannot reach is
 * dead code and must be removed from the kernels, not listed.
 */
final class KernelCoverageGate {
    /** Largest fraction of the batch-norm PTX instructions the gate excuses. */
    static final double MAX_UNREACHABLE_FRACTION = 0.02;
    private static final Pattern WIDE_DIVISION = Pattern.compile("^(div|rem)\\.[su]64\\b.*");

    private KernelCoverageGate() {
    }

    /** One kernel's counts against the gate. */
    record Row(String module, String kernel, int total, int excused, int executed, List<Coverage.Instruction> missing,
               List<Coverage.Instruction> neverFired) {
        int reachable() {
            return total - excused;
        }
    }

    /** Whether instruction i of the kernel is on a 64-bit division's slow path. */
    static boolean excused(List<Coverage.Instruction> ins, int i) {
        if (WIDE_DIVISION.matcher(ins.get(i).text()).matches()) return true;
        return i > 0 && ins.get(i).text().startsWith("bra.uni") && WIDE_DIVISION.matcher(ins.get(i - 1).text()).matches();
    }

    /**
     * The gate's view of every batch-norm kernel (a row of nulls for a kernel never launched): the counts of the PTX
     * text the host loads ({@link PtxModules#read}), never those of another text loaded under the same module name (a
     * mutant, whichever was launched first).
     */
    static List<Row> rows(Coverage coverage) {
        List<Row> rows = new ArrayList<>();
        for (String module : List.of(PtxModules.FORWARD, PtxModules.BACKWARD)) {
            String text = PtxModules.read(module);
            String source = Coverage.sourceHash(text);
            for (String kernel : PtxModules.entryNames(text)) {
                Optional<Coverage.KernelCoverage> k = coverage.kernel(module, kernel, source);
                if (k.isEmpty()) {
                    rows.add(new Row(module, kernel, 0, 0, 0, null, null));
                    continue;
                }
                List<Coverage.Instruction> ins = k.get().instructions();
                int excused = 0, executed = 0;
                List<Coverage.Instruction> missing = new ArrayList<>(), neverFired = new ArrayList<>();
                for (int i = 0; i < ins.size(); i++) {
                    Coverage.Instruction in = ins.get(i);
                    if (excused(ins, i)) {
                        excused++;
                    } else if (!in.executed()) {
                        missing.add(in);
                    } else {
                        executed++;
                        if (in.guarded() && in.guardTrue() == 0) neverFired.add(in);
                    }
                }
                rows.add(new Row(module, kernel, ins.size(), excused, executed, missing, neverFired));
            }
        }
        return rows;
    }

    /** A table of executed/reachable instructions per kernel. */
    static String table(List<Row> rows) {
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "%-28s %9s %9s %7s %8s%n", "kernel",
                "executed", "reachable", "total", "excused"));
        int t = 0, r = 0, e = 0, x = 0;
        for (Row row : rows) {
            sb.append(String.format(Locale.ROOT, "%-28s %9d %9d %7d %8d%n", row.kernel(), row.executed(),
                    row.reachable(), row.total(), row.excused()));
            t += row.total();
            r += row.reachable();
            e += row.executed();
            x += row.excused();
        }
        sb.append(String.format(Locale.ROOT, "%-28s %9d %9d %7d %8d (%.2f%% excused)%n", "total", e, r, t, x,
                100.0 * x / Math.max(1, t)));
        return sb.toString();
    }

    /** Fails unless every batch-norm kernel was launched and executed every reachable instruction. */
    static void check(Coverage coverage) {
        List<Row> rows = rows(coverage);
        System.out.print("coverage gate (shipped batch-norm kernels):\n" + table(rows));
        StringBuilder problems = new StringBuilder();
        int total = 0, excused = 0;
        for (Row row : rows) {
            if (row.missing() == null) {
                problems.append(row.module()).append(' ').append(row.kernel()).append(": never launched\n");
                continue;
            }
            total += row.total();
            excused += row.excused();
            if (!row.missing().isEmpty()) {
                problems.append(row.module()).append(' ').append(row.kernel()).append(": ")
                        .append(row.missing().size()).append(" reachable instructions never executed:\n");
                for (Coverage.Instruction i : row.missing()) {
                    problems.append(String.format(Locale.ROOT, "    %6d  %s%n", i.line(), i.text()));
                }
            }
            if (!row.neverFired().isEmpty()) {
                problems.append(row.module()).append(' ').append(row.kernel()).append(": ")
                        .append(row.neverFired().size())
                        .append(" guarded instructions never ran with the guard true (branch never taken):\n");
                for (Coverage.Instruction i : row.neverFired()) {
                    problems.append(String.format(Locale.ROOT, "    %6d  %s%n", i.line(), i.text()));
                }
            }
        }
        if (problems.length() > 0) {
            fail("the emulator tests leave batch-norm PTX untested (add a shape that reaches it, or remove the dead"
                    + " code from cuda/):\n" + problems);
        }
        assertTrue(excused <= MAX_UNREACHABLE_FRACTION * total, "excused instructions " + excused + " of " + total
                + " exceed " + MAX_UNREACHABLE_FRACTION);
    }
}
