package io.github.batchnorm4j.cpu;

/**
 * The element loops of the CPU backend, one static method per (pass, layout), each over one piece of the tensor.
 *
 * <p>Channels-first pieces are flat index ranges [lo, hi) of a tensor whose channel c of sample n is the run
 * [(n·C + c)·inner, (n·C + c + 1)·inner); a piece is walked run segment by run segment, each segment a simple
 * loop with per-channel scalars hoisted (HotSpot vectorizes the float ones). Channels-last pieces are row ranges
 * [r0, r1) of rows of C floats; the statistics walk them in tiles with register accumulators, the other passes
 * copy chunks of whole rows into scratch arrays and run one flat loop over each (see {@link #CHUNK_FLOATS}).
 *
 * <p>Accumulations are in double with several independent accumulators (the adds are latency-bound otherwise);
 * partial sums are added into the caller's per-piece arrays, never shared between threads. Nothing is allocated.
 */
final class ElementLoops implements PieceLoops {
    /** The one instance (the loops keep no state). */
    static final ElementLoops INSTANCE = new ElementLoops();

    /** Math.fma where the JVM compiles it to the CPU's instruction (≈ 1.3× on statistics; docs/cpu-performance.md). */
    static final boolean FMA = detectFma();

    /** Rows per channels-last statistics tile: short tiles keep the walk sequential (docs/cpu-performance.md). */
    static final int STATS_ROW_TILE = 16;

    /**
     * Floats per channels-last chunk (whole rows, at least one), copied into scratch so that C2 vectorizes one flat
     * loop with replicated coefficients; 128 measured best (docs/cpu-performance.md).
     */
    static final int CHUNK_FLOATS = 128;

    /**
     * Chunks per flush of the float accumulators of the channels-last gradient sums into double (the error bound is
     * in {@link #gradientSumsChannelsLast}); 16 measured best (docs/cpu-performance.md).
     */
    static final int FLUSH_CHUNKS = 16;

    private ElementLoops() {
    }

    @Override
    public int rowAlignment(int channels) {
        return chunkRows(channels);
    }

    @Override
    public int coefficientLength(int channels) {
        return channels;
    }

    /** Rows per channels-last chunk: at least one row, about {@link #CHUNK_FLOATS} floats. */
    static int chunkRows(int channels) {
        return Math.max(1, (CHUNK_FLOATS + channels - 1) / channels);
    }

    /** The per-channel array a repeated {@code rows} times: element j of the result is a[j % C]. */
    static float[] replicate(float[] a, int channels, int rows) {
        float[] r = new float[channels * rows];
        for (int k = 0; k < rows; k++) System.arraycopy(a, 0, r, k * channels, channels);
        return r;
    }

    private static boolean detectFma() {
        try {
            return Boolean.parseBoolean(java.lang.management.ManagementFactory
                    .getPlatformMXBean(com.sun.management.HotSpotDiagnosticMXBean.class)
                    .getVMOption("UseFMA").getValue());
        } catch (RuntimeException | LinkageError e) {
            return false; // not HotSpot, or no such option: stay with the portable form
        }
    }

    /** q + a·b, fused when the CPU can. */
    private static double madd(double a, double b, double q) {
        return FMA ? Math.fma(a, b, q) : q + a * b;
    }

    // ---- statistics: Σ(x − center), Σ(x − center)² ----------------------------------------------------------------

