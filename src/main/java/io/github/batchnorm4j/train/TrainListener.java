package io.github.batchnorm4j.train;

/**
 * Progress callbacks of {@link Trainer}; every method has an empty default. Called on the training thread (rank 0's in
 * data-parallel training).
 */
public interface TrainListener {
    /** Before the first batch of an epoch. */
    default void epochStarted(String run, int epoch, int epochs, int batches) {
    }

    /** After each SGD step; {@code done} counts the epoch's batches so far. */
    default void batchDone(String run, int done, int batches) {
    }

    /**
     * After each SGD step, with the step's mean loss over the batch's rows (all ranks' in data-parallel training):
     * the loss curve. Calls {@link #batchDone(String, int, int)} by default.
     */
    default void batchDone(String run, int done, int batches, double loss) {
        batchDone(run, done, batches);
    }

    /** After the epoch's evaluation. */
    default void epochFinished(String run, EpochMetrics metrics, int epochs) {
    }

    /** A listener that does nothing. */
    TrainListener NONE = new TrainListener() {
    };
}
