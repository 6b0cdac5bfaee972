package io.github.batchnorm4j;

import java.util.Arrays;

/**
 * Per-channel partial statistics as mergeable triples (count, mean, M2), where M2 = Σ(x − mean)². Immutable.
 *
 * <p>Two partials of disjoint data merge exactly (Chan et al.): n = na + nb, d = mean_b − mean_a,
 * mean = mean_a + d·nb/n, M2 = M2a + M2b + d²·na·nb/n. This is how micro-batches, and the ranks of data-parallel
 * batch norm ({@code distributed.SyncBatchNormOps}: an all-gather of the triples, merged in rank order), combine their
 * statistics before {@link SplitBatchNormOps#forwardWithStatistics} normalizes each piece with them. The count is the
 * same for every channel.
 */
public final class ChannelStatistics {
    private final long count;
    private final double[] mean;
    private final double[] m2;

    /**
     * @param count number of values per channel (≥ 0)
     * @param mean  per-channel means (copied)
     * @param m2    per-channel sums of squared deviations from the mean (copied, each ≥ 0)
     */
    public ChannelStatistics(long count, double[] mean, double[] m2) {
        if (count < 0) throw new IllegalArgumentException("count must be >= 0, got " + count);
        if (mean == null || m2 == null) throw new IllegalArgumentException("mean and m2 must not be null");
        if (mean.length != m2.length) {
            throw new IllegalArgumentException("mean and m2 must have the same length, got " + mean.length + " and " + m2.length);
        }
        for (int c = 0; c < m2.length; c++) {
            if (m2[c] < 0) { // NaN passes: it propagates from NaN input, as everywhere else
                throw new IllegalArgumentException("m2[" + c + "]: expected a sum of squares >= 0, got " + m2[c]);
            }
        }
        this.count = count;
        this.mean = mean.clone();
        this.m2 = m2.clone();
    }

    /** The empty partial of C channels (the identity of {@link #merge}). */
    public static ChannelStatistics empty(int channels) {
        return new ChannelStatistics(0, new double[channels], new double[channels]);
    }

    public int channels() {
        return mean.length;
    }

    public long count() {
        return count;
    }

    public double mean(int c) {
        return mean[c];
    }

    public double m2(int c) {
        return m2[c];
    }

    /** A copy of the means. */
    public double[] means() {
        return mean.clone();
    }

    /** A copy of the M2 values. */
    public double[] m2s() {
        return m2.clone();
    }

    /** Biased variance M2/count (what training mode normalizes with). */
    public double variance(int c) {
        if (count < 1) throw new IllegalStateException("variance of an empty partial");
        return m2[c] / count;
    }

    /** Unbiased variance M2/(count − 1) (what running_var stores). */
    public double unbiasedVariance(int c) {
        if (count < 2) throw new IllegalStateException("unbiased variance needs count >= 2, got " + count);
        return m2[c] / (count - 1);
    }

    /** 1/sqrt(variance + eps). */
    public double invstd(int c, double eps) {
        return 1.0 / Math.sqrt(variance(c) + eps);
    }

    /** Means as floats (e.g. the saved mean). */
    public float[] meansAsFloats() {
        float[] out = new float[mean.length];
        for (int c = 0; c < out.length; c++) out[c] = (float) mean[c];
        return out;
    }

    /** 1/sqrt(var + eps) per channel, as floats (e.g. the saved inverse standard deviation). */
    public float[] invstdAsFloats(double eps) {
        BatchNormOptions.checkEps(eps);
        float[] out = new float[mean.length];
        for (int c = 0; c < out.length; c++) out[c] = (float) invstd(c, eps);
        return out;
    }

    /** Chan's parallel merge of two partials over disjoint data. */
    public ChannelStatistics merge(ChannelStatistics other) {
        if (other.channels() != channels()) {
            throw new IllegalArgumentException("merge: channel counts differ, " + channels() + " vs " + other.channels());
        }
        if (other.count == 0) return this;
        if (count == 0) return other;
        long n = count + other.count;
        double[] mergedMean = new double[mean.length];
        double[] s = new double[mean.length];
        double wb = (double) other.count / n;
        double wab = (double) count * other.count / n;
        for (int c = 0; c < mean.length; c++) {
            double d = other.mean[c] - mean[c];
            mergedMean[c] = mean[c] + d * wb;
            s[c] = m2[c] + other.m2[c] + d * d * wab;
        }
        return new ChannelStatistics(n, mergedMean, s);
    }

    @Override
    public String toString() {
        return "ChannelStatistics{count=" + count + ", mean=" + Arrays.toString(mean) + ", m2=" + Arrays.toString(m2) + "}";
    }
}
