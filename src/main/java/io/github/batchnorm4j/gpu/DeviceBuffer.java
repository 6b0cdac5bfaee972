package io.github.batchnorm4j.gpu;

/**
 * A device allocation, owned by exactly one object. {@link #close()} frees it and is idempotent; any other use after
 * close throws {@link IllegalStateException} naming the buffer.
 *
 * <p>The base of every buffer is aligned to at least 256 bytes.
 */
public interface DeviceBuffer extends AutoCloseable {

    /** Size in bytes. */
    long bytes();

    /** The device that allocated this buffer. */
    Device device();

    /** True once closed. */
    boolean isClosed();

    /** A pointer to the first byte. */
    default DevicePointer pointer() {
        return new DevicePointer(this, 0);
    }

    /** A pointer {@code byteOffset} bytes into this buffer (0 ≤ byteOffset ≤ bytes()). */
    default DevicePointer at(long byteOffset) {
        return new DevicePointer(this, byteOffset);
    }

    /** Frees the memory; later calls do nothing. */
    @Override
    void close();
}
