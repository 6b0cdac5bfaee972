package io.github.batchnorm4j.train;

import java.util.List;

/**
 * A finished training run.
 *
 * @param label   a short name, e.g. "bn lr=0.05"
 * @param config  its hyper-parameters
 * @param epochs  one entry per epoch, in order
 * @param seconds wall time of the whole run, evaluation included
 * @param skippedSteps optimizer steps skipped by float16 loss scaling (Inf/NaN gradients; 0 without scaling)
 * @param lossScale    the loss scale at the end (1 without scaling)
 */
public record RunResult(String label, TrainConfig config, List<EpochMetrics> epochs, double seconds,
                        int skippedSteps, float lossScale) {
    public RunResult {
        epochs = List.copyOf(epochs);
    }

    /** A run without loss scaling. */
    public RunResult(String label, TrainConfig config, List<EpochMetrics> epochs, double seconds) {
        this(label, config, epochs, seconds, 0, 1f);
    }

    /** The metrics of the last epoch. */
    public EpochMetrics last() {
        return epochs.get(epochs.size() - 1);
    }

    /** Test accuracy after the last epoch. */
    public double testAccuracy() {
        return last().testAccuracy();
    }

    /** Mean training time per epoch in seconds (evaluation excluded). */
    public double secondsPerEpoch() {
        return epochs.stream().mapToDouble(EpochMetrics::seconds).average().orElse(Double.NaN);
    }

    /** The first epoch whose test accuracy reaches {@code target}, or -1. */
    public int firstEpochReaching(double target) {
        for (EpochMetrics m : epochs) if (m.testAccuracy() >= target) return m.epoch();
        return -1;
    }
}
