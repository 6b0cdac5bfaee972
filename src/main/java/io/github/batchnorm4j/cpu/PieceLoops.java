package io.github.batchnorm4j.cpu;

import io.github.batchnorm4j.ReluMask;

/**
 * The element loops of one pass over one piece of a tensor, as {@link CpuBatchNormOps} calls them: {@link
 * ElementLoops} (scalar Java, always there) or {@link VectorLoops} (the Vector API, where the module is present).
 * Both take the same arguments and obey the same contract; their results differ only by float rounding.
 *
 * <p>Channels-first pieces are flat index ranges [lo, hi) of a tensor whose channel c of sample n is the run
 * [(n·C + c)·inner, (n·C + c + 1)·inner); channels-last pieces are row ranges [r0, r1) of rows of C floats. Sums are
 * added into the caller's per-piece arrays (never shared between threads); outputs may alias inputs (each element is
 * read before it is written).
 */
interface PieceLoops {
    /**
     * Rows of C floats that the channels-last elementwise passes (apply, dx) walk as one unit: a piece split into
     * blocks of a multiple of this many rows costs no more than the piece walked whole (no extra remainder rows).
     */
    int rowAlignment(int channels);

    /**
     * Length of the per-channel coefficient arrays the channels-last elementwise passes (apply, dx) take: at least C;
     * element i beyond C holds channel i % C's coefficient ({@link #extend}).
     */
    int coefficientLength(int channels);

    /** The coefficients a (channel c at a[c]) extended to {@link #coefficientLength}: element i is a[i % C]. */
    default float[] extend(float[] a, int channels) {
        // By doubling copies (each a multiple of C long, so element i stays a[i % C]): a remainder per element cost
        // 1.9 us per 1000 floats, as much as the elementwise pass over 150 rows of 1000 channels.
        float[] r = new float[coefficientLength(channels)];
        System.arraycopy(a, 0, r, 0, channels);
        extendInPlace(r, channels);
        return r;
    }

    /** Fills r beyond its first C elements so that element i is r[i % C] (r: {@link #coefficientLength} long). */
    static void extendInPlace(float[] r, int channels) {
        int len = Math.min(channels, r.length);
        while (len < r.length) {
            int n = Math.min(len, r.length - len);
            System.arraycopy(r, 0, r, len, n);
            len += n;
        }
    }

    // ---- per-channel coefficients (one value per channel; bit for bit the scalar formulas of CpuBatchNormOps) ------
    // A division or square root per channel costs ~9 ns in a scalar loop: with C = 1000 and 100 rows that was a third
    // of the forward-eval time. IEEE division, square root and rounding to float are exact operations, so vector lanes
    // give the same bits as the scalar formulas, which the channel-wise walks still use one channel at a time.

    /**
     * The training forward's coefficients of every channel c &lt; mean.length ({@link
     * CpuBatchNormOps#forwardCoefficients}); the float arrays may be longer (coefficient arrays to be extended).
     */
    default void forwardCoefficients(double[] mean, double[] m2, long m, float[] gamma, float[] beta, double eps,
                                     float[] hi, float[] scale, float[] shift, float[] invstdF) {
        float[] k3 = new float[3];
        for (int k = 0; k < mean.length; k++) {
            CpuBatchNormOps.forwardCoefficients(k, mean, m2, m, gamma, beta, eps, hi, invstdF, k3);
            scale[k] = k3[1];
            shift[k] = k3[2];
        }
    }

    /**
     * scale = gamma / sqrt(runningVar + eps), shift = beta, per channel c &lt; runningVar.length (gamma, beta may be
     * null: 1, 0; scale and shift may be longer).
     */
    default void inferenceCoefficients(float[] gamma, float[] beta, float[] runningVar, double eps, float[] scale,
                                       float[] shift) {
        for (int k = 0; k < runningVar.length; k++) {
            scale[k] = (float) (CpuBatchNormOps.gammaOf(gamma, k) / Math.sqrt(runningVar[k] + eps));
            shift[k] = (float) CpuBatchNormOps.betaOf(beta, k);
        }
    }

    /**
     * The backward's coefficients of every channel c &lt; sumDy.length ({@link CpuBatchNormOps#dxCoefficients}; the
     * float arrays may be longer).
     */
    default void dxCoefficients(float[] gamma, float[] saveInvstd, double m, double[] sumDy, double[] sumDyXhat,
                                float[] kdy, float[] kx, float[] k0) {
        float[] k3 = new float[3];
        for (int k = 0; k < sumDy.length; k++) {
            CpuBatchNormOps.dxCoefficients(k, gamma, saveInvstd, m, sumDy[k], sumDyXhat[k], k3);
            kdy[k] = k3[0];
            kx[k] = k3[1];
            k0[k] = k3[2];
        }
    }

