package io.github.batchnorm4j.train;

import io.github.batchnorm4j.DType;

/**
 * A row-major matrix owned by one {@link TrainBackend}, stored in float32 or in a 16-bit type ({@link #dtype()}),: host memory on the CPU backend, a device buffer on a
 * GPU backend. The training code never reads a tensor's elements directly; it moves data with
 * {@link TrainBackend#upload} and {@link TrainBackend#download}, so the same model code runs on either backend.
 *
 * <p>A 16-bit tensor holds exactly the values of its type: every operation that writes it rounds once, to nearest
 * even, when it stores (the CPU backend keeps the rounded values in a float array; a device backend stores the
 * 16-bit patterns). Its values read as float32 exactly.
 *
 * <p>Closing releases the storage; closing twice is harmless.
 */
public interface Tensor extends AutoCloseable {
    /** Number of rows (the batch axis for activations, fan-in for weights). */
    int rows();

    /** Number of columns (features / channels). */
    int cols();

    /** The storage type; float32 unless allocated otherwise. */
    default DType dtype() {
        return DType.FLOAT32;
    }

    /** rows·cols. */
    default int size() {
        return rows() * cols();
    }

    @Override
    void close();
}
