package io.github.batchnorm4j.train;

import io.github.batchnorm4j.DType;

/** The shape every {@link Tensor} has: rows and columns, and its text, {@code [rows, cols]} with a 16-bit type. */
abstract class AbstractTensor implements Tensor {
    private final int rows;
    private final int cols;

    AbstractTensor(int rows, int cols) {
        this.rows = rows;
        this.cols = cols;
    }

    @Override
    public final int rows() {
        return rows;
    }

    @Override
    public final int cols() {
        return cols;
    }

    @Override
    public String toString() {
        return "[" + rows + ", " + cols + "]" + (dtype() == DType.FLOAT32 ? "" : " " + dtype());
    }
}
