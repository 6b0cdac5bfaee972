package io.github.batchnorm4j.cpu;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.BatchNormOpsContractTest;

/** The CPU backend against the {@link BatchNormOpsContractTest contract}. */
class CpuBatchNormOpsTest extends BatchNormOpsContractTest {
    @Override
    protected BatchNormOps openOps() {
        return new CpuBatchNormOps();
    }
}
