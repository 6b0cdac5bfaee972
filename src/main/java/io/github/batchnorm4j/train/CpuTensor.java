package io.github.batchnorm4j.train;

/**
 * A {@link Tensor} in a Java float array (row-major). The array is live: the CPU backend and the batch-norm layer
 * share it without copies.
 */
public final class CpuTensor implements Tensor {
    private final int rows;
    private final int cols;
    private final float[] data;

    /** A zero-filled tensor. */
    public CpuTensor(int rows, int cols) {
        this(rows, cols, new float[TensorChecks.elementCount(rows, cols)]);
    }

    /** Wraps {@code data} (not copied) as a {@code [rows, cols]} tensor. */
    public CpuTensor(int rows, int cols, float[] data) {
        int n = TensorChecks.elementCount(rows, cols);
        if (data == null) throw new IllegalArgumentException("data must not be null");
        if (data.length != n) {
            throw new IllegalArgumentException("data: expected " + n + " floats for [" + rows + ", " + cols
                    + "], got " + data.length);
        }
        this.rows = rows;
        this.cols = cols;
        this.data = data;
    }

    @Override
    public int rows() {
        return rows;
    }

    @Override
    public int cols() {
        return cols;
    }

    /** The live backing array. */
    public float[] data() {
        return data;
    }

    /** Nothing to release: the array belongs to the garbage collector. */
    @Override
    public void close() {
    }

    @Override
    public String toString() {
        return "[" + rows + ", " + cols + "]";
    }
}
