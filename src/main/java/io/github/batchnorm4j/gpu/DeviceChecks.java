package io.github.batchnorm4j.gpu;

/**
 * Argument checks on host ranges and device pointers, shared by every {@link Device} implementation (copies, memset)
 * and by the launchers on top of them (our kernels, the training kernels, cuBLAS), so that the same misuse fails the
 * same way everywhere: IllegalArgumentException naming the argument, the expected and the actual value;
 * IllegalStateException for a closed buffer. Nothing is modified.
 */
public final class DeviceChecks {

    private DeviceChecks() {
    }

    /** Throws unless {@code a} is not null and {@code count} elements from {@code offset} lie inside it. */
    public static void hostRange(String name, float[] a, int offset, int count) {
        hostRange(name, a == null, a == null ? 0 : a.length, offset, count);
    }

    /** Throws unless {@code a} is not null and {@code count} elements from {@code offset} lie inside it. */
    public static void hostRange(String name, short[] a, int offset, int count) {
        hostRange(name, a == null, a == null ? 0 : a.length, offset, count);
    }

    /** Throws unless {@code a} is not null and {@code count} elements from {@code offset} lie inside it. */
    public static void hostRange(String name, int[] a, int offset, int count) {
        hostRange(name, a == null, a == null ? 0 : a.length, offset, count);
    }

    private static void hostRange(String name, boolean isNull, int length, int offset, int count) {
        if (isNull) throw new IllegalArgumentException(name + " must not be null");
        if (count < 0) throw new IllegalArgumentException("count must be >= 0, got " + count);
        if (offset < 0 || (long) offset + count > length) {
            throw new IllegalArgumentException(name + ": " + count + " elements from offset " + offset
                    + " do not fit in an array of " + length);
        }
    }

    /**
     * Throws unless {@code p} is not null and holds {@code floats} 4-byte elements from p on.
     *
     * @param why where the count comes from, e.g. "for shape …", or "" (part of the message)
     */
    public static void room(String name, DevicePointer p, long floats, String why) {
        if (p == null) throw new IllegalArgumentException(name + " must not be null");
        if (p.remaining() < floats * 4) {
            throw new IllegalArgumentException(name + ": expected room for " + floats + " floats"
                    + (why.isEmpty() ? "" : " " + why) + ", got " + p.remaining() + " bytes");
        }
    }

    /**
     * Throws unless {@code p} is not null and holds {@code elements} elements of {@code dtype} from p on.
     *
     * @param why where the count comes from, e.g. "for shape …", or "" (part of the message)
     */
    public static void room(String name, DevicePointer p, long elements, io.github.batchnorm4j.DType dtype,
                            String why) {
        if (dtype == io.github.batchnorm4j.DType.FLOAT32) {
            room(name, p, elements, why);
            return;
        }
        if (p == null) throw new IllegalArgumentException(name + " must not be null");
        if (p.remaining() < elements * dtype.bytes()) {
            throw new IllegalArgumentException(name + ": expected room for " + elements + " " + dtype + " elements"
                    + (why.isEmpty() ? "" : " " + why) + ", got " + p.remaining() + " bytes");
        }
    }

    /** Throws unless {@code p} (not null) is aligned to {@code bytes} (the element size of its tensor). */
    public static void aligned(String name, DevicePointer p, int bytes) {
        if (!p.isAligned(bytes)) {
            throw new IllegalArgumentException(name + ": expected a " + bytes + "-byte aligned address, got byte offset "
                    + p.byteOffset());
        }
    }

    /** Throws unless {@code p} (not null) is 4-byte aligned, as every float/int kernel argument must be. */
    public static void aligned4(String name, DevicePointer p) {
        if (!p.isAligned(4)) {
            throw new IllegalArgumentException(name + ": expected a 4-byte aligned address, got byte offset "
                    + p.byteOffset());
        }
    }

    /** Throws unless {@code bytes} is not negative. */
    public static void byteCount(long bytes) {
        if (bytes < 0) throw new IllegalArgumentException("bytes must be >= 0, got " + bytes);
    }

    /**
     * Throws unless the buffer of {@code p} (not null, already known to belong to the calling device) is open and
     * holds {@code bytes} bytes from p.
     */
    public static void deviceRange(String name, DevicePointer p, long bytes) {
        DeviceBuffer b = p.buffer();
        if (b.isClosed()) throw new IllegalStateException(name + ": " + b + " is closed");
        if (bytes < 0 || bytes > p.remaining()) {
            throw new IllegalArgumentException(name + ": " + bytes + " bytes at offset " + p.byteOffset()
                    + " run past the end of a " + b.bytes() + "-byte buffer");
        }
    }
}
