package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.Backends;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.MixedPrecisionContractTest;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.testing.GpuTest;
import java.util.ArrayList;
import java.util.List;

/**
 * The 16-bit contract for the cuda backend on GPU 0: the float16 and bfloat16 kernels of the shipped PTX, with the
 * emulator test's extra shapes for the 16-byte path; skipped, with the probe's reason, without a GPU.
 */
@GpuTest
class CudaMixedPrecisionGpuTest extends MixedPrecisionContractTest {
    @Override
    protected List<Shape> shapes() {
        List<Shape> s = new ArrayList<>(super.shapes());
        s.add(Shape.channelsFirst(16, 3, 32, 32));
        s.add(Shape.channelsFirst(8, 16, 4, 4));
        s.add(Shape.channelsLast(2, 48, 48, 24));
        s.add(Shape.channelsFirst(32, 64, 28, 28));   // GPU geometry: many blocks per channel, every unroll slot
        s.add(Shape.channelsLast(32, 28, 28, 64));
        return s;
    }

    @Override
    protected BatchNormOps openOps() {
        return Backends.open("cuda");
    }
}
