package io.github.batchnorm4j.testing;

import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.engine.TestSource;
import org.junit.platform.engine.support.descriptor.ClassSource;
import org.junit.platform.engine.support.descriptor.MethodSource;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.TestPlan;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Prints every skipped test or class with its reason, and a summary when the run ends, so that a run without a GPU
 * says which GPU tests did not run and why instead of counting them silently ("Tests run: 0"). Registered for the
 * JUnit Platform launcher in {@code META-INF/services/org.junit.platform.launcher.TestExecutionListener} (test
 * resources), so Maven's test run, an IDE and the console launcher all print it.
 */
public final class SkippedTestsReport implements TestExecutionListener {
    private final Map<String, List<String>> byReason = new TreeMap<>();
    private int aborted;

    @Override
    public void executionSkipped(TestIdentifier test, String reason) {
        String name = name(test);
        System.out.println("[skipped] " + name + ": " + reason);
        byReason.computeIfAbsent(reason, r -> new ArrayList<>()).add(name);
    }

    @Override
    public void executionFinished(TestIdentifier test, TestExecutionResult result) {
        // A failed assumption (Assumptions.assume*) aborts a test; say which, with the assumption's message.
        if (result.getStatus() == TestExecutionResult.Status.ABORTED) {
            aborted++;
            System.out.println("[skipped] " + name(test) + ": " + result.getThrowable().map(Throwable::getMessage)
                    .orElse("aborted"));
        }
    }

    @Override
    public void testPlanExecutionFinished(TestPlan plan) {
        if (byReason.isEmpty() && aborted == 0) return;
        System.out.println("[skipped] summary: " + byReason.values().stream().mapToInt(List::size).sum()
                + " disabled" + (aborted > 0 ? ", " + aborted + " stopped by an assumption (listed above)" : "")
                + (byReason.isEmpty() ? "" : ":"));
        for (Map.Entry<String, List<String>> e : byReason.entrySet()) {
            System.out.println("[skipped]   " + e.getValue().size() + " × " + e.getKey() + ": "
                    + String.join(", ", e.getValue()));
        }
        System.out.println("[skipped]   (GPU tests run where a GPU is: mvn -B test -Dgroups=" + GpuTest.TAG + ")");
    }

    /** Class, or class.method, by simple name; the display name for anything else. */
    private static String name(TestIdentifier test) {
        TestSource source = test.getSource().orElse(null);
        if (source instanceof MethodSource m) {
            return simple(m.getClassName()) + "." + m.getMethodName();
        }
        if (source instanceof ClassSource c) return simple(c.getClassName());
        return test.getDisplayName();
    }

    private static String simple(String className) {
        return className.substring(className.lastIndexOf('.') + 1);
    }
}
