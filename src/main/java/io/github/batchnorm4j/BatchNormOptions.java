package io.github.batchnorm4j;

/**
 * Hyper-parameters of batch normalization, with PyTorch's defaults and conventions. Immutable; build with
 * {@link #builder()}.
 *
 * <ul>
 *   <li>{@code eps} (default 1e-5): added to the variance before the square root; must be finite and &gt; 0.</li>
 *   <li>{@code momentum} (default 0.1): PyTorch's sense, the weight of the <em>new</em> batch:
 *       {@code running ← (1 − m)·running + m·batch}. {@link Builder#cumulativeMomentum()} (PyTorch's
 *       {@code momentum=None}) uses {@code m = 1/num_batches_tracked}, a cumulative average.
 *       Keras/TF's momentum is a decay d: use {@link Builder#kerasMomentum(double)}, which sets m = 1 − d.</li>
 *   <li>{@code affine} (default true): learnable gamma and beta; off means gamma = 1, beta = 0 and no gradients.</li>
 *   <li>{@code trackRunningStats} (default true): keep running mean/variance; off means eval mode uses batch
 *       statistics, as in PyTorch.</li>
 * </ul>
 */
public final class BatchNormOptions {
    /** PyTorch's, cuDNN's and this library's default epsilon. */
    public static final double DEFAULT_EPS = 1e-5;
    /** PyTorch's default momentum (Keras's default decay 0.99 corresponds to 0.01). */
    public static final double DEFAULT_MOMENTUM = 0.1;

    private final double eps;
    private final Double momentum;
    private final boolean affine;
    private final boolean trackRunningStats;

    private BatchNormOptions(Builder b) {
        this.eps = b.eps;
        this.momentum = b.momentum;
        this.affine = b.affine;
        this.trackRunningStats = b.trackRunningStats;
    }

    /** Options with every default. */
    public static BatchNormOptions defaults() {
        return builder().build();
    }

    /** A builder starting from the defaults. */
    public static Builder builder() {
        return new Builder();
    }

    /** A builder starting from these options. */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.eps = eps;
        b.momentum = momentum;
        b.affine = affine;
        b.trackRunningStats = trackRunningStats;
        return b;
    }

    public double eps() {
        return eps;
    }

    /** True when momentum is the cumulative average (PyTorch's {@code momentum=None}). */
    public boolean isCumulative() {
        return momentum == null;
    }

    /** The fixed momentum factor; throws if cumulative. */
    public double momentum() {
        if (momentum == null) throw new IllegalStateException("momentum is cumulative (1/num_batches_tracked)");
        return momentum;
    }

    public boolean affine() {
        return affine;
    }

    public boolean trackRunningStats() {
        return trackRunningStats;
    }

    /**
     * The factor m that weighs the new batch in the running-statistics update of the step that makes
     * {@code numBatchesTrackedAfterStep} batches tracked: the fixed momentum, or 1/numBatchesTrackedAfterStep when
     * cumulative.
     */
    public double momentumFactor(long numBatchesTrackedAfterStep) {
        if (momentum != null) return momentum;
        if (numBatchesTrackedAfterStep < 1) {
            throw new IllegalArgumentException("numBatchesTracked must be >= 1, got " + numBatchesTrackedAfterStep);
        }
        return 1.0 / numBatchesTrackedAfterStep;
    }

    /** Validates eps; the message names the argument and the value. */
    public static void checkEps(double eps) {
        if (!(eps > 0) || Double.isInfinite(eps)) {
            throw new IllegalArgumentException("eps: expected a finite value > 0, got " + eps);
        }
    }

    /** Validates a momentum factor. */
    public static void checkMomentum(double momentum) {
        if (!(momentum >= 0 && momentum <= 1)) {
            throw new IllegalArgumentException("momentum: expected a value in [0, 1], got " + momentum);
        }
    }

    @Override
    public String toString() {
        return "BatchNormOptions{eps=" + eps + ", momentum=" + (momentum == null ? "cumulative" : momentum)
                + ", affine=" + affine + ", trackRunningStats=" + trackRunningStats + "}";
    }

    /** Builder of {@link BatchNormOptions}; each setter validates its argument at once. */
    public static final class Builder {
        private double eps = DEFAULT_EPS;
        private Double momentum = DEFAULT_MOMENTUM;
        private boolean affine = true;
        private boolean trackRunningStats = true;

        private Builder() {
        }

        /** Epsilon, finite and &gt; 0. */
        public Builder eps(double eps) {
            checkEps(eps);
            this.eps = eps;
            return this;
        }

        /** PyTorch-style momentum in [0, 1]: the weight of the new batch. */
        public Builder momentum(double momentum) {
            checkMomentum(momentum);
            this.momentum = momentum;
            return this;
        }

        /** Keras/TF-style momentum (a decay d in [0, 1]): sets m = 1 − d. */
        public Builder kerasMomentum(double decay) {
            if (!(decay >= 0 && decay <= 1)) {
                throw new IllegalArgumentException("kerasMomentum: expected a decay in [0, 1], got " + decay);
            }
            this.momentum = 1.0 - decay;
            return this;
        }

        /** Cumulative moving average: m = 1/num_batches_tracked (PyTorch's {@code momentum=None}). */
        public Builder cumulativeMomentum() {
            this.momentum = null;
            return this;
        }

        public Builder affine(boolean affine) {
            this.affine = affine;
            return this;
        }

        public Builder trackRunningStats(boolean track) {
            this.trackRunningStats = track;
            return this;
        }

        public BatchNormOptions build() {
            return new BatchNormOptions(this);
        }
    }
}
