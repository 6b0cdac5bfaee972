package io.github.batchnorm4j.train;

import io.github.batchnorm4j.Shape;

/**
 * The argument checks every {@link TrainBackend} and {@link BatchNormUnit} shares, so that the CPU and device
 * backends reject the same misuse with the same message (naming the argument, the expected and the actual shape).
 * Nothing here reads or modifies tensor data.
 */
final class TensorChecks {

    /** The sizes of one GEMM, op(a) being m×k and op(b) k×n. */
    record GemmDims(int m, int n, int k) {
    }

    private TensorChecks() {
    }

    /** rows·cols of a new tensor; throws unless both are at least 1 and the product fits in an int. */
    static int elementCount(int rows, int cols) {
        if (rows < 1 || cols < 1) {
            throw new IllegalArgumentException("tensor shape: expected rows >= 1 and cols >= 1, got [" + rows + ", "
                    + cols + "]");
        }
        return Math.multiplyExact(rows, cols);
    }

    /** Throws unless {@code t} has {@code like}'s shape. */
    static void sameShape(String name, Tensor t, Tensor like) {
        if (t == null) throw new IllegalArgumentException(name + " must not be null");
        if (like == null) throw new IllegalArgumentException("input tensor must not be null");
        if (t.rows() != like.rows() || t.cols() != like.cols()) {
            throw new IllegalArgumentException(name + ": expected shape " + like + ", got " + t);
        }
    }

    /** Throws unless {@code t} is float32 (master weights, gradients, per-channel tensors). */
    static void float32(String name, Tensor t) {
        if (t == null) throw new IllegalArgumentException(name + " must not be null");
        if (t.dtype() != io.github.batchnorm4j.DType.FLOAT32) {
            throw new IllegalArgumentException(name + ": expected a float32 tensor, got " + t.dtype() + " " + t);
        }
    }

    /** Throws unless {@code t} has {@code like}'s storage type. */
    static void sameType(String name, Tensor t, Tensor like) {
        if (t.dtype() != like.dtype()) {
            throw new IllegalArgumentException(name + ": expected a " + like.dtype() + " tensor (as " + like
                    + "), got " + t.dtype());
        }
    }

    /** Throws unless {@code t} is {@code [1, cols]}. */
    static void rowVector(String name, Tensor t, int cols) {
        if (t == null) throw new IllegalArgumentException(name + " must not be null");
        if (t.rows() != 1 || t.cols() != cols) {
            throw new IllegalArgumentException(name + ": expected [1, " + cols + "], got " + t);
        }
    }

    /** Throws unless the host array {@code a} holds exactly as many floats as {@code t} (upload/download). */
    static void hostArray(String name, float[] a, Tensor t) {
        if (a == null || a.length != t.size()) {
            throw new IllegalArgumentException(name + ": expected " + t.size() + " floats for " + t + ", got "
                    + (a == null ? "null" : a.length));
        }
    }

    /** Throws unless there is one label per row of {@code logits}, each a class in [0, cols). */
    static void labels(int[] labels, Tensor logits) {
        if (labels == null) throw new IllegalArgumentException("labels must not be null");
        if (labels.length != logits.rows()) {
            throw new IllegalArgumentException("labels: expected " + logits.rows() + " (one per row of logits), got "
                    + labels.length);
        }
        for (int i = 0; i < labels.length; i++) {
            if (labels[i] < 0 || labels[i] >= logits.cols()) {
                throw new IllegalArgumentException("labels[" + i + "]: expected a class in [0, " + logits.cols()
                        + "), got " + labels[i]);
            }
        }
    }

    /** The sizes of c = alpha·op(a)·op(b) + beta·c; throws unless the inner sizes agree and c is m×n. */
    static GemmDims gemm(boolean transA, boolean transB, Tensor a, Tensor b, Tensor c) {
        int m = transA ? a.cols() : a.rows();
        int k = transA ? a.rows() : a.cols();
        int kb = transB ? b.cols() : b.rows();
        int n = transB ? b.rows() : b.cols();
        if (kb != k) {
            throw new IllegalArgumentException("b: op(a) " + (transA ? "transposed " : "") + a + " has " + k
                    + " columns, so op(b) needs " + k + " rows, got " + (transB ? "transposed " : "") + b);
        }
        if (c.rows() != m || c.cols() != n) {
            throw new IllegalArgumentException("c: expected [" + m + ", " + n + "], got " + c);
        }
        return new GemmDims(m, n, k);
    }

    /** The channels-last {@code [rows, C]} shape of a batch-norm input; throws unless x has {@code channels} columns. */
    static Shape batchNormInput(Tensor x, int channels) {
        if (x == null) throw new IllegalArgumentException("x must not be null");
        if (x.cols() != channels) throw new IllegalArgumentException("x: expected " + channels + " columns, got " + x);
        return Shape.channelsLast(x.rows(), x.cols());
    }

    /** The divisor of a mean loss: at least the rows of {@code logits} (a part of a larger batch at most). */
    static void meanOver(int meanOver, Tensor logits) {
        if (meanOver < logits.rows()) {
            throw new IllegalArgumentException("meanOver: expected at least the " + logits.rows() + " rows of logits, got "
                    + meanOver);
        }
    }
}
