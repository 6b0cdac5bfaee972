package io.github.batchnorm4j.cpu;

/**
 * The element loops of the CPU backend, one static method per (pass, layout), each over one piece of the tensor.
 *
 * <p>Channels-first pieces are flat index ranges [lo, hi) of a tensor whose channel c of sample n is the run
 * [(n·C + c)·inner, (n·C + c + 1)·inner); a piece is walked run segment by run segment, each segment a simple
 * loop with per-channel scalars hoisted (HotSpot vectorizes the float ones). Channels-last pieces are row ranges
 * [r0, r1) of rows of C floats; the inner loop runs over channels with per-channel arrays.
 *
 * <p>Accumulations are in double with several independent accumulators (the adds are latency-bound otherwise);
 * partial sums are added into the caller's per-piece arrays, never shared between threads. Nothing is allocated.
 */
final class Kernels {
    private Kernels() {
    }

    // ---- statistics: Σ(x − K), Σ(x − K)² ----------------------------------------------------------------------------

    static void shiftedSumsChannelsFirst(float[] x, int lo, int hi, int channels, int inner, float[] shift,
                                         double[] s1, double[] s2) {
        int pos = lo;
        long run = lo / inner;
        while (pos < hi) {
            int end = (int) Math.min(hi, (run + 1) * inner);
            int c = (int) (run % channels);
            double k = shift[c];
            double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            double q0 = 0, q1 = 0, q2 = 0, q3 = 0;
            int i = pos;
            for (; i + 3 < end; i += 4) {
                double d0 = x[i] - k;
                double d1 = x[i + 1] - k;
                double d2 = x[i + 2] - k;
                double d3 = x[i + 3] - k;
                a0 += d0;
                a1 += d1;
                a2 += d2;
                a3 += d3;
                q0 += d0 * d0;
                q1 += d1 * d1;
                q2 += d2 * d2;
                q3 += d3 * d3;
            }
            for (; i < end; i++) {
                double d = x[i] - k;
                a0 += d;
                q0 += d * d;
            }
            s1[c] += (a0 + a1) + (a2 + a3);
            s2[c] += (q0 + q1) + (q2 + q3);
            pos = end;
            run++;
        }
    }

    static void shiftedSumsChannelsLast(float[] x, int r0, int r1, int channels, float[] shift,
                                        double[] s1, double[] s2) {
        for (int r = r0; r < r1; r++) {
            int base = r * channels;
            for (int c = 0; c < channels; c++) {
                double d = x[base + c] - (double) shift[c];
                s1[c] += d;
                s2[c] += d * d;
            }
        }
    }

    // ---- y = (x − center)·scale + shift --------------------------------------------------------------------------

    static void applyChannelsFirst(float[] x, float[] y, int lo, int hi, int channels, int inner,
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

    static void applyChannelsLast(float[] x, float[] y, int r0, int r1, int channels,
                                  float[] center, float[] scale, float[] shift) {
        for (int r = r0; r < r1; r++) {
            int base = r * channels;
            for (int c = 0; c < channels; c++) y[base + c] = (x[base + c] - center[c]) * scale[c] + shift[c];
        }
    }

    // ---- backward sums: Σdy, Σdy·(x − center) ----------------------------------------------------------------------

    static void gradientSumsChannelsFirst(float[] x, float[] dy, int lo, int hi, int channels, int inner,
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
                b0 += g0 * (x[i] - m);
                b1 += g1 * (x[i + 1] - m);
                b2 += g2 * (x[i + 2] - m);
                b3 += g3 * (x[i + 3] - m);
            }
            for (; i < end; i++) {
                double g = dy[i];
                a0 += g;
                b0 += g * (x[i] - m);
            }
            sdy[c] += (a0 + a1) + (a2 + a3);
            sdyx[c] += (b0 + b1) + (b2 + b3);
            pos = end;
            run++;
        }
    }

    static void gradientSumsChannelsLast(float[] x, float[] dy, int r0, int r1, int channels, float[] center,
                                         double[] sdy, double[] sdyx) {
        for (int r = r0; r < r1; r++) {
            int base = r * channels;
            for (int c = 0; c < channels; c++) {
                double g = dy[base + c];
                sdy[c] += g;
                sdyx[c] += g * (x[base + c] - (double) center[c]);
            }
        }
    }

    // ---- dx = dy·kdy + (x − center)·kx + k0 -----------------------------------------------------------------------

    static void dxChannelsFirst(float[] x, float[] dy, float[] dx, int lo, int hi, int channels, int inner,
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

    static void dxChannelsLast(float[] x, float[] dy, float[] dx, int r0, int r1, int channels,
                               float[] center, float[] kdy, float[] kx, float[] k0) {
        for (int r = r0; r < r1; r++) {
            int base = r * channels;
            for (int c = 0; c < channels; c++) {
                dx[base + c] = dy[base + c] * kdy[c] + ((x[base + c] - center[c]) * kx[c] + k0[c]);
            }
        }
    }

    // ---- eval backward, fused: sums and dx = dy·kdy in one pass --------------------------------------------------

    static void evalBackwardChannelsFirst(float[] x, float[] dy, float[] dx, int lo, int hi, int channels, int inner,
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
                b0 += g0 * (x[i] - m);
                b1 += g1 * (x[i + 1] - m);
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

    static void evalBackwardChannelsLast(float[] x, float[] dy, float[] dx, int r0, int r1, int channels,
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
}
