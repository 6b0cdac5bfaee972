package io.github.batchnorm4j.mutation;

import io.github.batchnorm4j.cli.Json;
import io.github.batchnorm4j.train.MiniJson;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * Mutation testing of the shipped PTX (the main behind {@code scripts/mutate-ptx.sh}): makes every single-instruction
 * mutant of the batch-norm modules ({@link PtxMutator}), runs the test command once per mutant with
 * {@code BATCHNORM4J_PTX_DIR} pointing at a folder holding the mutated module, and records whether a test failed
 * (killed), the command ran past the timeout (timeout, counted as killed: a hang is detected), or everything passed
 * (survived). Mutants on lines the coverage says are never executed are skipped; mutants known to be equivalent are
 * listed with the reason and not run. Writes {@code results.jsonl} as it goes (so {@code --resume} continues a long run),
 * then {@code report.json} and the readable {@code report.txt}.
 *
 * <p>Run {@code scripts/mutate-ptx.sh --help} for the options.
 */
public final class MutationRun {
    static final List<String> DEFAULT_MODULES = List.of("batchnorm_forward.ptx", "batchnorm_backward.ptx");
    /** The reviewed equivalent mutants of the shipped kernels (used when present and no --equivalents is given). */
    static final Path DEFAULT_EQUIVALENTS = Path.of("src/test/resources/mutation/equivalents.tsv");
    /**
     * The default test subset: every emulator test class of the batch-norm kernels (the contract on 132, 1, 108 and
     * 114 SMs with the same-bits check, float16/bfloat16, in place, streams, the device API, the split operations of
     * SyncBatchNorm), the 16-bit device API and the traffic budgets: about 30 s unmutated on a quiet machine. And the
     * device-resident SyncBatchNorm on emulated devices: the only tests that merge several records in the kernels
     * (the host API's split operations hand them one, already merged); without it the seed-7 run let the merge's
     * count arithmetic pass.
     */
    static final String DEFAULT_TESTS =
            "Emulator*Test,MixedPrecisionDeviceApiTest,TrafficBudgetTest,DeviceResidentSyncBatchNormTest";

    /** Outcome of one mutant. */
    enum Status {
        KILLED, TIMEOUT, SURVIVED, EQUIVALENT, NOT_EXECUTED;

        String label() {
            return name().toLowerCase(Locale.ROOT).replace('_', '-');
        }
    }

    /** Settings from the command line. */
    static final class Options {
        Path source = Path.of("src/main/resources/io/github/batchnorm4j/ptx");
        List<String> modules = DEFAULT_MODULES;
        Set<PtxMutator.Operator> operators = EnumSet.allOf(PtxMutator.Operator.class);
        int sample;            // 0: all
        long seed = 1;
        String tests = DEFAULT_TESTS;
        String testCommand;    // overrides tests
        double timeoutSeconds; // 0: from the baseline
        int jobs = 1;
        Path out = Path.of("target/mutation");
        Path coverage;         // executed lines; null: every line counts as executed
        Path equivalents = DEFAULT_EQUIVALENTS.toFile().exists() ? DEFAULT_EQUIVALENTS : null; // hand-classified
        java.util.Set<String> lines;   // module:line to mutate; null: every line
        java.util.Set<String> ids;     // mutant ids to run; null: every mutant
        boolean resume;
        boolean list;
        boolean freshJvm;      // a new test JVM per mutant (the older, slower mode) instead of long-lived workers
        boolean allTests;      // workers run every test for each mutant, not only those executing its line
        String pauseCommand;   // run (bash -c) before each mutant, e.g. a wait for a quiet machine
        /** Where progress and the final table go (tests silence it). */
        java.io.PrintStream log = System.out;
    }

    private MutationRun() {
    }

    public static void main(String[] args) throws Exception {
        Options o;
        try {
            o = parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("error: " + e.getMessage());
            System.exit(2);
            return;
        }
        if (o == null) return; // --help
        System.exit(run(o));
    }

