package io.github.batchnorm4j.gpu;

/**
 * A location in device memory: a buffer and a byte offset into it. Views of sub-ranges (including misaligned ones) are
 * pointers with non-zero offsets. Because buffers are 256-byte aligned, the alignment of the address is the alignment
 * of {@link #byteOffset()}.
 *
 * @param buffer     the allocation
 * @param byteOffset offset in bytes, 0 ≤ byteOffset ≤ buffer.bytes()
 */
public record DevicePointer(DeviceBuffer buffer, long byteOffset) {
    public DevicePointer {
        if (buffer == null) throw new IllegalArgumentException("buffer must not be null");
        if (byteOffset < 0 || byteOffset > buffer.bytes()) {
            throw new IllegalArgumentException("byteOffset must be in [0, " + buffer.bytes() + "], got " + byteOffset);
        }
    }

    /** This pointer moved by {@code bytes} (may be negative, staying inside the buffer). */
    public DevicePointer plus(long bytes) {
        return new DevicePointer(buffer, byteOffset + bytes);
    }

    /** Bytes from this pointer to the end of its buffer. */
    public long remaining() {
        return buffer.bytes() - byteOffset;
    }

    /** True if the address is a multiple of {@code alignment} (a power of two ≤ 256). */
    public boolean isAligned(int alignment) {
        if (alignment <= 0 || alignment > 256 || Integer.bitCount(alignment) != 1) {
            throw new IllegalArgumentException("alignment must be a power of two <= 256, got " + alignment);
        }
        return (byteOffset & (alignment - 1)) == 0;
    }
}
