package io.github.batchnorm4j.train;

import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DevicePointer;

/** A {@link Tensor} in device memory (a GPU, or the PTX emulator): one {@link DeviceBuffer} it owns. */
public final class DeviceTensor extends AbstractTensor {
    private final DeviceBuffer buffer;

    DeviceTensor(int rows, int cols, DeviceBuffer buffer) {
        super(rows, cols);
        this.buffer = buffer;
    }

    /** The first element. */
    public DevicePointer pointer() {
        return buffer.pointer();
    }

    /** Frees the device memory; idempotent. */
    @Override
    public void close() {
        buffer.close();
    }
}