    @Override
    public void centeredSumsChannelsFirst(float[] x, int lo, int hi, int channels, int inner, float[] center,
                                         double[] s1, double[] s2) {
        int pos = lo;
        long run = lo / inner;
        while (pos < hi) {
            int end = (int) Math.min(hi, (run + 1) * inner);
            int c = (int) (run % channels);
            double k = center[c];
            // 8 independent chains: an FMA has 4 cycles of latency and two ports, so fewer chains would stall.
            double a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
            double q0 = 0, q1 = 0, q2 = 0, q3 = 0, q4 = 0, q5 = 0, q6 = 0, q7 = 0;
            int i = pos;
            for (; i + 7 < end; i += 8) {
                double d0 = x[i] - k, d1 = x[i + 1] - k, d2 = x[i + 2] - k, d3 = x[i + 3] - k;
                double d4 = x[i + 4] - k, d5 = x[i + 5] - k, d6 = x[i + 6] - k, d7 = x[i + 7] - k;
                a0 += d0;
                a1 += d1;
                a2 += d2;
                a3 += d3;
                a4 += d4;
                a5 += d5;
                a6 += d6;
                a7 += d7;
                q0 = madd(d0, d0, q0);
                q1 = madd(d1, d1, q1);
                q2 = madd(d2, d2, q2);
                q3 = madd(d3, d3, q3);
                q4 = madd(d4, d4, q4);
                q5 = madd(d5, d5, q5);
                q6 = madd(d6, d6, q6);
                q7 = madd(d7, d7, q7);
            }
            for (; i < end; i++) {
                double d = x[i] - k;
                a0 += d;
                q0 = madd(d, d, q0);
            }
            s1[c] += ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
            s2[c] += ((q0 + q1) + (q2 + q3)) + ((q4 + q5) + (q6 + q7));
            pos = end;
            run++;
        }
    }

    /**
     * Channels-last statistics, tiled: for a tile of {@link #STATS_ROW_TILE} rows (in cache after the first touch), blocks of
     * 8 channels keep their 16 sums in registers while walking down the tile's rows; the per-channel arrays are touched
     * once per tile instead of once per element (which cost two loads and two stores per element).
     *
     * <p>Float groups (vectorized) were measured as accurate and not faster: docs/cpu-performance.md.
     */
    @Override
    public void centeredSumsChannelsLast(float[] x, int r0, int r1, int channels, float[] center,
                                        double[] s1, double[] s2) {
        for (int t0 = r0; t0 < r1; t0 += STATS_ROW_TILE) {
            int t1 = Math.min(r1, t0 + STATS_ROW_TILE);
            int c = 0;
            for (; c + 7 < channels; c += 8) {
                double k0 = center[c], k1 = center[c + 1], k2 = center[c + 2], k3 = center[c + 3];
                double k4 = center[c + 4], k5 = center[c + 5], k6 = center[c + 6], k7 = center[c + 7];
                double a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
                double q0 = 0, q1 = 0, q2 = 0, q3 = 0, q4 = 0, q5 = 0, q6 = 0, q7 = 0;
                for (int i = t0 * channels + c, end = t1 * channels + c; i < end; i += channels) {
                    double d0 = x[i] - k0, d1 = x[i + 1] - k1, d2 = x[i + 2] - k2, d3 = x[i + 3] - k3;
                    double d4 = x[i + 4] - k4, d5 = x[i + 5] - k5, d6 = x[i + 6] - k6, d7 = x[i + 7] - k7;
                    a0 += d0;
                    a1 += d1;
                    a2 += d2;
                    a3 += d3;
                    a4 += d4;
                    a5 += d5;
                    a6 += d6;
                    a7 += d7;
                    q0 = madd(d0, d0, q0);
                    q1 = madd(d1, d1, q1);
                    q2 = madd(d2, d2, q2);
                    q3 = madd(d3, d3, q3);
                    q4 = madd(d4, d4, q4);
                    q5 = madd(d5, d5, q5);
                    q6 = madd(d6, d6, q6);
                    q7 = madd(d7, d7, q7);
                }
                s1[c] += a0;
                s1[c + 1] += a1;
                s1[c + 2] += a2;
                s1[c + 3] += a3;
                s1[c + 4] += a4;
                s1[c + 5] += a5;
                s1[c + 6] += a6;
                s1[c + 7] += a7;
                s2[c] += q0;
                s2[c + 1] += q1;
                s2[c + 2] += q2;
                s2[c + 3] += q3;
                s2[c + 4] += q4;
                s2[c + 5] += q5;
                s2[c + 6] += q6;
                s2[c + 7] += q7;
            }
            for (; c < channels; c++) { // the last C % 8 channels
                double k = center[c];
                double a = 0;
                double q = 0;
                for (int i = t0 * channels + c, end = t1 * channels + c; i < end; i += channels) {
                    double d = x[i] - k;
                    a += d;
                    q = madd(d, d, q);
                }
                s1[c] += a;
                s2[c] += q;
            }
        }
    }

