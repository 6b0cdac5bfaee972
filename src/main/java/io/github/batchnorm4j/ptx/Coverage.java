package io.github.batchnorm4j.ptx;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.function.Predicate;

/**
 * Per-kernel, per-PTX-instruction execution counts of the launches of every {@link EmulatedDevice} that records into
 * it: how many threads reached each instruction and, for a guarded instruction ({@code @%p ...}), how many of them had
 * the guard true. What the emulator ran is what the tests saw, so an instruction with zero threads was never tested.
 *
 * <p>Three ways in:
 * <ul>
 *   <li>Java: {@code new EmulatedDevice(options, coverage)}, then {@link #kernels()}, {@link #kernel} or
 *       {@link #report}.</li>
 *   <li>Environment: with {@value #ENV}{@code =<folder>} every EmulatedDevice of the process that was not given a
 *       Coverage records into one process-wide instance, which at JVM exit is merged into {@code <folder>/coverage.tsv}
 *       (counts of earlier runs added, under a file lock, so several JVMs, e.g. {@code mvn test} and the CLI it
 *       launches, may share a folder) and summarized in {@code <folder>/coverage.txt}. Delete the folder after the
 *       PTX changes: rows are keyed by module, kernel, PTX text (its {@link #sourceHash}), line and
 *       instruction text.</li>
 *   <li>Report: {@link #report} prints, per kernel, executed/total instructions and the never-executed lines.</li>
 * </ul>
 * Kernels are keyed by module name, kernel name <em>and the module's PTX text</em> ({@link #sourceHash}): a test that
 * loads a mutated or hand-written module under a shipped module's name records a kernel of its own, which never adds to,
 * or stands in for, the counts of the shipped text, whatever the order of the launches.
 *
 * <p>Counting costs one array increment per executed warp-instruction (two for a guarded one) and a null test when no
 * Coverage is attached.
 * Thread-safe: each launch counts into arrays of its own and adds them here once it ends.
 */
public final class Coverage {
    /** Environment variable naming the folder of the process-wide coverage (unset: no coverage recorded). */
    public static final String ENV = "BATCHNORM4J_COVERAGE";
    /**
     * Machine-readable counts in the {@value #ENV} folder (TSV): module, kernel, line, threads, guard-true, guarded,
     * source ({@link #sourceHash} of the module's PTX text), instruction text. Files of older versions, without the
     * source column, are read with an empty source.
     */
    public static final String TSV = "coverage.tsv";
    /** The readable report in the {@value #ENV} folder. */
    public static final String TXT = "coverage.txt";

    private static final Object GLOBAL_LOCK = new Object();
    private static Coverage global;
    private static boolean globalResolved;

    private final Map<String, Counts> kernels = new LinkedHashMap<>();

    /** One instruction of a kernel and its counts. */
    public record Instruction(int line, String text, boolean guarded, long threads, long guardTrue) {
        /** Whether any thread reached it. */
        public boolean executed() {
            return threads > 0;
        }
    }

    /**
     * The counts of one kernel (an entry of a module) as compiled from one PTX text ({@code source}, its
     * {@link #sourceHash}; empty when read from a file without it), instructions in code order.
     */
    public record KernelCoverage(String module, String kernel, String source, List<Instruction> instructions) {
        public KernelCoverage {
            instructions = List.copyOf(instructions);
        }

        /** Instructions in the kernel. */
        public int total() {
            return instructions.size();
        }

        /** Instructions reached by at least one thread. */
        public int executed() {
            int n = 0;
            for (Instruction i : instructions) if (i.executed()) n++;
            return n;
        }

        /** Thread-instructions executed (the sum of every instruction's thread count). */
        public long threadInstructions() {
            long n = 0;
            for (Instruction i : instructions) n += i.threads;
            return n;
        }

        /** Instructions no thread reached, in code order. */
        public List<Instruction> notExecuted() {
            return instructions.stream().filter(i -> !i.executed()).toList();
        }

        /** Guarded instructions reached only with their guard false (a branch never taken, a store never made). */
        public List<Instruction> guardNeverTrue() {
            return instructions.stream().filter(i -> i.executed() && i.guarded && i.guardTrue == 0).toList();
        }
    }

