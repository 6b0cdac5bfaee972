package io.github.batchnorm4j.mutation;

import io.github.batchnorm4j.gpu.PtxModules;
import org.junit.platform.engine.DiscoverySelector;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.engine.discovery.ClassNameFilter;
import org.junit.platform.engine.discovery.DiscoverySelectors;
import org.junit.platform.engine.support.descriptor.ClassSource;
import org.junit.platform.engine.support.descriptor.MethodSource;
import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.TestPlan;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.file.Path;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A test JVM that judges many mutants, one after the other (the mutation tool's default; {@link MutationRun} starts
 * one per job). Starting a JVM, scanning for tests and warming the emulator up cost more than killing a mutant does,
 * so a worker keeps all that across mutants and only switches the PTX folder, through the system property
 * {@value PtxModules#PROPERTY_DIR} (read again on every module load; the emulator's parsed-module and ptxas caches are
 * keyed by the full PTX text, so a mutant never reuses another's module).
 *
 * <p>Protocol, one line per message, tab-separated: the worker answers {@code ready} once it has found the test
 * classes; then for each {@code run <id> <ptx dir> [U:<test unique id>]... [C:<class name>]...} it runs the named
 * tests first (those that killed related mutants), then every test class, the named classes first, and stops at the
 * first failure ({@link FailFast} skips the rest); it prints {@code class <name> <seconds>} per class run and then
 * {@code result <id> passed|failed <seconds> <tests passed> <failed test's unique id> <test> <why>}. {@code quit}
 * exits (and lets shutdown hooks, such as the emulator's coverage, write). The tests' own output goes to stderr.
 *
 * <p>Usage: {@code MutationWorker PATTERN[,PATTERN...]} (test class patterns as {@code testing.SuiteRunner} takes them).
 */
final class MutationWorker {
    private MutationWorker() {
    }

    public static void main(String[] args) throws Exception {
        PrintStream protocol = new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), true,
                StandardCharsets.UTF_8);
        System.setOut(System.err);
        List<String> regexes = new ArrayList<>();
        Path testLines = null;
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--test-lines") && i + 1 < args.length) {
                testLines = Path.of(args[++i]);
                continue;
            }
            for (String p : args[i].split(",")) {
                if (p.isBlank()) continue;
                String glob = p.trim();
                String regex = glob.replace(".", "\\.").replace("*", glob.contains(".") ? ".*" : "[^.]*");
                regexes.add((glob.contains(".") ? "^" + regex : "^(.*\\.)?" + regex) + "(\\$.*)?$");
            }
        }
        Launcher launcher = LauncherFactory.create();
        TestPlan plan = launcher.discover(LauncherDiscoveryRequestBuilder.request()
                .selectors(DiscoverySelectors.selectPackage("io.github.batchnorm4j"))
                .filters(ClassNameFilter.includeClassNamePatterns(regexes.toArray(String[]::new))).build());
        List<String> classes = new ArrayList<>();
        for (TestIdentifier root : plan.getRoots()) {
            for (TestIdentifier c : plan.getChildren(root)) {
                c.getSource().filter(s -> s instanceof ClassSource).ifPresent(s -> classes.add(((ClassSource) s).getClassName()));
            }
        }
        long tests = plan.countTestIdentifiers(TestIdentifier::isTest);
        TestLines lines = testLines == null ? null : new TestLines();
        protocol.println("ready\t" + classes.size() + "\t" + tests);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line; (line = in.readLine()) != null; ) {
            String[] f = line.split("\t");
            if (f[0].equals("quit")) break;
            if (!f[0].equals("run") || f.length < 3) {
                protocol.println("error\tunknown command: " + line);
                continue;
            }
            List<String> items = new ArrayList<>();
            Set<String> order = new LinkedHashSet<>();
            for (int i = 3; i < f.length; i++) {
                if (f[i].startsWith("C:")) {
                    if (classes.contains(f[i].substring(2))) order.add(f[i].substring(2));
                } else {
                    items.add(f[i]);
                }
            }
            if (items.isEmpty()) items.add("ALL");
            order.addAll(classes);
            System.setProperty(PtxModules.PROPERTY_DIR, f[2]);
            try {
                protocol.println(judge(launcher, items, order, protocol, f[1], lines));
            } finally {
                System.clearProperty(PtxModules.PROPERTY_DIR);
            }
        }
        if (lines != null) lines.write(testLines);
        System.exit(0);
    }

    /**
     * Runs {@code items} in order, stopping at the first failure: {@code U:<unique id>} a test or class (consecutive
     * ones of the same class in one launcher request), {@code ALL} every class not run yet, in {@code classes} order.
     */
    private static String judge(Launcher launcher, List<String> items, Set<String> classes, PrintStream protocol,
                                String id, TestLines lines) {
        FailFast.reset();
        long start = System.nanoTime();
        AtomicLong passed = new AtomicLong();
        AtomicReference<String[]> failure = new AtomicReference<>();
        TestExecutionListener listener = new TestExecutionListener() {
            @Override
            public void executionFinished(TestIdentifier t, TestExecutionResult result) {
                if (result.getStatus() == TestExecutionResult.Status.SUCCESSFUL && t.isTest()) passed.incrementAndGet();
                if (result.getStatus() != TestExecutionResult.Status.FAILED || failure.get() != null) return;
                String why = result.getThrowable().map(e -> e.getClass().getSimpleName() + ": "
                        + String.valueOf(e.getMessage()).split("\\R", 2)[0]).orElse("failed");
                String test = t.getSource().map(s -> s instanceof MethodSource ms
                        ? ms.getClassName().substring(ms.getClassName().lastIndexOf('.') + 1) + "." + ms.getMethodName()
                        : s.toString()).orElse(t.getUniqueId()) + " " + t.getDisplayName();
                failure.set(new String[] {t.getUniqueId(), test, why.length() > 400 ? why.substring(0, 400) + "..." : why});
                FailFast.trip();
            }
        };
        List<TestExecutionListener> listeners = new ArrayList<>(List.of(listener));
        if (lines != null) listeners.add(lines);
        Set<String> ranClasses = new java.util.HashSet<>();
        for (int i = 0; i < items.size() && !FailFast.tripped(); ) {
            String item = items.get(i);
            if (item.equals("ALL")) {
                for (String c : classes) {
                    if (FailFast.tripped()) break;
                    if (ranClasses.contains(c)) continue;
                    long t0 = System.nanoTime();
                    execute(launcher, List.of(DiscoverySelectors.selectClass(c)), listeners);
                    protocol.printf(Locale.ROOT, "class\t%s\t%.3f%n", c, (System.nanoTime() - t0) / 1e9);
                }
                i++;
                continue;
            }
            // a run of U: items of one class
            String cls = classOf(item.substring(2));
            List<DiscoverySelector> selectors = new ArrayList<>();
            while (i < items.size() && items.get(i).startsWith("U:") && java.util.Objects.equals(classOf(items.get(i).substring(2)), cls)) {
                selectors.add(DiscoverySelectors.selectUniqueId(items.get(i).substring(2)));
                i++;
            }
            if (selectors.isEmpty()) {
                i++; // not a U: item
                continue;
            }
            try {
                execute(launcher, selectors, listeners);
            } catch (RuntimeException e) {
                // an id JUnit cannot resolve: say so (the parent counts it as not run)
                System.err.println("mutation worker: could not run " + selectors + ": " + e);
            }
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        String[] why = failure.get();
        return String.format(Locale.ROOT, "result\t%s\t%s\t%.3f\t%d\t%s\t%s\t%s", id, why == null ? "passed" : "failed",
                seconds, passed.get(), why == null ? "" : clean(why[0]), why == null ? "" : clean(why[1]),
                why == null ? "" : clean(why[2]));
    }

    private static final Pattern CLASS = Pattern.compile("\\[class:([^\\]]+)\\]");

    /** The top-level test class of a unique id, or null. */
    static String classOf(String uniqueId) {
        Matcher m = CLASS.matcher(uniqueId);
        return m.find() ? m.group(1) : null;
    }

    private static void execute(Launcher launcher, List<DiscoverySelector> selectors, List<TestExecutionListener> listeners) {
        LauncherDiscoveryRequest request = LauncherDiscoveryRequestBuilder.request().selectors(selectors)
                .configurationParameter("junit.jupiter.extensions.autodetection.enabled", "true").build();
        launcher.execute(request, listeners.toArray(TestExecutionListener[]::new));
    }

    private static String clean(String s) {
        return s.replace('\t', ' ').replace('\n', ' ').replace('\r', ' ');
    }
}