    // ---- y = (x − center)·scale + shift --------------------------------------------------------------------------

    @Override
    public void applyChannelsFirst(float[] x, float[] y, int lo, int hi, int channels, int inner,
                                   float[] center, float[] scale, float[] shift) {
        int pos = lo;
        long run = lo / inner;
        while (pos < hi) {
            int end = (int) Math.min(hi, (run + 1) * inner);
            int c = (int) (run % channels);
            float m = center[c];
            float a = scale[c];
            float b = shift[c];
            for (int i = pos; i < end; i++) y[i] = (x[i] - m) * a + b;
            pos = end;
            run++;
        }
    }

    /**
     * Channels-last y, chunk by chunk (see {@link #CHUNK_FLOATS}): copy a chunk of x into scratch, one flat loop with
     * the replicated coefficients (vectorized), copy it out to y (2.2 ms against 3.0 ms row by row:
     * docs/cpu-performance.md). y may alias x: a chunk is read whole before it is written. The last rows (fewer than a
     * chunk) go row by row.
     */
    @Override
    public void applyChannelsLast(float[] x, float[] y, int r0, int r1, int channels,
                                  float[] center, float[] scale, float[] shift) {
        int rows = chunkRows(channels);
        int r = r0;
        if (r1 - r0 >= rows) {
            float[] m = replicate(center, channels, rows);
            float[] a = replicate(scale, channels, rows);
            float[] b = replicate(shift, channels, rows);
            float[] s = new float[m.length];
            int len = m.length;
            for (int base = r0 * channels; r + rows <= r1; r += rows, base += len) applyChunk(x, y, base, s, m, a, b);
        }
        for (; r < r1; r++) {
            int base = r * channels;
            for (int c = 0; c < channels; c++) y[base + c] = (x[base + c] - center[c]) * scale[c] + shift[c];
        }
    }

    /**
     * One chunk of {@link #applyChannelsLast}. A method of its own, called once per chunk, so that C2 compiles it
     * regularly with the flat loop vectorized (on-stack inlined in the caller it was slower: docs/cpu-performance.md).
     */
    private static void applyChunk(float[] x, float[] y, int base, float[] s, float[] m, float[] a, float[] b) {
        int len = s.length;
        System.arraycopy(x, base, s, 0, len);
        for (int j = 0; j < len; j++) s[j] = (s[j] - m[j]) * a[j] + b[j];
        System.arraycopy(s, 0, y, base, len);
    }

    // ---- backward sums: Σdy, Σdy·(x − center) ----------------------------------------------------------------------

    @Override
    public void gradientSumsChannelsFirst(float[] x, float[] dy, int lo, int hi, int channels, int inner,
                                          float[] center, double[] sdy, double[] sdyx) {
        int pos = lo;
        long run = lo / inner;
        while (pos < hi) {
            int end = (int) Math.min(hi, (run + 1) * inner);
            int c = (int) (run % channels);
            double m = center[c];
            double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            double b0 = 0, b1 = 0, b2 = 0, b3 = 0;
            int i = pos;
            for (; i + 3 < end; i += 4) {
                double g0 = dy[i];
                double g1 = dy[i + 1];
                double g2 = dy[i + 2];
                double g3 = dy[i + 3];
                a0 += g0;
                a1 += g1;
                a2 += g2;
                a3 += g3;
                b0 = madd(g0, x[i] - m, b0);
                b1 = madd(g1, x[i + 1] - m, b1);
                b2 = madd(g2, x[i + 2] - m, b2);
                b3 = madd(g3, x[i + 3] - m, b3);
            }
            for (; i < end; i++) {
                double g = dy[i];
                a0 += g;
                b0 = madd(g, x[i] - m, b0);
            }
            sdy[c] += (a0 + a1) + (a2 + a3);
            sdyx[c] += (b0 + b1) + (b2 + b3);
            pos = end;
            run++;
        }
    }