    /** Mutable counts of one kernel; the instruction texts and lines of its code. */
    private static final class Counts {
        final String module, kernel, source;
        final int[] lines;
        final String[] texts;
        final boolean[] guarded;
        final long[] threads, guardTrue;

        Counts(String module, String kernel, String source, int[] lines, String[] texts, boolean[] guarded) {
            this.module = module;
            this.kernel = kernel;
            this.source = source;
            this.lines = lines;
            this.texts = texts;
            this.guarded = guarded;
            this.threads = new long[lines.length];
            this.guardTrue = new long[lines.length];
        }

        KernelCoverage snapshot() {
            List<Instruction> out = new ArrayList<>(lines.length);
            for (int i = 0; i < lines.length; i++) {
                out.add(new Instruction(lines[i], texts[i], guarded[i], threads[i], guardTrue[i]));
            }
            return new KernelCoverage(module, kernel, source, out);
        }
    }

    /**
     * The key of a PTX text in this coverage: the first 16 hex digits of the SHA-256 of its UTF-8 bytes. Two modules
     * count as the same only when their texts are equal, so a mutant differing in one character is another kernel.
     */
    public static String sourceHash(String ptx) {
        try {
            byte[] d = MessageDigest.getInstance("SHA-256").digest(ptx.getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(d, 0, 8);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is required of every Java platform", e);
        }
    }

    /** The process-wide coverage when {@value #ENV} names a folder, created on first use. */
    public static Optional<Coverage> fromEnvironment() {
        synchronized (GLOBAL_LOCK) {
            if (!globalResolved) {
                globalResolved = true;
                String dir = System.getenv(ENV);
                if (dir != null && !dir.isBlank()) {
                    Coverage c = new Coverage();
                    Path folder = Path.of(dir);
                    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                        try {
                            c.mergeInto(folder);
                        } catch (RuntimeException e) {
                            System.err.println("batchnorm4j: could not write coverage to " + folder + ": " + e);
                        }
                    }, "batchnorm4j-coverage"));
                    global = c;
                }
            }
            return Optional.ofNullable(global);
        }
    }

    // ---- recording (called by the interpreter) ------------------------------------------------------------------

    /** Adds one launch's counts of {@code fn} (arrays indexed by pc). */
    synchronized void add(PtxFunction fn, long[] threads, long[] guardTrue) {
        Insn[] code = fn.code;
        // keyed by the module's text, not its name: a mutant loaded under a shipped name must not mix with the shipped
        // kernel's counts (same length) nor be found in its place (another length), whichever is launched first
        String key = fn.moduleName + "\u0000" + fn.name + "\u0000" + fn.source;
        Counts c = kernels.get(key);
        if (c == null) {
            int n = 0;
            for (Insn in : code) if (!synthetic(in)) n++;
            int[] lines = new int[n];
            String[] texts = new String[n];
            boolean[] guarded = new boolean[n];
            for (int i = 0, k = 0; i < code.length; i++) {
                if (synthetic(code[i])) continue;
                lines[k] = code[i].line;
                texts[k] = code[i].text;
                guarded[k++] = code[i].guard >= 0;
            }
            c = new Counts(fn.moduleName, fn.name, fn.source, lines, texts, guarded);
            kernels.put(key, c);
        }
        for (int i = 0, k = 0; i < code.length; i++) {
            if (synthetic(code[i])) continue;
            c.threads[k] += threads[i];
            // the interpreter counts guard-true threads of guarded instructions only: the others always run
            c.guardTrue[k++] += code[i].guard >= 0 ? guardTrue[i] : threads[i];
        }
    }

    /** The implicit exit the decoder appends to every function: not PTX text, so not counted. */
    private static boolean synthetic(Insn in) {
        return in.text.startsWith("(end of ");
    }

    // ---- queries --------------------------------------------------------------------------------------------------

    /** Every kernel launched so far, in first-launch order. */
    public synchronized List<KernelCoverage> kernels() {
        return kernels.values().stream().map(Counts::snapshot).toList();
    }

    /**
     * The counts of one kernel as compiled from the PTX text whose {@link #sourceHash} is {@code source}, if it was
     * launched. Kernels of the same name from other texts (mutants, test modules) are not part of it.
     */
    public synchronized Optional<KernelCoverage> kernel(String module, String kernel, String source) {
        Counts c = kernels.get(module + "\u0000" + kernel + "\u0000" + source);
        return c == null ? Optional.empty() : Optional.of(c.snapshot());
    }

    /** Forgets every count. */
    public synchronized void clear() {
        kernels.clear();
    }

    /**
     * A readable report of the kernels of the modules accepted by {@code modules}: one line per kernel with
     * executed/total instructions and thread-instructions, then its never-executed instructions (line and text, runs
     * of consecutive lines grouped) and its guarded instructions whose guard was never true; a total at the end.
     */
    public String report(Predicate<String> modules) {
        return report(kernels().stream().filter(k -> modules.test(k.module())).toList());
    }

    /** {@link #report(Predicate)} over every module. */
    public String report() {
        return report(m -> true);
    }

    /** The report of the given kernels (see {@link #report(Predicate)}). */
    public static String report(List<KernelCoverage> list) {
        StringBuilder sb = new StringBuilder();
        int total = 0, executed = 0;
        for (KernelCoverage k : list) {
            total += k.total();
            executed += k.executed();
            sb.append(String.format(Locale.ROOT, "%s %s: %d/%d instructions executed (%.1f%%), %,d thread-instructions%s%n",
                    k.module(), k.kernel(), k.executed(), k.total(), 100.0 * k.executed() / Math.max(1, k.total()),
                    k.threadInstructions(), k.source().isEmpty() ? "" : " (PTX text " + k.source() + ")"));
            List<Instruction> dead = k.notExecuted();
            if (!dead.isEmpty()) {
                sb.append("  never executed:\n");
                appendGrouped(sb, dead);
            }
            List<Instruction> never = k.guardNeverTrue();
            if (!never.isEmpty()) {
                sb.append("  guard never true:\n");
                for (Instruction i : never) sb.append(String.format(Locale.ROOT, "    %6d  %s%n", i.line(), i.text()));
            }
        }
        sb.append(String.format(Locale.ROOT, "total: %d/%d instructions executed (%.1f%%) in %d kernels%n", executed,
                total, 100.0 * executed / Math.max(1, total), list.size()));
        return sb.toString();
    }

    private static void appendGrouped(StringBuilder sb, List<Instruction> dead) {
        int i = 0;
        while (i < dead.size()) {
            int j = i;
            while (j + 1 < dead.size() && dead.get(j + 1).line() <= dead.get(j).line() + 2) j++;
            int n = j - i + 1;
            if (n == 1) {
                sb.append(String.format(Locale.ROOT, "    line %d: %s%n", dead.get(i).line(), dead.get(i).text()));
            } else {
                sb.append(String.format(Locale.ROOT, "    lines %d-%d (%d instructions): %s ... %s%n",
                        dead.get(i).line(), dead.get(j).line(), n, dead.get(i).text(), dead.get(j).text()));
            }
            i = j + 1;
        }
    }

    // ---- files ----------------------------------------------------------------------------------------------------

    /**
     * Adds these counts to {@code folder/}{@value #TSV} (created if absent; the rows of other runs are kept and equal
     * rows summed) under an exclusive file lock, and rewrites {@code folder/}{@value #TXT} from the merged counts.
     */
    public void mergeInto(Path folder) {
        List<KernelCoverage> mine = kernels();
        try {
            Files.createDirectories(folder);
            Path tsv = folder.resolve(TSV);
            try (FileChannel ch = FileChannel.open(tsv, StandardOpenOption.CREATE, StandardOpenOption.READ,
                    StandardOpenOption.WRITE); FileLock ignored = ch.lock()) {
                ByteBuffer buf = ByteBuffer.allocate((int) ch.size());
                while (buf.hasRemaining() && ch.read(buf) >= 0) {
                    // read it all
                }
                List<KernelCoverage> merged = merge(parseTsv(new String(buf.array(), StandardCharsets.UTF_8)), mine);
                byte[] out = toTsv(merged).getBytes(StandardCharsets.UTF_8);
                ch.truncate(0);
                ch.position(0);
                ByteBuffer w = ByteBuffer.wrap(out);
                while (w.hasRemaining()) ch.write(w);
                Files.writeString(folder.resolve(TXT), report(merged));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("coverage: cannot merge into " + folder, e);
        }
    }

    /** Reads a {@value #TSV} file written by {@link #mergeInto}. */
    public static List<KernelCoverage> readTsv(Path file) {
        try {
            return parseTsv(Files.readString(file));
        } catch (IOException e) {
            throw new UncheckedIOException("coverage: cannot read " + file, e);
        }
    }

    static String toTsv(List<KernelCoverage> list) {
        StringBuilder sb = new StringBuilder("# module\tkernel\tline\tthreads\tguard_true\tguarded\tsource\ttext\n");
        for (KernelCoverage k : list) {
            for (Instruction i : k.instructions()) {
                sb.append(k.module()).append('\t').append(k.kernel()).append('\t').append(i.line()).append('\t')
                        .append(i.threads()).append('\t').append(i.guardTrue()).append('\t')
                        .append(i.guarded() ? 1 : 0).append('\t').append(k.source()).append('\t')
                        .append(i.text().replace('\t', ' ')).append('\n');
            }
        }
        return sb.toString();
    }

    static List<KernelCoverage> parseTsv(String text) {
        Map<String, List<Instruction>> byKernel = new LinkedHashMap<>();
        Map<String, String[]> names = new LinkedHashMap<>();
        for (String row : text.split("\n")) {
            if (row.isBlank() || row.startsWith("#")) continue;
            // 8 columns; 7 in files written before the source column (texts never hold a tab: toTsv replaces them)
            String[] f = row.split("\t", 8);
            if (f.length != 7 && f.length != 8) throw new IllegalArgumentException("coverage: malformed row '" + row + "'");
            String source = f.length == 8 ? f[6] : "";
            String key = f[0] + "\u0000" + f[1] + "\u0000" + source;
            names.putIfAbsent(key, new String[]{f[0], f[1], source});
            byKernel.computeIfAbsent(key, k -> new ArrayList<>()).add(new Instruction(Integer.parseInt(f[2]), f[f.length - 1],
                    f[5].equals("1"), Long.parseLong(f[3]), Long.parseLong(f[4])));
        }
        List<KernelCoverage> out = new ArrayList<>();
        for (var e : byKernel.entrySet()) {
            String[] n = names.get(e.getKey());
            out.add(new KernelCoverage(n[0], n[1], n[2], e.getValue()));
        }
        return out;
    }

    /** Sums two lists of kernel counts; instructions match by (module, kernel, source, line, text). */
    static List<KernelCoverage> merge(List<KernelCoverage> a, List<KernelCoverage> b) {
        Map<String, Map<String, Instruction>> rows = new LinkedHashMap<>();
        Map<String, String[]> names = new LinkedHashMap<>();
        for (List<KernelCoverage> side : List.of(a, b)) {
            for (KernelCoverage k : side) {
                String key = k.module() + "\u0000" + k.kernel() + "\u0000" + k.source();
                names.putIfAbsent(key, new String[]{k.module(), k.kernel(), k.source()});
                Map<String, Instruction> m = rows.computeIfAbsent(key, x -> new LinkedHashMap<>());
                for (Instruction i : k.instructions()) {
                    m.merge(i.line() + "\u0000" + i.text(), i, (p, q) -> new Instruction(p.line(), p.text(),
                            p.guarded(), p.threads() + q.threads(), p.guardTrue() + q.guardTrue()));
                }
            }
        }
        List<KernelCoverage> out = new ArrayList<>();
        for (var e : rows.entrySet()) {
            String[] n = names.get(e.getKey());
            List<Instruction> ins = new ArrayList<>(e.getValue().values());
            ins.sort((p, q) -> Integer.compare(p.line(), q.line()));
            out.add(new KernelCoverage(n[0], n[1], n[2], ins));
        }
        return out;
    }

    @Override
    public String toString() {
        return "Coverage of " + Objects.requireNonNull(kernels).size() + " kernel(s)";
    }
}
