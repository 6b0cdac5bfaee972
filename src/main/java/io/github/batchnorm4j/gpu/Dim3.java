package io.github.batchnorm4j.gpu;

/**
 * Grid or block dimensions, as CUDA's {@code dim3}. All components ≥ 1.
 */
public record Dim3(int x, int y, int z) {
    public Dim3 {
        if (x < 1 || y < 1 || z < 1) throw new IllegalArgumentException("dimensions must be >= 1, got " + x + "x" + y + "x" + z);
    }

    /** A one-dimensional size. */
    public static Dim3 of(int x) {
        return new Dim3(x, 1, 1);
    }

    /** A two-dimensional size. */
    public static Dim3 of(int x, int y) {
        return new Dim3(x, y, 1);
    }

    /** x·y·z as a long. */
    public long volume() {
        return (long) x * y * z;
    }

    @Override
    public String toString() {
        return "(" + x + "," + y + "," + z + ")";
    }
}