    /**
     * Channels-last Σdy, Σdy·(x − center), chunk by chunk (see {@link #CHUNK_FLOATS}): a chunk of x and dy is copied
     * into scratch and one flat, vectorized loop adds into float accumulators of the chunk's length (indexed like the
     * scratch and the replicated centers, so C2 vectorizes the loop); every {@link #FLUSH_CHUNKS} chunks the float
     * accumulators are added into double ones and cleared, and at the end the double accumulators are folded per
     * channel in a fixed order (deterministic).
     *
     * <p>Accuracy. Σdy is summed with two-sum (Knuth): the float sum plus a float compensation hold the exact sum of
     * each flushed group (the compensation's own rounding is u² relative), so Σdy, which cancels the most (random dy:
     * |Σdy| ≈ √M·rms while Σ|dy| ≈ M·mean|dy|), is as accurate as the double sum was. Σdy·(x − center) is a plain float
     * sum per group of at most F = 16 terms t = dy·(x − center): x − center and the product are each rounded once
     * (relative u = 2^−24) and the float sum of F terms errs by at most (F − 1)·u·Σ|t|, so each group, and hence the
     * whole sum, errs by at most (F + 1)·u·Σ|t| ≈ 1.0e−6·Σ|t| (the double adds after it are exact to 2^−53). In dx this
     * sum enters divided by M: the error it adds is at most ≈ 1.0e−6·|gamma·invstd·xhat|·mean|dy·xhat|, a millionth of
     * dx's own scale, whatever cancellation the sum has; in dgamma it is 1e−6 of Σ|dy·xhat|.
     *
     * <p>The measured errors and the speed of the alternatives (double sums, plain float groups, more compensation,
     * fused loops) are in docs/cpu-performance.md.
     * The last rows (fewer than a chunk) go row by row in double.
     */
    @Override
    public void gradientSumsChannelsLast(float[] x, float[] dy, int r0, int r1, int channels, float[] center,
                                         double[] sdy, double[] sdyx) {
        int rows = chunkRows(channels);
        int r = r0;
        if (r1 - r0 >= rows) {
            float[] m = replicate(center, channels, rows);
            int len = m.length;
            float[] xs = new float[len];
            float[] gs = new float[len];
            float[] fa = new float[len];
            float[] ca = new float[len];
            float[] fb = new float[len];
            double[] da = new double[len];
            double[] db = new double[len];
            int base = r0 * channels;
            while (r + rows <= r1) {
                for (int f = 0; f < FLUSH_CHUNKS && r + rows <= r1; f++, r += rows, base += len) {
                    gradientSumsChunk(x, dy, base, xs, gs, m, fa, ca, fb);
                }
                for (int j = 0; j < len; j++) {
                    da[j] += (double) fa[j] + ca[j];
                    db[j] += fb[j];
                    fa[j] = 0;
                    ca[j] = 0;
                    fb[j] = 0;
                }
            }
            for (int j = 0; j < len; j++) { // fixed order: row 0 of the chunk, row 1, ...
                sdy[j % channels] += da[j];
                sdyx[j % channels] += db[j];
            }
        }
        for (; r < r1; r++) {
            int base = r * channels;
            for (int c = 0; c < channels; c++) {
                double g = dy[base + c];
                sdy[c] += g;
                sdyx[c] = madd(g, x[base + c] - (double) center[c], sdyx[c]);
            }
        }
    }

