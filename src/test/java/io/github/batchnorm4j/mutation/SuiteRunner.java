package io.github.batchnorm4j.mutation;

import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.engine.discovery.ClassNameFilter;
import org.junit.platform.engine.discovery.DiscoverySelectors;
import org.junit.platform.engine.support.descriptor.MethodSource;
import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.TestPlan;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Runs JUnit test classes and stops at the first failure: the mutation tool's default test command, run in a child
 * JVM per mutant (so that {@code BATCHNORM4J_PTX_DIR} applies and a hung mutant can be killed).
 *
 * <p>Usage: {@code SuiteRunner PATTERN...}, where a pattern is a test class's simple or fully qualified name with
 * {@code *} wildcards, as surefire's {@code -Dtest} takes them (e.g. {@code EmulatorBatchNormOpsTest},
 * {@code Emulator*Test}). Exit code 0 when every test passed (at least one ran), 1 at the first failed test (its name
 * and message on stdout), 2 when no test matched.
 */
public final class SuiteRunner {
    private SuiteRunner() {
    }

    public static void main(String[] args) {
        if (args.length == 0) {
            System.out.println("usage: SuiteRunner TEST_CLASS_PATTERN...");
            System.exit(2);
        }
        List<String> regexes = new ArrayList<>();
        for (String a : args) {
            for (String p : a.split(",")) {
                if (p.isBlank()) continue;
                String glob = p.trim();
                String regex = glob.replace(".", "\\.").replace("*", "[^.]*");
                regexes.add(glob.contains(".") ? "^" + regex + "$" : "^(.*\\.)?" + regex + "$");
            }
        }
        LauncherDiscoveryRequest request = LauncherDiscoveryRequestBuilder.request()
                .selectors(DiscoverySelectors.selectPackage("io.github.batchnorm4j"))
                .filters(ClassNameFilter.includeClassNamePatterns(regexes.toArray(String[]::new)))
                .build();
        AtomicLong passed = new AtomicLong();
        long start = System.nanoTime();
        Launcher launcher = LauncherFactory.create();
        TestPlan plan = launcher.discover(request);
        if (!plan.containsTests()) {
            System.out.println("no test matched " + String.join(" ", args));
            System.exit(2);
        }
        launcher.execute(plan, new TestExecutionListener() {
            @Override
            public void executionFinished(TestIdentifier id, TestExecutionResult result) {
                if (result.getStatus() == TestExecutionResult.Status.FAILED) {
                    String why = result.getThrowable().map(t -> t.getClass().getSimpleName() + ": "
                            + String.valueOf(t.getMessage()).split("\\R", 2)[0]).orElse("failed");
                    String test = id.getSource().map(src -> src instanceof MethodSource ms
                            ? ms.getClassName().substring(ms.getClassName().lastIndexOf('.') + 1) + "." + ms.getMethodName()
                            : src.toString()).orElse(id.getUniqueId()) + " " + id.getDisplayName();
                    System.out.println("FAILED " + test + "\n  " + (why.length() > 400 ? why.substring(0, 400) + "..." : why));
                    System.out.flush();
                    Runtime.getRuntime().halt(1); // the first failure decides; skip the rest and every @AfterAll
                }
                if (id.isTest() && result.getStatus() == TestExecutionResult.Status.SUCCESSFUL) passed.incrementAndGet();
            }
        });
        System.out.printf("PASSED %d tests in %.1f s%n", passed.get(), (System.nanoTime() - start) / 1e9);
        System.exit(passed.get() > 0 ? 0 : 2);
    }
}
