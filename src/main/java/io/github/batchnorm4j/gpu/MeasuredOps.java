package io.github.batchnorm4j.gpu;

import java.util.Optional;

/**
 * Implemented by backends that can say what their last operation moved (our kernels on the PTX emulator). `bench`
 * reports traffic_ratio = bytesMoved / S and sector_efficiency from it.
 */
public interface MeasuredOps {

    /** The kernel traffic of the last completed operation (all its launches), if measured. */
    Optional<TrafficMetrics> lastOperationMetrics();
}
