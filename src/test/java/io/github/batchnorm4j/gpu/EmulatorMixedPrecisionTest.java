package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.MixedPrecisionContractTest;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.ptx.EmulatorOptions;
import java.util.ArrayList;
import java.util.List;

/**
 * The {@link MixedPrecisionContractTest 16-bit contract} for our kernels: the float16 and bfloat16 entry points of the
 * shipped PTX on the PTX emulator, every check on, blocks in a shuffled order. The contract's shape matrix (scalar
 * paths: none of its shapes has 8 | inner or 8 | C·inner) plus shapes for the 16-byte path of 8 halves: channels-first
 * with 2 blocks per channel, rows view with inner &gt; 1, channels-last with row splits and idle column threads. The
 * geometry real GPUs give the kernels (hundreds of blocks per channel, every unroll slot) is
 * {@link EmulatorMixedPrecisionGeometryTest}'s.
 */
class EmulatorMixedPrecisionTest extends MixedPrecisionContractTest {
    @Override
    protected List<Shape> shapes() {
        List<Shape> s = new ArrayList<>(super.shapes());
        s.add(Shape.channelsFirst(16, 3, 32, 32));  // inner 1024: _vec8 channels-first, 2 blocks per channel
        s.add(Shape.channelsFirst(8, 16, 4, 4));    // inner 16 < 128: rows view, C·inner = 256, _vec8 with inner > 1
        s.add(Shape.channelsLast(2, 48, 48, 24));   // C = 24: _vec8 rows, 3 units in blocks of 4 (one idle), 4 splits
        return s;
    }

    @Override
    protected BatchNormOps openOps() {
        return new HostArrayBatchNormOps("emulator",
                new EmulatedDevice(EmulatorOptions.defaults().withBlockOrderSeed(11)), true);
    }
}
