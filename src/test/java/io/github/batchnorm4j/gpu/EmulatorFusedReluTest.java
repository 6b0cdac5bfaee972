package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.FusedReluContractTest;

/** The fused batch norm + (add) + ReLU contract on our kernels, on the PTX emulator with every check on. */
class EmulatorFusedReluTest extends FusedReluContractTest {
    @Override
    protected BatchNormOps openOps() {
        return EmulatorBatchNormOpsTest.emulator(132, 11);
    }
}
