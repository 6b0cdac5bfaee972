package io.github.batchnorm4j.train;

import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DevicePointer;

/** A {@link Tensor} in device memory (a GPU, or the PTX emulator): one {@link DeviceBuffer} it owns. */
public final class DeviceTensor implements Tensor {
    private final int rows;
    private final int cols;
    private final DeviceBuffer buffer;

    DeviceTensor(int rows, int cols, DeviceBuffer buffer) {
        this.rows = rows;
        this.cols = cols;
        this.buffer = buffer;
    }

    @Override
    public int rows() {
        return rows;
    }

    @Override
    public int cols() {
        return cols;
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

    @Override
    public String toString() {
        return "[" + rows + ", " + cols + "]";
    }
}