    /**
     * The pieces' centered sums merged in piece order: mean = center + Σd/m, M2 = Σd² − (Σd)²/m (0 where rounding
     * made it negative; NaN stays NaN), per channel c &lt; mean.length.
     */
    default void mergeStatistics(double[][] s1, double[][] s2, float[] center, long m, double[] mean, double[] m2) {
        double md = m;
        for (int ch = 0; ch < mean.length; ch++) {
            double a = 0;
            double q = 0;
            for (int t = 0; t < s1.length; t++) { // fixed order: deterministic
                a += s1[t][ch];
                q += s2[t][ch];
            }
            mean[ch] = center[ch] + a / md;
            double sq = q - a * (a / md);
            m2[ch] = sq < 0 ? 0 : sq; // rounding can dip below 0 for a constant channel; NaN stays NaN
        }
    }

    /** running = (1 − momentum)·running + momentum·(mean, M2 / (m − 1)), per channel c &lt; mean.length. */
    default void updateRunning(double[] mean, double[] m2, long m, double momentum, float[] runningMean,
                               float[] runningVar) {
        for (int k = 0; k < mean.length; k++) {
            runningMean[k] = (float) ((1 - momentum) * runningMean[k] + momentum * mean[k]);
            runningVar[k] = (float) ((1 - momentum) * runningVar[k] + momentum * (m2[k] / (m - 1)));
        }
    }

    /**
     * The fused ops' epilogue over [from, to): {@link ReluMask#apply} (from a multiple of 32, to a multiple of 32 or
     * the element count; out may be pre; z and mask may be null).
     */
    default void reluEpilogue(float[] pre, float[] z, float[] out, int[] mask, int from, int to) {
        ReluMask.apply(pre, z, out, mask, from, to);
    }

    /** dy gated by the mask over [from, to): {@link ReluMask#gate} (g may be dy). */
    default void gate(float[] dy, int[] mask, float[] g, int from, int to) {
        ReluMask.gate(dy, mask, g, from, to);
    }

    /** Σ(x − center) into s1 and Σ(x − center)² into s2, per channel. */
    void centeredSumsChannelsFirst(float[] x, int lo, int hi, int channels, int inner, float[] center,
                                   double[] s1, double[] s2);

    /** Channels-last {@link #centeredSumsChannelsFirst}. */
    void centeredSumsChannelsLast(float[] x, int r0, int r1, int channels, float[] center, double[] s1, double[] s2);

    /** y = (x − center)·scale + shift per channel. */
    void applyChannelsFirst(float[] x, float[] y, int lo, int hi, int channels, int inner, float[] center,
                            float[] scale, float[] shift);

    /** Channels-last {@link #applyChannelsFirst}; the coefficient arrays are extended ({@link #extend}). */
    void applyChannelsLast(float[] x, float[] y, int r0, int r1, int channels, float[] center, float[] scale,
                           float[] shift);

    /** Σdy into sdy and Σdy·(x − center) into sdyx, per channel. */
    void gradientSumsChannelsFirst(float[] x, float[] dy, int lo, int hi, int channels, int inner, float[] center,
                                   double[] sdy, double[] sdyx);

    /** Channels-last {@link #gradientSumsChannelsFirst}. */
    void gradientSumsChannelsLast(float[] x, float[] dy, int r0, int r1, int channels, float[] center,
                                  double[] sdy, double[] sdyx);

    /** dx = dy·kdy + (x − center)·kx + k0 per channel. */
    void dxChannelsFirst(float[] x, float[] dy, float[] dx, int lo, int hi, int channels, int inner, float[] center,
                         float[] kdy, float[] kx, float[] k0);

    /** Channels-last {@link #dxChannelsFirst}; the coefficient arrays are extended ({@link #extend}). */
    void dxChannelsLast(float[] x, float[] dy, float[] dx, int r0, int r1, int channels, float[] center,
                        float[] kdy, float[] kx, float[] k0);

    /** The eval backward in one pass: the sums of {@link #gradientSumsChannelsFirst} and dx = dy·kdy. */
    void evalBackwardChannelsFirst(float[] x, float[] dy, float[] dx, int lo, int hi, int channels, int inner,
                                   float[] center, float[] kdy, double[] sdy, double[] sdyx);

    /** Channels-last {@link #evalBackwardChannelsFirst}. */
    void evalBackwardChannelsLast(float[] x, float[] dy, float[] dx, int r0, int r1, int channels, float[] center,
                                  float[] kdy, double[] sdy, double[] sdyx);

    // ---- whole channels of a channels-first tensor: channel c is the N runs [(n·C + c)·inner, +inner) -------------

    /** Σ(x − center) into out[0] and Σ(x − center)² into out[1] over channel c's runs, in a fixed order. */
    void channelSums(float[] x, int c, int batches, int channels, int inner, float center, double[] out);

    /** y = (x − center)·scale + shift over channel c's runs, the last run first (see CpuBatchNormOps). */
    void channelApply(float[] x, float[] y, int c, int batches, int channels, int inner, float center, float scale,
                      float shift);

    /** Σdy into out[0] and Σdy·(x − center) into out[1] over channel c's runs, in a fixed order. */
    void channelGradientSums(float[] x, float[] dy, int c, int batches, int channels, int inner, float center,
                             double[] out);

    /** dx = dy·kdy + (x − center)·kx + k0 over channel c's runs, the last run first. */
    void channelDx(float[] x, float[] dy, float[] dx, int c, int batches, int channels, int inner, float center,
                   float kdy, float kx, float k0);
}
