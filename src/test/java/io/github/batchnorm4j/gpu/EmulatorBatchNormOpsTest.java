package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.BatchNormOpsContractTest;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.ptx.EmulatorOptions;

/**
 * The {@link BatchNormOpsContractTest} contract for our kernels: the shipped PTX on the PTX emulator with every check
 * on (memcheck, initcheck, racecheck, warp-sync check; a violation fails the call with a DeviceException) and blocks
 * in a shuffled order. Uses the full DESIGN §6 shape matrix of the contract suite (all small enough to emulate).
 */
class EmulatorBatchNormOpsTest extends BatchNormOpsContractTest {
    @Override
    protected BatchNormOps openOps() {
        return new GpuBatchNormOps("emulator", new EmulatedDevice(EmulatorOptions.defaults().withBlockOrderSeed(7)), true);
    }
}