    static Options parse(String[] args) {
        Options o = new Options();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--help") || a.equals("-h")) {
                System.out.println(HELP);
                return null;
            }
            if (a.equals("--resume")) {
                o.resume = true;
                continue;
            }
            if (a.equals("--list")) {
                o.list = true;
                continue;
            }
            if (a.equals("--fresh-jvm")) {
                o.freshJvm = true;
                continue;
            }
            if (a.equals("--all-tests")) {
                o.allTests = true;
                continue;
            }
            if (i + 1 >= args.length) throw new IllegalArgumentException(a + ": expected a value");
            String v = args[++i];
            switch (a) {
                case "--source" -> o.source = Path.of(v);
                case "--modules" -> o.modules = List.of(v.split(","));
                case "--operators" -> {
                    o.operators = EnumSet.noneOf(PtxMutator.Operator.class);
                    for (String op : v.split(",")) o.operators.add(PtxMutator.Operator.of(op.trim()));
                }
                case "--sample" -> o.sample = positive(a, v);
                case "--seed" -> o.seed = Long.parseLong(v);
                case "--tests" -> o.tests = v;
                case "--test-command" -> o.testCommand = v;
                case "--timeout" -> o.timeoutSeconds = positive(a, v);
                case "--jobs" -> o.jobs = positive(a, v);
                case "--out" -> o.out = Path.of(v);
                case "--coverage" -> o.coverage = Path.of(v);
                case "--equivalents" -> o.equivalents = Path.of(v);
                case "--lines" -> o.lines = new java.util.HashSet<>(List.of(v.split(",")));
                case "--pause-command" -> o.pauseCommand = v;
                case "--survivors" -> o.ids = survivors(Path.of(v));
                default -> throw new IllegalArgumentException("unknown option " + a + " (see --help)");
            }
        }
        return o;
    }

    /** The ids of the survivors in a results.jsonl. */
    private static java.util.Set<String> survivors(Path results) {
        java.util.Set<String> ids = new java.util.HashSet<>();
        try {
            for (String line : Files.readAllLines(results, StandardCharsets.UTF_8)) {
                if (line.isBlank()) continue;
                Map<String, Object> j = MiniJson.parseObject(line);
                if ("survived".equals(j.get("status"))) ids.add((String) j.get("id"));
            }
        } catch (IOException e) {
            throw new IllegalArgumentException("--survivors: cannot read " + results + ": " + e.getMessage());
        }
        return ids;
    }

    private static int positive(String name, String v) {
        int n;
        try {
            n = Integer.parseInt(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + ": expected a positive integer, got '" + v + "'");
        }
        if (n < 1) throw new IllegalArgumentException(name + ": expected a positive integer, got " + n);
        return n;
    }

    static final String HELP = """
            scripts/mutate-ptx.sh [options]: mutation testing of the shipped PTX on the emulator
              --sample N          run a random sample of N mutants (default: all of them)
              --seed S            seed of the sample (default 1)
              --modules A,B       PTX files to mutate (default batchnorm_forward.ptx,batchnorm_backward.ptx)
              --operators LIST    arith,swap,cmp,guard,const,sync,load (default: all)
              --tests PATTERNS    test classes run per mutant, stopping at the first failure, in long-lived test
                                  JVMs (one per job; the mutant's folder goes in as -Dbatchnorm4j.ptx.dir; tests that
                                  killed mutants of the same line or kernel run first)
                                  (default Emulator*Test,MixedPrecisionDeviceApiTest,TrafficBudgetTest,
                                  DeviceResidentSyncBatchNormTest)
              --all-tests         every test for each mutant, not only the tests that execute its line (the unmutated
                                  run records which tests execute which lines; e.g. to confirm survivors)
              --fresh-jvm         a new test JVM per mutant instead, every test (BATCHNORM4J_PTX_DIR set; slower)
              --test-command CMD  any shell command instead (run with bash -c; BATCHNORM4J_PTX_DIR is set;
                                  exit 0 means the mutant survived), e.g. 'mvn -o -q test -Dtest=Emulator*Test'
              --timeout SECONDS   per mutant (default: 3 x the unmutated run + 60 s with workers, 5 x + 60 s
                                  otherwise); a mutant past it runs once more, in a new JVM, with 3 x as long, and
                                  only a second timeout counts (as killed: a hang)
              --jobs J            mutants run at once (default 1)
              --coverage FILE     executed PTX lines; mutants on other lines are skipped as never executed
              --lines M:L,...     only the mutants of these lines (e.g. batchnorm_backward.ptx:1694), to rerun survivors
              --survivors FILE    only the mutants that survived in FILE (a results.jsonl of an earlier run of the
                                  same PTX), e.g. to judge them again after adding tests
              --equivalents FILE  hand-classified equivalent mutants (tab-separated: module:line or module:kernel,
                                  mutated text, reason); matching survivors are reported as equivalent with that
                                  reason (default src/test/resources/mutation/equivalents.tsv when present)
              --pause-command CMD run before each mutant (bash -c), e.g. a script that waits while the machine is
                                  needed for something else
              --out DIR           results.jsonl, report.json, report.txt (default target/mutation)
              --resume            keep the results already in DIR/results.jsonl and run only the others
              --list              list the mutants (after coverage, equivalence and sampling) and stop
            Exit code: 0 when the run completed, 1 when the unmutated PTX fails the tests, 2 on bad usage.""";

    // ---- the run ---------------------------------------------------------------------------------------------------

    /** One mutant and what happened to it. */
    record Result(PtxMutant mutant, Status status, double seconds, String detail) {
    }

    static int run(Options o) throws Exception {
        Map<String, String> ptx = new LinkedHashMap<>();
        try (Stream<Path> files = Files.list(o.source)) {
            for (Path p : files.filter(f -> f.toString().endsWith(".ptx")).sorted().toList()) {
                ptx.put(p.getFileName().toString(), Files.readString(p, StandardCharsets.US_ASCII));
            }
        }
        for (String m : o.modules) {
            if (!ptx.containsKey(m)) throw new IllegalArgumentException("--modules: no " + m + " in " + o.source);
        }
        List<PtxMutant> all = new ArrayList<>();
        for (String m : o.modules) {
            for (PtxMutant x : PtxMutator.mutants(m, ptx.get(m))) {
                if (o.operators.contains(x.operator()) && (o.lines == null || o.lines.contains(m + ":" + x.line()))
                        && (o.ids == null || o.ids.contains(x.id()))) {
                    all.add(x);
                }
            }
        }
        Path work = Files.createTempDirectory("bn4j-mutants");
        try {
            Command command = new Command(o, work);
            double baseline = 0;
            Coverage coverage = null;
            String coverageSource;
            if (o.coverage != null) {
                coverage = Coverage.read(o.coverage, ptx);
                coverageSource = o.coverage.toString();
            } else if (o.list) {
                coverageSource = "none (--list without --coverage does not run the tests)";
            } else {
                coverageSource = "the unmutated run of the test command";
            }
            if (!o.list) {
                baseline = command.baseline(ptx);
                if (baseline < 0) return 1;
                if (coverage == null) {
                    Path recorded = work.resolve("coverage").resolve("coverage.tsv");
                    if (Files.exists(recorded)) {
                        coverage = Coverage.read(recorded, ptx);
                        Files.createDirectories(o.out);
                        Files.copy(recorded, o.out.resolve("coverage.tsv"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
                    } else {
                        coverageSource = "none (the test command recorded no BATCHNORM4J_COVERAGE)";
                    }
                }
            }
            for (String m : o.modules) {
                if (coverage != null && !coverage.knows(m)) {
                    throw new IllegalArgumentException("coverage from " + coverageSource + " has no line of " + m
                            + (coverage.hasOtherTexts(m) ? " as in " + o.source + " (only rows of other PTX texts of it:"
                            + " recorded before the PTX changed?)" : ": the tests never load it")
                            + ", so every mutant would survive");
                }
            }
            return runMutants(o, ptx, all, coverage, coverageSource, command, baseline);
        } finally {
            deleteTree(work);
        }
    }

    private static int runMutants(Options o, Map<String, String> ptx, List<PtxMutant> all, Coverage coverage,
                                  String coverageSource, Command command, double baseline) throws Exception {
        Equivalents hand = o.equivalents == null ? Equivalents.NONE : Equivalents.read(o.equivalents);
        List<Result> done = new ArrayList<>();
        List<PtxMutant> executed = new ArrayList<>();
        int notExecuted = 0;
        for (PtxMutant m : all) {
            if (coverage != null && !coverage.executed(m.module(), m.line())) notExecuted++;
            else executed.add(m);
        }
        List<PtxMutant> chosen = new ArrayList<>(executed);
        if (o.sample > 0 && o.sample < chosen.size()) {
            Collections.shuffle(chosen, new Random(o.seed));
            chosen = new ArrayList<>(chosen.subList(0, o.sample));
        }
        chosen.sort(Comparator.comparing(PtxMutant::module).thenComparingInt(PtxMutant::line));
        List<PtxMutant> toRun = new ArrayList<>();
        for (PtxMutant m : chosen) {
            if (m.equivalent() != null) done.add(new Result(m, Status.EQUIVALENT, 0, m.equivalent()));
            else toRun.add(m);
        }
        o.log.printf(Locale.ROOT, "%d mutants of %s (%s); coverage: %s; %d on never-executed lines skipped; "
                        + "%d chosen%s: %d equivalent by rule, %d to run%n", all.size(), String.join(", ", o.modules),
                o.operators.stream().map(PtxMutator.Operator::label).toList(), coverageSource, notExecuted,
                chosen.size(), o.sample > 0 ? " (sample, seed " + o.seed + ")" : "", done.size(), toRun.size());
        if (o.list) {
            for (PtxMutant m : chosen) {
                o.log.printf("%-32s %-22s %-6s %s  ->  %s%s%n", m.module() + ":" + m.line(), m.function(),
                        m.operator().label(), m.original(), m.mutated(),
                        m.equivalent() != null ? "   [equivalent: " + m.equivalent() + "]" : "");
            }
            return 0;
        }

        Files.createDirectories(o.out);
        Path results = o.out.resolve("results.jsonl");
        Map<String, Result> previous = o.resume ? readResults(results, toRun) : Map.of();
        if (!o.resume) Files.deleteIfExists(results);
        {
            double timeout = o.timeoutSeconds > 0 ? o.timeoutSeconds : (command.workers() ? 3 : 5) * baseline + 60;
            o.log.printf(Locale.ROOT, "unmutated run: passed in %.1f s; timeout per mutant %.0f s; %d job(s)%s%n",
                    baseline, timeout, o.jobs, command.workers() ? ", each a long-lived test JVM running only the tests "
                            + "that execute the mutated line (recorded for " + command.workers.recordedTests()
                            + " tests or classes)" : "");
            List<PtxMutant> pending = new ArrayList<>();
            for (PtxMutant m : toRun) {
                Result r = previous.get(m.id());
                if (r != null) done.add(r);
                else pending.add(m);
            }
            if (!previous.isEmpty()) o.log.println("resumed: " + (toRun.size() - pending.size()) + " results kept");
            ExecutorService pool = Executors.newFixedThreadPool(o.jobs);
            try {
                List<Future<Result>> futures = new ArrayList<>();
                for (PtxMutant m : pending) {
                    futures.add(pool.submit(() -> {
                        if (o.pauseCommand != null) new ProcessBuilder("bash", "-c", o.pauseCommand).inheritIO().start().waitFor();
                        return command.runMutant(ptx, m, timeout);
                    }));
                }
                int n = 0;
                for (Future<Result> f : futures) {
                    Result r = f.get();
                    n++;
                    done.add(r);
                    synchronized (MutationRun.class) {
                        Files.writeString(results, toJson(r) + "\n", StandardCharsets.UTF_8,
                                StandardOpenOption.CREATE, StandardOpenOption.APPEND);
                    }
                    o.log.printf(Locale.ROOT, "[%d/%d] %-8s %5.1f s  %s  %s -> %s%s%n", n, pending.size(),
                            r.status().label(), r.seconds(), r.mutant().module() + ":" + r.mutant().line(),
                            r.mutant().original(), r.mutant().mutated(),
                            r.status() == Status.KILLED ? "  (" + r.detail().split("\n", 2)[0] + ")" : "");
                }
            } finally {
                pool.shutdownNow();
                command.close();
            }
            MutationReport report = new MutationReport(o, coverageSource, all.size(), notExecuted, chosen.size(),
                    baseline, timeout, hand.apply(done));
            report.write(o.out);
            o.log.println();
            o.log.print(report.table());
            return 0;
        }
    }

    private static Map<String, Result> readResults(Path file, List<PtxMutant> toRun) throws IOException {
        Map<String, Result> out = new HashMap<>();
        if (!Files.exists(file)) return out;
        Map<String, PtxMutant> byId = new HashMap<>();
        for (PtxMutant m : toRun) byId.put(m.id(), m);
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            if (line.isBlank()) continue;
            Map<String, Object> j = MiniJson.parseObject(line);
            PtxMutant m = byId.get((String) j.get("id"));
            if (m == null) continue; // from another sample or an older PTX
            out.put(m.id(), new Result(m, Status.valueOf(((String) j.get("status")).toUpperCase(Locale.ROOT)
                    .replace('-', '_')), ((Number) j.get("seconds")).doubleValue(), (String) j.get("detail")));
        }
        return out;
    }

    static Json toJson(Result r) {
        PtxMutant m = r.mutant();
        return new Json().put("id", m.id()).put("module", m.module()).put("line", m.line())
                .put("function", m.function()).put("operator", m.operator().label()).put("original", m.original())
                .put("mutated", m.mutated()).put("status", r.status().label()).put("seconds", r.seconds())
                .put("detail", r.detail());
    }

    /** Runs the test command on the unmutated PTX and on each mutant. */
    private static final class Command implements AutoCloseable {
        private final Options o;
        private final Path work;
        private final Workers workers; // null: a process per mutant

        Command(Options o, Path work) {
            this.o = o;
            this.work = work;
            this.workers = o.testCommand == null && !o.freshJvm ? new Workers(o, work) : null;
        }

        boolean workers() {
            return workers != null;
        }

        @Override
        public void close() {
            if (workers != null) workers.close();
        }

        /** Seconds the unmutated run took, or -1 (after printing why) when it failed. */
        double baseline(Map<String, String> ptx) throws IOException, InterruptedException {
            Path dir = Files.createDirectories(work.resolve("baseline"));
            writeModules(dir, ptx, null, null);
            if (workers != null) {
                Workers.Reply r = workers.baseline(dir, o.coverage == null ? work.resolve("coverage") : null);
                if (r.timedOut() || !r.passed()) {
                    System.err.println("error: the tests fail on the unmutated PTX, so no mutant can be judged: "
                            + (r.timedOut() ? "no result after an hour" : r.test() + "\n  " + r.why()));
                    return -1;
                }
                return r.seconds();
            }
            Outcome r = execute(dir, 3600, "baseline");
            if (r.exit != 0) {
                System.err.println("error: the tests fail on the unmutated PTX (exit " + r.exit + "), so no mutant "
                        + "can be judged:\n" + r.output);
                return -1;
            }
            return r.seconds;
        }

        Result runMutant(Map<String, String> ptx, PtxMutant m, double timeout) throws IOException, InterruptedException {
            Path dir = Files.createDirectories(work.resolve("m" + Thread.currentThread().getId()));
            writeModules(dir, ptx, m.module(), PtxMutator.apply(ptx.get(m.module()), m));
            if (workers != null) return workers.judge(dir, m, timeout);
            Outcome r = execute(dir, timeout, m.id());
            if (r.timedOut) {
                // A shared machine can slow a run past the timeout: only a second, three times longer wait that also
                // ends without a result counts as a hang.
                Outcome again = execute(dir, 3 * timeout, m.id());
                if (again.timedOut) {
                    return new Result(m, Status.TIMEOUT, r.seconds + again.seconds, "no result after "
                            + Math.round(timeout) + " s, nor after " + Math.round(3 * timeout) + " s");
                }
                r = again;
            }
            if (r.exit == 0) return new Result(m, Status.SURVIVED, r.seconds, lastLine(r.output));
            return new Result(m, Status.KILLED, r.seconds, failure(r.output, r.exit));
        }

        private static void writeModules(Path dir, Map<String, String> ptx, String mutatedModule, String mutatedText)
                throws IOException {
            for (Map.Entry<String, String> e : ptx.entrySet()) {
                String text = e.getKey().equals(mutatedModule) ? mutatedText : e.getValue();
                Files.writeString(dir.resolve(e.getKey()), text, StandardCharsets.US_ASCII);
            }
        }

        private record Outcome(int exit, boolean timedOut, double seconds, String output) {
        }

        private Outcome execute(Path ptxDir, double timeout, String id) throws IOException, InterruptedException {
            List<String> cmd = new ArrayList<>();
            if (o.testCommand != null) {
                cmd.addAll(List.of("bash", "-c", o.testCommand));
            } else {
                cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
                cmd.addAll(List.of("-Xss8m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=4", "-cp",
                        System.getProperty("java.class.path"), io.github.batchnorm4j.testing.SuiteRunner.class.getName(), o.tests));
            }
            ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
            pb.environment().put("BATCHNORM4J_PTX_DIR", ptxDir.toAbsolutePath().toString());
            pb.environment().put("BATCHNORM4J_MUTANT", id);
            if (id.equals("baseline") && o.coverage == null) {
                // The unmutated run also says which lines the tests execute (the emulator's coverage, see ptx/Coverage).
                pb.environment().put("BATCHNORM4J_COVERAGE", work.resolve("coverage").toAbsolutePath().toString());
            } else {
                pb.environment().remove("BATCHNORM4J_COVERAGE");
            }
            Path log = ptxDir.resolve("output.txt");
            pb.redirectOutput(log.toFile());
            long start = System.nanoTime();
            Process p = pb.start();
            boolean finished = p.waitFor((long) (timeout * 1000), TimeUnit.MILLISECONDS);
            double seconds = (System.nanoTime() - start) / 1e9;
            if (!finished) {
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly();
                p.waitFor();
                return new Outcome(-1, true, seconds, "");
            }
            String output = Files.readString(log, StandardCharsets.UTF_8);
            return new Outcome(p.exitValue(), false, seconds, output);
        }

        private static String lastLine(String output) {
            String[] lines = output.strip().split("\\R");
            return lines.length == 0 ? "" : lines[lines.length - 1];
        }

        /** The failing test and its message (SuiteRunner's "FAILED" lines), else the output's tail. */
        private static String failure(String output, int exit) {
            int i = output.indexOf("FAILED ");
            if (i >= 0) return output.substring(i + "FAILED ".length()).strip();
            String s = output.strip();
            return "exit " + exit + (s.isEmpty() ? "" : ": " + s.substring(Math.max(0, s.length() - 400)));
        }
    }

    static void deleteTree(Path p) {
        if (!Files.exists(p)) return;
        try (Stream<Path> walk = Files.walk(p)) {
            for (Path q : walk.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(q);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