    /** One chunk of {@link #gradientSumsChannelsLast}, a method of its own (see applyChunk). */
    private static void gradientSumsChunk(float[] x, float[] dy, int base, float[] xs, float[] gs, float[] m,
                                          float[] fa, float[] ca, float[] fb) {
        int len = xs.length;
        System.arraycopy(x, base, xs, 0, len);
        System.arraycopy(dy, base, gs, 0, len);
        for (int j = 0; j < len; j++) {
            float g = gs[j];
            float a = fa[j];
            float s = a + g;
            float sv = s - a;
            ca[j] += (a - (s - sv)) + (g - sv); // two-sum: a + g = s + this, exactly
            fa[j] = s;
            fb[j] += g * (xs[j] - m[j]);
        }
    }

    // ---- dx = dy·kdy + (x − center)·kx + k0 -----------------------------------------------------------------------

    @Override
    public void dxChannelsFirst(float[] x, float[] dy, float[] dx, int lo, int hi, int channels, int inner,
                                float[] center, float[] kdy, float[] kx, float[] k0) {
        int pos = lo;
        long run = lo / inner;
        while (pos < hi) {
            int end = (int) Math.min(hi, (run + 1) * inner);
            int c = (int) (run % channels);
            float m = center[c];
            float a = kdy[c];
            float b = kx[c];
            float z = k0[c];
            for (int i = pos; i < end; i++) dx[i] = dy[i] * a + ((x[i] - m) * b + z);
            pos = end;
            run++;
        }
    }

    /**
     * Channels-last dx, chunk by chunk like {@link #applyChannelsLast}: x and dy copied into scratch, one flat loop
     * with replicated coefficients, the result copied out (3.7 ms against 4.3 ms two rows at a time:
     * docs/cpu-performance.md). dx may alias x or dy: a chunk is read whole before it is written.
     */
    @Override
    public void dxChannelsLast(float[] x, float[] dy, float[] dx, int r0, int r1, int channels,
                               float[] center, float[] kdy, float[] kx, float[] k0) {
        int rows = chunkRows(channels);
        int r = r0;
        if (r1 - r0 >= rows) {
            float[] m = replicate(center, channels, rows);
            float[] g = replicate(kdy, channels, rows);
            float[] h = replicate(kx, channels, rows);
            float[] z = replicate(k0, channels, rows);
            float[] xs = new float[m.length];
            float[] gs = new float[m.length];
            int len = m.length;
            for (int base = r0 * channels; r + rows <= r1; r += rows, base += len) {
                dxChunk(x, dy, dx, base, xs, gs, m, g, h, z);
            }
        }
        for (; r < r1; r++) {
            int base = r * channels;
            for (int c = 0; c < channels; c++) {
                dx[base + c] = dy[base + c] * kdy[c] + ((x[base + c] - center[c]) * kx[c] + k0[c]);
            }
        }
    }

    /** One chunk of {@link #dxChannelsLast}; a method of its own for a regular compilation (see applyChunk). */
    private static void dxChunk(float[] x, float[] dy, float[] dx, int base, float[] xs, float[] gs, float[] m,
                                float[] g, float[] h, float[] z) {
        int len = xs.length;
        System.arraycopy(x, base, xs, 0, len);
        System.arraycopy(dy, base, gs, 0, len);
        for (int j = 0; j < len; j++) xs[j] = gs[j] * g[j] + ((xs[j] - m[j]) * h[j] + z[j]);
        System.arraycopy(xs, 0, dx, base, len);
    }

    // ---- eval backward, fused: sums and dx = dy·kdy in one pass --------------------------------------------------

    @Override
    public void evalBackwardChannelsFirst(float[] x, float[] dy, float[] dx, int lo, int hi, int channels, int inner,
                                          float[] center, float[] kdy, double[] sdy, double[] sdyx) {
        int pos = lo;
        long run = lo / inner;
        while (pos < hi) {
            int end = (int) Math.min(hi, (run + 1) * inner);
            int c = (int) (run % channels);
            double m = center[c];
            float k = kdy[c];
            double a0 = 0, a1 = 0;
            double b0 = 0, b1 = 0;
            int i = pos;
            for (; i + 1 < end; i += 2) {
                float g0 = dy[i];
                float g1 = dy[i + 1];
                a0 += g0;
                a1 += g1;
                b0 = madd(g0, x[i] - m, b0);
                b1 = madd(g1, x[i + 1] - m, b1);
                dx[i] = g0 * k;
                dx[i + 1] = g1 * k;
            }
            for (; i < end; i++) {
                float g = dy[i];
                a0 += g;
                b0 += g * (x[i] - m);
                dx[i] = g * k;
            }
            sdy[c] += a0 + a1;
            sdyx[c] += b0 + b1;
            pos = end;
            run++;
        }
    }

