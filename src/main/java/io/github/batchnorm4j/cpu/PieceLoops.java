package io.github.batchnorm4j.cpu;

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
        float[] r = new float[coefficientLength(channels)];
        for (int i = 0; i < r.length; i++) r[i] = a[i % channels];
        return r;
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
