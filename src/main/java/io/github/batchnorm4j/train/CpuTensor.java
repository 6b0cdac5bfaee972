package io.github.batchnorm4j.train;

import io.github.batchnorm4j.DType;

/**
 * A {@link Tensor} in a Java float array (row-major). The array is live: the CPU backend and the batch-norm layer
 * share it without copies. A 16-bit tensor keeps its values in the float array too, each one a value of its type
 * (the backend rounds whenever it writes; see {@link #store}).
 */
public final class CpuTensor extends AbstractTensor {
    private final float[] data;
    private final DType dtype;

    /** A zero-filled float32 tensor. */
    public CpuTensor(int rows, int cols) {
        this(rows, cols, DType.FLOAT32);
    }

    /** A zero-filled tensor stored in {@code dtype}. */
    public CpuTensor(int rows, int cols, DType dtype) {
        this(rows, cols, new float[TensorChecks.elementCount(rows, cols)], dtype);
    }

    /** Wraps {@code data} (not copied) as a float32 {@code [rows, cols]} tensor. */
    public CpuTensor(int rows, int cols, float[] data) {
        this(rows, cols, data, DType.FLOAT32);
    }

    /** Wraps {@code data} (not copied; its values must already be values of {@code dtype}). */
    public CpuTensor(int rows, int cols, float[] data, DType dtype) {
        super(rows, cols); // checked just below: a constructor that throws leaves no object behind
        if (dtype == null) throw new IllegalArgumentException("dtype must not be null");
        int n = TensorChecks.elementCount(rows, cols);
        if (data == null) throw new IllegalArgumentException("data must not be null");
        if (data.length != n) {
            throw new IllegalArgumentException("data: expected " + n + " floats for [" + rows + ", " + cols
                    + "], got " + data.length);
        }
        this.data = data;
        this.dtype = dtype;
    }

    @Override
    public DType dtype() {
        return dtype;
    }

    /** Rounds {@code v} to this tensor's type: the one rounding of a store. */
    float store(float v) {
        return dtype.round(v);
    }

    /** Rounds every element in [from, to) to this tensor's type (after a float32 computation into the array). */
    void storeRange(int from, int to) {
        if (dtype == DType.FLOAT32) return;
        for (int i = from; i < to; i++) data[i] = dtype.round(data[i]);
    }

    /** The live backing array. */
    public float[] data() {
        return data;
    }

    /** Nothing to release: the array belongs to the garbage collector. */
    @Override
    public void close() {
    }
}