    @Override
    public void evalBackwardChannelsLast(float[] x, float[] dy, float[] dx, int r0, int r1, int channels,
                                         float[] center, float[] kdy, double[] sdy, double[] sdyx) {
        for (int r = r0; r < r1; r++) {
            int base = r * channels;
            for (int c = 0; c < channels; c++) {
                float g = dy[base + c];
                sdy[c] += g;
                sdyx[c] += g * (x[base + c] - (double) center[c]);
                dx[base + c] = g * kdy[c];
            }
        }
    }

    // ---- whole channels of a channels-first tensor ------------------------------------------------------------------

    @Override
    public void channelSums(float[] x, int c, int batches, int channels, int inner, float center, double[] out) {
        double k = center;
        double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        double q0 = 0, q1 = 0, q2 = 0, q3 = 0;
        for (int n = 0; n < batches; n++) {
            int i = (n * channels + c) * inner;
            int end = i + inner;
            for (; i + 3 < end; i += 4) {
                double d0 = x[i] - k, d1 = x[i + 1] - k, d2 = x[i + 2] - k, d3 = x[i + 3] - k;
                a0 += d0;
                a1 += d1;
                a2 += d2;
                a3 += d3;
                q0 = madd(d0, d0, q0);
                q1 = madd(d1, d1, q1);
                q2 = madd(d2, d2, q2);
                q3 = madd(d3, d3, q3);
            }
            for (; i < end; i++) {
                double d = x[i] - k;
                a0 += d;
                q0 = madd(d, d, q0);
            }
        }
        out[0] = (a0 + a1) + (a2 + a3);
        out[1] = (q0 + q1) + (q2 + q3);
    }

    @Override
    public void channelApply(float[] x, float[] y, int c, int batches, int channels, int inner, float center,
                             float scale, float shift) {
        for (int n = batches - 1; n >= 0; n--) {
            int i = (n * channels + c) * inner;
            for (int end = i + inner; i < end; i++) y[i] = (x[i] - center) * scale + shift;
        }
    }

    @Override
    public void channelGradientSums(float[] x, float[] dy, int c, int batches, int channels, int inner, float center,
                                    double[] out) {
        double m = center;
        double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        double b0 = 0, b1 = 0, b2 = 0, b3 = 0;
        for (int n = 0; n < batches; n++) {
            int i = (n * channels + c) * inner;
            int end = i + inner;
            for (; i + 3 < end; i += 4) {
                double g0 = dy[i], g1 = dy[i + 1], g2 = dy[i + 2], g3 = dy[i + 3];
                a0 += g0;
                a1 += g1;
                a2 += g2;
                a3 += g3;
                b0 = madd(g0, x[i] - m, b0);
                b1 = madd(g1, x[i + 1] - m, b1);
                b2 = madd(g2, x[i + 2] - m, b2);
                b3 = madd(g3, x[i + 3] - m, b3);
            }
            for (; i < end; i++) {
                double g = dy[i];
                a0 += g;
                b0 = madd(g, x[i] - m, b0);
            }
        }
        out[0] = (a0 + a1) + (a2 + a3);
        out[1] = (b0 + b1) + (b2 + b3);
    }

    @Override
    public void channelDx(float[] x, float[] dy, float[] dx, int c, int batches, int channels, int inner,
                          float center, float kdy, float kx, float k0) {
        for (int n = batches - 1; n >= 0; n--) {
            int i = (n * channels + c) * inner;
            for (int end = i + inner; i < end; i++) dx[i] = dy[i] * kdy + ((x[i] - center) * kx + k0);
        }
    }
}
