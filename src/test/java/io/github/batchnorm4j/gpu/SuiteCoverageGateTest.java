package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.ptx.Coverage;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

import java.util.Optional;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The coverage gate of issue 10, run last in {@code mvn test} (junit-platform.properties orders test classes by
 * {@link Order}; this is the only annotated one): the emulator tests of this JVM executed every instruction of the
 * shipped batch-norm kernels that the host can reach ({@link KernelCoverageGate}). The counts come from the
 * process-wide {@link Coverage} that {@value Coverage#ENV} turns on (the pom sets it for surefire); run alone, or
 * without it, there is nothing to judge and the test is skipped.
 */
@Order(Integer.MAX_VALUE)
class SuiteCoverageGateTest {
    @Test
    void everyReachableInstructionOfTheBatchNormKernelsWasExecuted() {
        Optional<Coverage> coverage = Coverage.fromEnvironment();
        assumeTrue(coverage.isPresent(), Coverage.ENV + " is not set: no coverage was recorded");
        String shipped = Coverage.sourceHash(PtxModules.read(PtxModules.FORWARD));
        boolean launched = coverage.get().kernels().stream()
                .anyMatch(k -> k.module().equals(PtxModules.FORWARD) && k.source().equals(shipped));
        assumeTrue(launched, "no batch-norm kernel ran in this JVM before the gate (run the whole suite)");
        KernelCoverageGate.check(coverage.get());
    }
}
