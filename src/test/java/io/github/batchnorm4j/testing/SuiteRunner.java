package io.github.batchnorm4j.testing;

import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.engine.discovery.ClassNameFilter;
import org.junit.platform.engine.discovery.DiscoverySelectors;
import org.junit.platform.engine.support.descriptor.MethodSource;
import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.TagFilter;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.TestPlan;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Runs JUnit tests without Maven, in this JVM: the mutation tool's test command (a child JVM per mutant, stopping at
 * the first failure) and the GPU validation kit's test step ({@code scripts/gpu-validate.sh} on a machine without
 * Maven: {@code --tag gpu --all}).
 *
 * <p>Usage: {@code SuiteRunner [--tag TAG] [--all] PATTERN...}, where a pattern is a test class's simple or fully
 * qualified name with {@code *} wildcards, as surefire's {@code -Dtest} takes them (e.g.
 * {@code EmulatorBatchNormOpsTest}, {@code Emulator*Test}, {@code io.github.batchnorm4j.*}); {@code --tag} keeps only
 * tests with that JUnit tag. Without {@code --all} the run stops at the first failed test (its name and message on
 * stdout, exit 1); with it every test runs, each failure is printed, and the last line is surefire's summary
 * ("Tests run: N, Failures: F, Errors: 0, Skipped: S"). Exit 0 when every test passed (at least one ran), 1 on a
 * failure, 2 when no test matched.
 */
public final class SuiteRunner {
    private SuiteRunner() {
    }

    public static void main(String[] args) {
        List<String> regexes = new ArrayList<>();
        String tag = null;
        boolean all = false;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--all")) {
                all = true;
                continue;
            }
            if (a.equals("--tag") && i + 1 < args.length) {
                tag = args[++i];
                continue;
            }
            for (String p : a.split(",")) {
                if (p.isBlank()) continue;
                String glob = p.trim();
                String regex = glob.replace(".", "\\.").replace("*", glob.contains(".") ? ".*" : "[^.]*");
                // Nested test classes (Outer$Inner) belong to their outer class's pattern.
                regexes.add((glob.contains(".") ? "^" + regex : "^(.*\\.)?" + regex) + "(\\$.*)?$");
            }
        }
        if (regexes.isEmpty()) {
            System.out.println("usage: SuiteRunner [--tag TAG] [--all] TEST_CLASS_PATTERN...");
            System.exit(2);
        }
        LauncherDiscoveryRequestBuilder request = LauncherDiscoveryRequestBuilder.request()
                .selectors(DiscoverySelectors.selectPackage("io.github.batchnorm4j"))
                .filters(ClassNameFilter.includeClassNamePatterns(regexes.toArray(String[]::new)));
        if (tag != null) request.filters(TagFilter.includeTags(tag));
        LauncherDiscoveryRequest built = request.build();
        AtomicLong passed = new AtomicLong();
        AtomicLong failed = new AtomicLong();
        AtomicLong skipped = new AtomicLong();
        long start = System.nanoTime();
        Launcher launcher = LauncherFactory.create();
        TestPlan plan = launcher.discover(built);
        if (!plan.containsTests()) {
            System.out.println("no test matched " + String.join(" ", args));
            System.exit(2);
        }
        boolean stopAtFirst = !all;
        launcher.execute(plan, new TestExecutionListener() {
            @Override
            public void executionSkipped(TestIdentifier id, String reason) {
                // A skipped class (e.g. @GpuTest without a GPU) skips every test in it.
                if (id.isTest()) skipped.incrementAndGet();
                else skipped.addAndGet(plan.getDescendants(id).stream().filter(TestIdentifier::isTest).count());
            }

            @Override
            public void executionFinished(TestIdentifier id, TestExecutionResult result) {
                switch (result.getStatus()) {
                    case FAILED -> {
                        failed.incrementAndGet();
                        String why = result.getThrowable().map(t -> t.getClass().getSimpleName() + ": "
                                + String.valueOf(t.getMessage()).split("\\R", 2)[0]).orElse("failed");
                        String test = id.getSource().map(src -> src instanceof MethodSource ms
                                ? ms.getClassName().substring(ms.getClassName().lastIndexOf('.') + 1) + "." + ms.getMethodName()
                                : src.toString()).orElse(id.getUniqueId()) + " " + id.getDisplayName();
                        System.out.println("FAILED " + test + "\n  " + (why.length() > 400 ? why.substring(0, 400) + "..." : why));
                        System.out.flush();
                        if (stopAtFirst) Runtime.getRuntime().halt(1); // the first failure decides; skip the rest
                    }
                    case ABORTED -> {
                        if (id.isTest()) skipped.incrementAndGet();
                    }
                    case SUCCESSFUL -> {
                        if (id.isTest()) passed.incrementAndGet();
                    }
                }
            }
        });
        long run = passed.get() + failed.get() + skipped.get();
        System.out.printf("PASSED %d tests in %.1f s%n", passed.get(), (System.nanoTime() - start) / 1e9);
        System.out.printf("Tests run: %d, Failures: %d, Errors: 0, Skipped: %d%n", run, failed.get(), skipped.get());
        System.exit(failed.get() > 0 ? 1 : passed.get() > 0 || skipped.get() > 0 ? 0 : 2);
    }
}
