package io.github.batchnorm4j.train;

/**
 * A row-major float32 matrix owned by one {@link TrainBackend}: host memory on the CPU backend, a device buffer on a
 * GPU backend. The training code never reads a tensor's elements directly; it moves data with
 * {@link TrainBackend#upload} and {@link TrainBackend#download}, so the same model code runs on either backend.
 *
 * <p>Closing releases the storage; closing twice is harmless.
 */
public interface Tensor extends AutoCloseable {
    /** Number of rows (the batch axis for activations, fan-in for weights). */
    int rows();

    /** Number of columns (features / channels). */
    int cols();

    /** rows·cols. */
    default int size() {
        return rows() * cols();
    }

    @Override
    void close();
}
