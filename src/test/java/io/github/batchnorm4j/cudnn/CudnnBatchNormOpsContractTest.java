package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.BatchNormOpsContractTest;
import io.github.batchnorm4j.Shape;

import java.util.List;

/**
 * The batch-norm contract on the cuDNN backend, over the fake cuDNN ({@link FakeCudnnApi}, which runs cuDNN's
 * documented computation on host memory through the descriptors' strides). cuDNN has no statistics, normalize or
 * eval-mode backward: those are {@link UnsupportedOperationException}s, checked as such. The argument mapping itself
 * (descriptors, factor, alpha/beta, releases) is {@link CudnnBatchNormOpsTest}'s.
 */
class CudnnBatchNormOpsContractTest extends BatchNormOpsContractTest {

    /**
     * What the wrapper's mapping depends on: both layouts, ranks 2 to 5 (TensorLayout4d folds them into 4-D), C = 1,
     * M = 2, N = 1, inner = 1. The fake computes in plain loops, so the large shapes of the full matrix would only
     * cost time.
     */
    @Override
    protected List<Shape> shapes() {
        return List.of(Shape.channelsFirst(2, 3, 5, 7), Shape.channelsFirst(1, 1, 300), Shape.channelsFirst(3, 5, 1),
                Shape.channelsFirst(1, 4, 2), Shape.channelsFirst(2, 2, 3, 5, 7), Shape.channelsLast(2, 3),
                Shape.channelsLast(3, 5, 7, 3), Shape.channelsLast(1, 17, 19, 5), Shape.channelsLast(2, 3, 5, 7, 3));
    }

    @Override
    protected BatchNormOps openOps() {
        HostDevice device = new HostDevice();
        return new CudnnBatchNormOps(new FakeCudnnApi(device), device, true, 0.0);
    }

    @Override
    protected boolean supports(Op op) {
        return op != Op.STATISTICS && op != Op.NORMALIZE && op != Op.BACKWARD_INFERENCE;
    }
}
