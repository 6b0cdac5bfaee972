package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.DType;
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
 * with 4 blocks per channel, rows view with inner &gt; 1, channels-last with row splits and idle column threads, and
 * channels-last with two columns of channel blocks.
 */
class EmulatorMixedPrecisionTest extends MixedPrecisionContractTest {
    @Override
    protected List<Shape> shapes() {
        List<Shape> s = new ArrayList<>(super.shapes());
        s.add(Shape.channelsFirst(16, 3, 32, 32));  // inner 1024: _vec8 channels-first, 2 blocks per channel
        s.add(Shape.channelsFirst(8, 16, 4, 4));    // inner 16 < 128: rows view, C·inner = 256, _vec8 with inner > 1
        s.add(Shape.channelsLast(2, 48, 48, 24));   // C = 24: _vec8 rows, 3 units in blocks of 4 (one idle), 4 splits
        s.add(BIG);
        return s;
    }

    /** 33 units of 8: two columns of channel blocks, 2 row splits (bfloat16 only: the largest shape here). */
    private static final Shape BIG = Shape.channelsLast(2048, 264);

    @Override
    protected boolean runs(DType dtype, Shape shape) {
        return !shape.equals(BIG) || dtype == DType.BFLOAT16;
    }

    @Override
    protected BatchNormOps openOps() {
        return new HostArrayBatchNormOps("emulator",
                new EmulatedDevice(EmulatorOptions.defaults().withBlockOrderSeed(11)), true);
    }
}
