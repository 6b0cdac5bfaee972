package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.Backends;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.MixedPrecisionContractTest;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.testing.GpuTest;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The 16-bit contract on real cuDNN; skipped, with the probe's reason, without cuDNN. cuDNN's missing operations
 * are unsupported in every type, and a type this cuDNN and GPU refuse (bfloat16 before cuDNN 8.1 or before Ampere)
 * is skipped as a whole: the contract's {@code unsupportedOperationsThrowUnsupportedOperationException} then checks
 * that the refusal surfaces as {@link UnsupportedOperationException}, as {@code check} reports it.
 */
@GpuTest(cudnn = true)
class CudnnMixedPrecisionGpuTest extends MixedPrecisionContractTest {
    private final Map<DType, Boolean> runs = new HashMap<>();

    @Override
    protected List<Shape> shapes() {
        return List.of(Shape.channelsFirst(2, 3, 5, 7), Shape.channelsFirst(1, 1, 300), Shape.channelsFirst(3, 5, 1),
                Shape.channelsLast(2, 3), Shape.channelsLast(3, 5, 7, 3), Shape.channelsLast(1, 17, 19, 5),
                Shape.channelsFirst(8, 16, 28, 28), Shape.channelsLast(8, 28, 28, 16));
    }

    @Override
    protected BatchNormOps openOps() {
        return Backends.open("cudnn");
    }

    @Override
    protected boolean supports(DType dtype, Op op) {
        if (op == Op.STATISTICS || op == Op.NORMALIZE || op == Op.BACKWARD_INFERENCE) return false;
        return runs.computeIfAbsent(dtype, t -> {
            Shape s = Shape.channelsFirst(2, 3, 4);
            try {
                ops().forwardTraining(s, t, new short[24], null, null, 1e-5, null, null, 0, new short[24],
                        new float[3], new float[3]);
                return true;
            } catch (UnsupportedOperationException refused) {
                System.out.println("[GPU] " + refused.getMessage());
                return false;
            }
        });
    }
}
