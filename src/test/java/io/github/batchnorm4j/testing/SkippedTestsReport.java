package io.github.batchnorm4j.testing;

import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.engine.TestSource;
import org.junit.platform.engine.support.descriptor.ClassSource;
import org.junit.platform.engine.support.descriptor.MethodSource;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.TestPlan;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * Prints every skipped test or class with its reason, and a summary when the run ends, so that a run without a GPU
 * says which GPU tests did not run and why instead of counting them silently ("Tests run: 0"). Registered for the
 * JUnit Platform launcher in {@code META-INF/services/org.junit.platform.launcher.TestExecutionListener} (test
 * resources), so Maven's test run, an IDE and the console launcher all print it.
 */
public final class SkippedTestsReport implements TestExecutionListener {
    /** reason → class (or class.method) → how many tests it covers, in the order met. */
    private final Map<String, Map<String, Integer>> skipped = new TreeMap<>();

    /** A disabled class or test (a @GpuTest without a GPU): printed at once, and counted for the summary. */
    @Override
    public void executionSkipped(TestIdentifier test, String reason) {
        System.out.println("[skipped] " + name(test) + ": " + reason);
        count(reason, name(test));
    }

    /**
     * A test stopped by a failed assumption (Assumptions.assume*, e.g. an operation a backend does not implement):
     * counted per class and reason, printed in the summary only (a contract suite can skip dozens).
     */
    @Override
    public void executionFinished(TestIdentifier test, TestExecutionResult result) {
        if (result.getStatus() != TestExecutionResult.Status.ABORTED) return;
        String reason = result.getThrowable().map(Throwable::getMessage).orElse("aborted")
                .replaceFirst("^Assumption failed: ", "");
        String name = name(test);
        count(reason, test.isContainer() ? name : name.substring(0, Math.max(0, name.lastIndexOf('.'))));
    }

    private void count(String reason, String where) {
        skipped.computeIfAbsent(reason, r -> new LinkedHashMap<>()).merge(where, 1, Integer::sum);
    }

    @Override
    public void testPlanExecutionFinished(TestPlan plan) {
        if (skipped.isEmpty()) return;
        System.out.println("[skipped] summary, by reason (GPU tests run where a GPU is: mvn -B test -Dgroups="
                + GpuTest.TAG + "):");
        for (Map.Entry<String, Map<String, Integer>> e : skipped.entrySet()) {
            StringBuilder where = new StringBuilder();
            for (Map.Entry<String, Integer> w : e.getValue().entrySet()) {
                if (where.length() > 0) where.append(", ");
                where.append(w.getKey()).append(w.getValue() > 1 ? " (" + w.getValue() + " tests)" : "");
            }
            System.out.println("[skipped]   " + e.getKey() + ": " + where);
        }
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
