package io.github.batchnorm4j.cpu;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.FusedReluContractTest;

/**
 * The fused batch norm + (add) + ReLU contract on the CPU backend, split into pieces of a few hundred elements so that
 * the epilogue's word-aligned pieces and the gating pass run on several threads even for the small shapes.
 */
class CpuFusedReluTest extends FusedReluContractTest {
    @Override
    protected BatchNormOps openOps() {
        return new CpuBatchNormOps(3, 100);
    }
}
