package io.github.batchnorm4j.train;

/**
 * What one epoch of a run measured.
 *
 * @param epoch         1-based epoch number
 * @param trainLoss     mean cross-entropy over the epoch's training batches (training mode, weights moving)
 * @param trainAccuracy fraction of training rows classified correctly during the epoch
 * @param testLoss      mean cross-entropy on the test set after the epoch (eval mode)
 * @param testAccuracy  test accuracy after the epoch (eval mode)
 * @param deadFraction  per hidden layer, fraction of ReLU units that output 0 for every test sample
 * @param seconds       wall time of the epoch's training steps (evaluation excluded)
 */
public record EpochMetrics(int epoch, double trainLoss, double trainAccuracy, double testLoss, double testAccuracy,
                           double[] deadFraction, double seconds) {
    public EpochMetrics {
        deadFraction = deadFraction.clone();
    }

    @Override
    public double[] deadFraction() {
        return deadFraction.clone();
    }
}
