package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.BatchNormOpsContractTest;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.ptx.EmulatorOptions;
import io.github.batchnorm4j.Shape;

import java.util.ArrayList;
import java.util.List;

/**
 * The {@link BatchNormOpsContractTest} contract for our kernels: the shipped PTX on the PTX emulator with every check
 * on (memcheck, initcheck, racecheck, warp-sync check; a violation fails the call with a DeviceException) and blocks
 * in a shuffled order. Uses the full docs/design.md §6 shape matrix of the contract suite (all small enough to
 * emulate), plus shapes that reach the kernels' other paths: float4 loads together with channels split across several
 * blocks (the last-arriving-block merge), and channels-last with more than one column of channel blocks.
 */
class EmulatorBatchNormOpsTest extends BatchNormOpsContractTest {
    @Override
    protected List<Shape> shapes() {
        List<Shape> s = new ArrayList<>(super.shapes());
        s.add(Shape.channelsFirst(4, 3, 32, 32));   // inner % 4 == 0, M = 4096: vec4 + 4 blocks per channel
        s.add(Shape.channelsLast(2, 48, 48, 8));    // C % 4 == 0, rows = 4608: vec4 + 4 row splits
        s.add(Shape.channelsLast(2048, 132));       // 2 columns of 32 channel units (vec4), 2 row splits
        s.add(Shape.channelsLast(2, 33, 33, 37));   // scalar, 2 columns of 32 channels, 2 row splits
        return s;
    }

    @Override
    protected BatchNormOps openOps() {
        return new HostArrayBatchNormOps("emulator",
                new EmulatedDevice(EmulatorOptions.defaults().withBlockOrderSeed(7)), true);
    }
}
