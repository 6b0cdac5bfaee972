package io.github.batchnorm4j.distributed;

import io.github.batchnorm4j.SplitBatchNormOps;
import io.github.batchnorm4j.cpu.CpuBatchNormOps;

/** {@link SyncBatchNormContractTest} with a CPU backend per rank (two threads each, so the CPU's pieces split too). */
class CpuSyncBatchNormTest extends SyncBatchNormContractTest {
    @Override
    protected SplitBatchNormOps open(int rank) {
        return new CpuBatchNormOps(2);
    }
}
