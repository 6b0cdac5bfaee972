package io.github.batchnorm4j;

/**
 * Implemented by backends whose host API ({@link BatchNormOps} on {@code float[]}) copies the tensors to a device and
 * back on every call (cuda, cudnn, emulator). {@code batchnorm4j bench} then uploads the inputs once through
 * {@link #prepareTiming} and times only the device-resident operation, as a GPU training loop runs it; without this
 * interface bench times the host API, copies included.
 *
 * <p>Arguments follow {@link BatchNormOps}: tensors hold {@code shape.elementCount()} floats in the layout's memory
 * order, per-channel arrays C floats, {@code gamma}/{@code beta} may be null (1/0). The arrays are only read, when the
 * operation is prepared; nothing the caller passed is modified.
 */
public interface DeviceResidentTiming {

    /** The operations bench times. */
    enum Op {
        /** {@link BatchNormOps#forwardTraining}, with running statistics (updated on the device at every run). */
        FORWARD_TRAINING,
        /** {@link BatchNormOps#forwardInference} with the running statistics. */
        FORWARD_INFERENCE,
        /** {@link BatchNormOps#backwardTraining} with the given saved mean and invstd, writing dx, dgamma, dbeta. */
        BACKWARD_TRAINING
    }

    /** A prepared operation on device buffers. */
    interface Timed extends AutoCloseable {
        /** Launches the operation and returns once the device has finished it (so a wall clock can time it). */
        void run();

        /** Frees the device buffers of this operation. Idempotent. */
        @Override
        void close();
    }

    /**
     * Uploads the inputs of {@code op} and allocates its outputs on the device.
     *
     * @param x           input
     * @param dy          upstream gradient (BACKWARD_TRAINING)
     * @param runningMean running mean (FORWARD_TRAINING, FORWARD_INFERENCE)
     * @param runningVar  running variance (FORWARD_TRAINING, FORWARD_INFERENCE)
     * @param saveMean    saved mean (BACKWARD_TRAINING)
     * @param saveInvstd  saved invstd (BACKWARD_TRAINING)
     * @param momentum    weight of the new batch (FORWARD_TRAINING)
     * @throws IllegalArgumentException as the host API for bad arguments
     */
    Timed prepareTiming(Op op, Shape shape, float[] x, float[] dy, float[] gamma, float[] beta, float[] runningMean,
                        float[] runningVar, float[] saveMean, float[] saveInvstd, double eps, double momentum);

    /**
     * {@link #prepareTiming(Op, Shape, float[], float[], float[], float[], float[], float[], float[], float[], double,
     * double) prepareTiming} with x and dy (and the op's y or dx) in the 16-bit {@code dtype}, as bit patterns; the
     * per-channel arrays stay float32. Null when this backend cannot (bench then times the 16-bit host API).
     *
     * @throws UnsupportedOperationException when the backend refuses {@code dtype} (cuDNN's bfloat16 on old versions)
     */
    default Timed prepareTiming(Op op, Shape shape, DType dtype, short[] x, short[] dy, float[] gamma, float[] beta,
                                float[] runningMean, float[] runningVar, float[] saveMean, float[] saveInvstd,
                                double eps, double momentum) {
        return null;
    }

    /**
     * A device-to-device copy of {@code bytes} (bench reports (read + written bytes) / time as the device's copy
     * bandwidth, the yardstick of the other figures), or null when the backend cannot time one.
     */
    default Timed prepareCopy(long bytes) {
        return null;
    }
}
