package io.github.batchnorm4j.cpu;

/**
 * A plain copy of part of a float[], as fast as this JVM makes one: with the Vector API ({@code
 * jdk.incubator.vector}, where {@link CpuBatchNormOps} uses it) a loop of vector loads and stores whose stores start on
 * 64-byte boundaries, else {@link System#arraycopy}. {@code bench} times it beside {@code System.arraycopy} for its
 * copy reference (the fastest wins): on this project's 2-core machine a 103 MB copy ran at 22.7 GB/s (read + written,
 * 2 threads) against 17.7 GB/s for {@code System.arraycopy}, whose stores straddle cache lines where the array's data
 * does not start on one (docs/cpu-performance.md); at 25.7 MB both ran at 50 GB/s.
 */
public final class FloatCopy {
    private FloatCopy() {
    }

    /** Whether {@link #copy} runs the Vector API loop (else it is {@code System.arraycopy}). */
    public static boolean vectorized() {
        return CpuBatchNormOps.VECTOR_AVAILABLE;
    }

    /**
     * dst[from, to) = src[from, to).
     *
     * @throws IndexOutOfBoundsException if the range is outside either array
     */
    public static void copy(float[] src, float[] dst, int from, int to) {
        if (from < 0 || to < from || to > src.length || to > dst.length) {
            throw new IndexOutOfBoundsException("range [" + from + ", " + to + ") of arrays of " + src.length + " and "
                    + dst.length + " floats");
        }
        if (vectorized()) {
            VectorLoops.copy(src, dst, from, to);
        } else {
            System.arraycopy(src, from, dst, from, to - from);
        }
    }
}
