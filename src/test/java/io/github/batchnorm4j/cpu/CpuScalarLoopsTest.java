package io.github.batchnorm4j.cpu;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.BatchNormOpsContractTest;

/**
 * The contract on the scalar loops ({@link ElementLoops}), which plain library users run (no jdk.incubator.vector on
 * their command line), split into 3 pieces even on tiny shapes like {@link CpuBatchNormOpsSplitTest}; the other CPU
 * contract tests run the Vector API loops.
 */
class CpuScalarLoopsTest extends BatchNormOpsContractTest {
    @Override
    protected BatchNormOps openOps() {
        return new CpuBatchNormOps(3, 1, false);
    }
}
