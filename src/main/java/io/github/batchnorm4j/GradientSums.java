package io.github.batchnorm4j;

import java.util.Arrays;

/**
 * Per-channel partial sums of a training-mode backward pass, (count, Σdy, Σdy·xhat) with xhat = (x − mean)·invstd of
 * the <em>shared</em> statistics. Immutable.
 *
 * <p>They are what the backward needs from the whole batch: dbeta = Σdy, dgamma = Σdy·xhat and
 * dx = gamma·invstd/M·(M·dy − Σdy − xhat·Σdy·xhat), M the count of the whole batch. Partials of disjoint pieces of one
 * batch (micro-batches, or the ranks of a data-parallel job) that were normalized with the same mean and invstd merge
 * by adding, see {@link #add}; {@link SplitBatchNormOps#backwardWithSums} then computes dx from the total.
 */
public final class GradientSums {
    private final long count;
    private final double[] sumDy;
    private final double[] sumDyXhat;

    /**
     * @param count     number of values per channel the sums are over (≥ 0)
     * @param sumDy     Σdy per channel (copied)
     * @param sumDyXhat Σdy·xhat per channel (copied)
     */
    public GradientSums(long count, double[] sumDy, double[] sumDyXhat) {
        if (count < 0) throw new IllegalArgumentException("count must be >= 0, got " + count);
        if (sumDy == null || sumDyXhat == null) {
            throw new IllegalArgumentException("sumDy and sumDyXhat must not be null");
        }
        if (sumDy.length != sumDyXhat.length) {
            throw new IllegalArgumentException("sumDy and sumDyXhat must have the same length, got " + sumDy.length
                    + " and " + sumDyXhat.length);
        }
        this.count = count;
        this.sumDy = sumDy.clone();
        this.sumDyXhat = sumDyXhat.clone();
    }

    /** The empty partial of C channels (the identity of {@link #add}). */
    public static GradientSums empty(int channels) {
        return new GradientSums(0, new double[channels], new double[channels]);
    }

    public int channels() {
        return sumDy.length;
    }

    public long count() {
        return count;
    }

    /** Σdy of channel c (what dbeta is). */
    public double sumDy(int c) {
        return sumDy[c];
    }

    /** Σdy·xhat of channel c (what dgamma is). */
    public double sumDyXhat(int c) {
        return sumDyXhat[c];
    }

    /** A copy of Σdy per channel. */
    public double[] sumDys() {
        return sumDy.clone();
    }

    /** A copy of Σdy·xhat per channel. */
    public double[] sumDyXhats() {
        return sumDyXhat.clone();
    }

    /**
     * The sums of this and {@code other} (disjoint pieces of one batch, normalized with the same statistics): counts and
     * sums add. In double, in the order the caller merges, so a fixed merge order gives the same bits every time.
     */
    public GradientSums add(GradientSums other) {
        if (other == null) throw new IllegalArgumentException("other must not be null");
        if (other.channels() != channels()) {
            throw new IllegalArgumentException("add: channel counts differ, " + channels() + " vs " + other.channels());
        }
        double[] a = new double[sumDy.length];
        double[] b = new double[sumDy.length];
        for (int c = 0; c < a.length; c++) {
            a[c] = sumDy[c] + other.sumDy[c];
            b[c] = sumDyXhat[c] + other.sumDyXhat[c];
        }
        return new GradientSums(count + other.count, a, b);
    }

    @Override
    public String toString() {
        return "GradientSums{count=" + count + ", sumDy=" + Arrays.toString(sumDy) + ", sumDyXhat="
                + Arrays.toString(sumDyXhat) + "}";
    }
}
