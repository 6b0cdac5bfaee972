package io.github.batchnorm4j.mutation;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Deque;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The long-lived test JVMs ({@link MutationWorker}) that judge mutants for {@link MutationRun}, and the test order they
 * are given: the tests that killed mutants of the same PTX line, then of the same kernel, then the tests that killed
 * the most mutants overall; then every class, those with the most kills first, then the quickest first. A mutant that
 * survives runs every test all the same; the order only makes the usual case, a killed mutant, end early.
 *
 * <p>A worker that runs past the timeout, or exits, is killed and replaced; every {@value #RECYCLE} mutants a worker
 * is replaced anyway, so that whatever a test leaves behind (threads, memory) cannot pile up.
 */
final class Workers implements AutoCloseable {
    static final int RECYCLE = 40;
    private static final String EOF = "\u0000eof";
    private static final Pattern CLASS = Pattern.compile("\\[class:([^\\]]+)\\]");

    /** What the tests said: passed, or the first failed test (its unique id, name and message). */
    record Reply(boolean timedOut, boolean passed, double seconds, long testsPassed, String failedId, String test,
                 String why, Map<String, Double> classSeconds) {
    }

    private final MutationRun.Options o;
    private final Path work;
    private final BlockingQueue<Worker> idle = new LinkedBlockingQueue<>();
    private final List<Worker> all = java.util.Collections.synchronizedList(new ArrayList<>());
    private final AtomicInteger started = new AtomicInteger();

    // the test order, learnt from the kills so far
    private final Map<String, Deque<String>> killersByLine = new HashMap<>();
    private final Map<String, Deque<String>> killersByKernel = new HashMap<>();
    private final Map<String, Integer> killsByTest = new HashMap<>();
    private final Map<String, Integer> killsByClass = new HashMap<>();
    private final Map<String, Double> classSeconds = new HashMap<>();
    // which tests execute which lines (from the baseline): test index -> unique id, "module:line" -> test indexes
    private final List<String> tests = new ArrayList<>();
    private final Map<String, int[]> testsByLine = new HashMap<>();

    Workers(MutationRun.Options o, Path work) {
        this.o = o;
        this.work = work;
    }

    /**
     * The unmutated run, in a worker of its own that records the emulator's coverage into {@code coverage} (null: a
     * scratch folder) and which tests execute which lines ({@link TestLines}).
     */
    Reply baseline(Path dir, Path coverage) throws IOException, InterruptedException {
        Path lines = work.resolve("test-lines.tsv");
        Worker w = new Worker(coverage != null ? coverage : work.resolve("coverage-scratch"), lines);
        Reply r;
        try {
            r = w.run("baseline", dir, List.of(), 3600);
            synchronized (this) {
                classSeconds.putAll(r.classSeconds());
            }
        } finally {
            w.close(); // lets the coverage and the test lines be written
        }
        if (r.passed() && Files.exists(lines)) readTestLines(lines);
        return r;
    }

    private synchronized void readTestLines(Path file) throws IOException {
        try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            for (String row; (row = in.readLine()) != null; ) {
                String[] f = row.split("\t", 4);
                if (f[0].equals("T")) {
                    int i = Integer.parseInt(f[1]);
                    while (tests.size() <= i) tests.add(null);
                    tests.set(i, f[3]);
                } else if (f[0].equals("L")) {
                    String[] ix = f[3].split(",");
                    int[] t = new int[ix.length];
                    for (int k = 0; k < ix.length; k++) t[k] = Integer.parseInt(ix[k]);
                    testsByLine.put(f[1] + ":" + f[2], t);
                }
            }
        }
    }

    /** How many of the baseline's tests (or classes) execute some line: 0 when the baseline recorded none. */
    synchronized int recordedTests() {
        return tests.size();
    }

    /** The unique ids of the tests (or classes) that execute the mutant's line, or null: every test. */
    synchronized List<String> testsOf(PtxMutant m) {
        if (tests.isEmpty() || o.allTests) return null;
        int[] t = testsByLine.get(m.module() + ":" + m.line());
        if (t == null) return null; // not executed in the baseline (coverage given from elsewhere): run everything
        List<String> out = new ArrayList<>(t.length);
        for (int i : t) {
            if (tests.get(i).equals(TestLines.EVERYTHING)) return null;
            out.add(tests.get(i));
        }
        return out;
    }

    /** Judges one mutant whose modules are in {@code dir}; a timeout is retried once, in a new JVM, 3 x as long. */
    MutationRun.Result judge(Path dir, PtxMutant m, double timeout) throws IOException, InterruptedException {
        Reply r = attempt(dir, m, timeout);
        double seconds = r.seconds();
        if (r.timedOut()) {
            // A shared machine can slow a run past the timeout: only a second, three times longer wait that also ends
            // without a result counts as a hang.
            r = attempt(dir, m, 3 * timeout);
            seconds += r.seconds();
            if (r.timedOut()) {
                return new MutationRun.Result(m, MutationRun.Status.TIMEOUT, seconds, "no result after "
                        + Math.round(timeout) + " s, nor after " + Math.round(3 * timeout) + " s");
            }
        }
        if (r.passed()) {
            List<String> covering = testsOf(m);
            return new MutationRun.Result(m, MutationRun.Status.SURVIVED, seconds, "Tests run: " + r.testsPassed()
                    + ", Failures: 0 (" + (covering == null ? "every test" : "the tests executing this line: "
                    + covering.size() + " tests or classes") + ")");
        }
        if (!r.failedId().isEmpty()) killed(m, r.failedId());
        return new MutationRun.Result(m, MutationRun.Status.KILLED, seconds, r.test() + "\n  " + r.why());
    }

    private Reply attempt(Path dir, PtxMutant m, double timeout) throws IOException, InterruptedException {
        long t0 = System.nanoTime();
        Worker w = idle.poll();
        if (w == null) w = new Worker(null, null);
        Reply r = w.run(m.id(), dir, order(m), timeout);
        if (r.timedOut() || w.exited()) {
            w.kill();
        } else if (++w.used >= RECYCLE) {
            w.close();
        } else {
            idle.add(w);
        }
        // the time includes starting a worker when one was needed
        double seconds = (System.nanoTime() - t0) / 1e9;
        return new Reply(r.timedOut(), r.passed(), seconds, r.testsPassed(), r.failedId(), r.test(), r.why(),
                r.classSeconds());
    }

    /**
     * The run line's arguments for a mutant: {@code U:<test id>}... in the order to run them; without a record of the
     * tests that execute its line, the killers, then {@code ALL} and {@code C:<class>}... (every class in this order).
     */
    synchronized List<String> order(PtxMutant m) {
        List<String> covering = testsOf(m);
        java.util.Set<String> allowed = covering == null ? null : new java.util.HashSet<>(covering);
        LinkedHashSet<String> first = new LinkedHashSet<>();
        take(first, killersByLine.get(m.module() + ":" + m.line()), allowed, 3);
        take(first, killersByKernel.get(m.module() + ":" + m.function()), allowed, 6);
        List<String> top = killsByTest.entrySet().stream()
                .sorted(Map.Entry.<String, Integer>comparingByValue().reversed().thenComparing(Map.Entry.comparingByKey()))
                .map(Map.Entry::getKey).toList();
        take(first, top, allowed, 9);
        List<String> out = new ArrayList<>();
        for (String t : first) out.add("U:" + t);
        Comparator<String> classOrder = Comparator.<String>comparingInt(c -> -killsByClass.getOrDefault(c, 0))
                .thenComparingDouble(c -> classSeconds.getOrDefault(c, Double.MAX_VALUE))
                .thenComparing(Comparator.naturalOrder());
        if (covering == null) {
            out.add("ALL");
            List<String> classes = new ArrayList<>(classSeconds.keySet());
            classes.sort(classOrder);
            for (String c : classes) out.add("C:" + c);
            return out;
        }
        List<String> rest = new ArrayList<>();
        for (String t : covering) if (!first.contains(t)) rest.add(t);
        // by class (a class's tests in one request, in the baseline's order), the classes in the order above
        rest.sort(Comparator.comparing((String t) -> String.valueOf(MutationWorker.classOf(t)), classOrder));
        for (String t : rest) out.add("U:" + t);
        return out;
    }

    private static void take(LinkedHashSet<String> into, Iterable<String> from, java.util.Set<String> allowed, int upTo) {
        if (from == null) return;
        for (String s : from) {
            if (into.size() >= upTo) return;
            if (allowed == null || allowed.contains(s)) into.add(s);
        }
    }

    private synchronized void killed(PtxMutant m, String testId) {
        remember(killersByLine.computeIfAbsent(m.module() + ":" + m.line(), k -> new ArrayDeque<>()), testId);
        remember(killersByKernel.computeIfAbsent(m.module() + ":" + m.function(), k -> new ArrayDeque<>()), testId);
        killsByTest.merge(testId, 1, Integer::sum);
        Matcher c = CLASS.matcher(testId);
        if (c.find()) killsByClass.merge(c.group(1), 1, Integer::sum);
    }

    private static void remember(Deque<String> recent, String testId) {
        recent.remove(testId);
        recent.addFirst(testId);
        while (recent.size() > 8) recent.removeLast();
    }

    /** How many worker JVMs were started so far. */
    int started() {
        return started.get();
    }

    @Override
    public void close() {
        synchronized (all) {
            for (Worker w : all) w.close();
        }
    }

    /** One worker JVM. */
    private final class Worker {
        private final Process process;
        private final Writer stdin;
        private final BlockingQueue<String> lines = new LinkedBlockingQueue<>();
        int used;

        Worker(Path coverage, Path testLines) throws IOException, InterruptedException {
            int n = started.incrementAndGet();
            List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-Xss8m", "-Xmx3g", "-XX:+UseSerialGC", "-cp", System.getProperty("java.class.path"),
                    MutationWorker.class.getName(), o.tests));
            if (testLines != null) cmd.addAll(List.of("--test-lines", testLines.toString()));
            ProcessBuilder pb = new ProcessBuilder(cmd)
                    .redirectError(ProcessBuilder.Redirect.appendTo(work.resolve("worker-" + n + ".log").toFile()));
            pb.environment().remove("BATCHNORM4J_PTX_DIR"); // the property names each mutant's folder
            if (coverage != null) pb.environment().put("BATCHNORM4J_COVERAGE", coverage.toAbsolutePath().toString());
            else pb.environment().remove("BATCHNORM4J_COVERAGE");
            process = pb.start();
            all.add(this);
            stdin = new java.io.OutputStreamWriter(process.getOutputStream(), StandardCharsets.UTF_8);
            Thread reader = new Thread(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                    for (String line; (line = r.readLine()) != null; ) lines.add(line);
                } catch (IOException e) {
                    // the process is gone: EOF below
                }
                lines.add(EOF);
            }, "mutation-worker-" + n);
            reader.setDaemon(true);
            reader.start();
            String ready = lines.poll(600, TimeUnit.SECONDS);
            if (ready == null || !ready.startsWith("ready\t")) {
                kill();
                throw new IOException("the test JVM did not start (" + (ready == null ? "no answer in 600 s" : ready)
                        + "; its output: " + work.resolve("worker-" + n + ".log") + ")");
            }
        }

        Reply run(String id, Path dir, List<String> order, double timeout) throws IOException, InterruptedException {
            StringBuilder line = new StringBuilder("run\t").append(id).append('\t').append(dir.toAbsolutePath());
            for (String s : order) line.append('\t').append(s);
            long t0 = System.nanoTime();
            try {
                stdin.write(line.append('\n').toString());
                stdin.flush();
            } catch (IOException e) {
                return exitedReply(t0);
            }
            long deadline = t0 + (long) (timeout * 1e9);
            Map<String, Double> classes = new HashMap<>();
            while (true) {
                String l = lines.poll(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                if (l == null) return new Reply(true, false, (System.nanoTime() - t0) / 1e9, 0, "", "", "", classes);
                if (l.equals(EOF)) {
                    lines.add(EOF);
                    return exitedReply(t0);
                }
                String[] f = l.split("\t", -1);
                if (f[0].equals("class") && f.length == 3) {
                    classes.put(f[1], Double.parseDouble(f[2]));
                } else if (f[0].equals("result") && f.length == 8 && f[1].equals(id)) {
                    return new Reply(false, f[2].equals("passed"), Double.parseDouble(f[3]), Long.parseLong(f[4]),
                            f[5], f[6], f[7], classes);
                }
            }
        }

        private Reply exitedReply(long t0) throws InterruptedException {
            process.waitFor(10, TimeUnit.SECONDS);
            String code = process.isAlive() ? "still running" : "exit code " + process.exitValue();
            return new Reply(false, false, (System.nanoTime() - t0) / 1e9, 0, "", "the test JVM exited",
                    "(" + code + ") before it finished the tests: a crash counts as detected", Map.of());
        }

        boolean exited() {
            return !process.isAlive();
        }

        void close() {
            if (!process.isAlive()) return;
            try {
                stdin.write("quit\n");
                stdin.flush();
                if (process.waitFor(60, TimeUnit.SECONDS)) return;
            } catch (IOException | InterruptedException e) {
                // kill below
            }
            kill();
        }

        void kill() {
            process.descendants().forEach(ProcessHandle::destroyForcibly);
            process.destroyForcibly();
            try {
                process.waitFor(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
