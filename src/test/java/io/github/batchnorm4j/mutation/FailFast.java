package io.github.batchnorm4j.mutation;

import org.junit.jupiter.api.extension.ConditionEvaluationResult;
import org.junit.jupiter.api.extension.ExecutionCondition;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Skips every test class and test once {@link #trip} was called: the mutation worker's way to stop a run at its first
 * failure without leaving the JVM (the next mutant reuses it). Registered through
 * {@code META-INF/services/org.junit.jupiter.api.extension.Extension}, which JUnit reads only when extension
 * autodetection is enabled: the worker enables it for its own runs, {@code mvn test} does not, so there it is inert.
 */
public final class FailFast implements ExecutionCondition {
    private static volatile boolean tripped;

    static void trip() {
        tripped = true;
    }

    static void reset() {
        tripped = false;
    }

    static boolean tripped() {
        return tripped;
    }

    @Override
    public ConditionEvaluationResult evaluateExecutionCondition(ExtensionContext context) {
        return tripped ? ConditionEvaluationResult.disabled("fail-fast: a test of this mutant already failed")
                : ConditionEvaluationResult.enabled("no failure yet");
    }
}
