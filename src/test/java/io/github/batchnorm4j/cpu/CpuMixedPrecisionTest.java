package io.github.batchnorm4j.cpu;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.MixedPrecisionContractTest;

/** The CPU backend's float16 and bfloat16 operations against the {@link MixedPrecisionContractTest contract}. */
class CpuMixedPrecisionTest extends MixedPrecisionContractTest {
    @Override
    protected BatchNormOps openOps() {
        return new CpuBatchNormOps();
    }
}
