package io.github.batchnorm4j.cudnn;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.MixedPrecisionContractTest;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.gpu.DeviceException;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The 16-bit contract on the cuDNN backend over the fake cuDNN, which computes cuDNN's documented batch norm on host
 * memory through the descriptors (CUDNN_DATA_HALF and CUDNN_DATA_BFLOAT16 data with float parameters, results rounded
 * once). cuDNN's missing operations (statistics, normalize, eval-mode backward) are unsupported in every type; a cuDNN
 * that refuses a 16-bit type (bfloat16 before cuDNN 8.1 or before Ampere) makes its operations unsupported, not failed.
 */
class CudnnMixedPrecisionTest extends MixedPrecisionContractTest {
    private FakeCudnnApi fake;

    @Override
    protected List<Shape> shapes() {
        return List.of(Shape.channelsFirst(2, 3, 5, 7), Shape.channelsFirst(1, 1, 300), Shape.channelsFirst(3, 5, 1),
                Shape.channelsFirst(1, 4, 2), Shape.channelsFirst(2, 2, 3, 5, 7), Shape.channelsLast(2, 3),
                Shape.channelsLast(3, 5, 7, 3), Shape.channelsLast(1, 17, 19, 5), Shape.channelsLast(2, 3, 5, 7, 3));
    }

    @Override
    protected BatchNormOps openOps() {
        HostDevice device = new HostDevice();
        fake = new FakeCudnnApi(device);
        return new CudnnBatchNormOps(fake, device, true, 0.0);
    }

    @Override
    protected boolean supports(DType dtype, Op op) {
        return op != Op.STATISTICS && op != Op.NORMALIZE && op != Op.BACKWARD_INFERENCE;
    }

    /** cuDNN refusing a 16-bit call (NOT_SUPPORTED, BAD_PARAM) is "unsupported"; other failures stay failures. */
    @Test
    void aRefusedSixteenBitCallIsUnsupportedNotFailed() {
        Shape s = Shape.channelsFirst(2, 3, 4);
        int n = s.elementCountAsInt();
        fake.failures.put("cudnnBatchNormalizationForwardTraining", 3000);   // CUDNN_STATUS_NOT_SUPPORTED
        try {
            UnsupportedOperationException u = assertThrows(UnsupportedOperationException.class,
                    () -> ops().forwardTraining(s, DType.BFLOAT16, new short[n], null, null, 1e-5, null, null, 0,
                            new short[n], new float[3], new float[3]));
            assertTrue(u.getMessage().contains("bfloat16") && u.getMessage().contains("cudnn"), u.getMessage());
            assertThrows(UnsupportedOperationException.class, () -> ops().forwardTraining(s, DType.FLOAT16,
                    new short[n], null, null, 1e-5, null, null, 0, new short[n], new float[3], new float[3]));
            fake.failures.put("cudnnBatchNormalizationForwardTraining", 4000);   // CUDNN_STATUS_INTERNAL_ERROR
            assertThrows(DeviceException.class, () -> ops().forwardTraining(s, DType.BFLOAT16, new short[n], null, null,
                    1e-5, null, null, 0, new short[n], new float[3], new float[3]));
        } finally {
            fake.failures.clear();
        }
        List<FakeCudnnApi.Call> sets = fake.calls("cudnnSetTensor4dDescriptorEx");
        assertTrue(sets.stream().anyMatch(c -> Integer.valueOf(9).equals(c.args().get("dataType"))),
                "bfloat16 tensors are described as CUDNN_DATA_BFLOAT16 (9)");
        assertTrue(sets.stream().anyMatch(c -> Integer.valueOf(2).equals(c.args().get("dataType"))),
                "float16 tensors are described as CUDNN_DATA_HALF (2)");
    }
}
