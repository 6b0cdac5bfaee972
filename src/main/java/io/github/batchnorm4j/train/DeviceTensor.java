package io.github.batchnorm4j.train;

import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DevicePointer;

/**
 * A {@link Tensor} in device memory (a GPU, or the PTX emulator): one {@link DeviceBuffer} it owns, holding rows·cols
 * elements of its {@link #dtype()} (4 bytes for float32, 2 for the 16-bit bit patterns).
 */
public final class DeviceTensor extends AbstractTensor {
    private final DeviceBuffer buffer;
    private final DType dtype;

    DeviceTensor(int rows, int cols, DeviceBuffer buffer) {
        this(rows, cols, DType.FLOAT32, buffer);
    }

    DeviceTensor(int rows, int cols, DType dtype, DeviceBuffer buffer) {
        super(rows, cols);
        this.dtype = dtype;
        this.buffer = buffer;
    }

    @Override
    public DType dtype() {
        return dtype;
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
