package io.github.batchnorm4j.gpu;

/**
 * The argument checks of {@link Device}'s copies and memset, shared by every device implementation so that the same
 * misuse fails the same way on CUDA and on the emulator: IllegalArgumentException naming the argument and the range,
 * IllegalStateException for a closed buffer. Nothing is modified.
 */
public final class CopyChecks {

    private CopyChecks() {
    }

    /** Throws unless {@code a} is not null and {@code count} elements from {@code offset} lie inside it. */
    public static void hostRange(String name, float[] a, int offset, int count) {
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
