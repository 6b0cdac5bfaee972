package io.github.batchnorm4j.cpu;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The element loops of the CPU backend on the Vector API ({@code jdk.incubator.vector}): the same passes, pieces and
 * arguments as {@link ElementLoops}, which serves when the module is absent (this class is loaded only when it is
 * present: {@link CpuBatchNormOps#VECTOR_AVAILABLE}).
 *
 * <p><b>Sums</b> stay in double, as in ElementLoops: each float is widened (x − center is then exact for any two
 * floats of similar magnitude, as before) and added into double vectors, {@link #DL} lanes at a time, so the
 * accuracy argument of {@link CpuBatchNormOps} holds unchanged; only the order of the additions differs (lanes, then
 * a fixed fold), which is the same for every call with the same pieces, hence deterministic. A float widened and
 * accumulated in a vector lane costs about 0.12 ns here against 0.54 ns for the scalar loop with eight chains
 * (docs/cpu-performance.md), so a pass runs at memory speed.
 *
 * <p><b>Channels-first</b>: each run segment (one channel's values within a piece) is a vector loop with the
 * channel's coefficients broadcast; sums go into per-channel lane arrays (no horizontal reduction per run, which
 * would dominate short runs such as 7×7), folded once per piece.
 *
 * <p><b>Channels-last</b>: lanes are channels. When a row holds whole vectors ({@code C % lanes == 0}) or many of
 * them, each row is walked with vectors of consecutive channels and per-channel coefficient vectors loaded at the
 * same channel offset; the sums walk tiles of {@link #TILE_ROWS} rows with blocks of {@link #BLOCK} double vectors
 * kept in registers down the tile. Small C that does not divide the vector length (C = 3, 17, ...) is walked in
 * chunks of whole rows whose length is a multiple of the vector length, with coefficients replicated over the chunk
 * (lane j of the chunk is channel j % C).
 */
final class VectorLoops implements PieceLoops {
    /** The one instance (the loops keep no state). */
    static final VectorLoops INSTANCE = new VectorLoops();

    /** Float vectors of the preferred size (16 lanes with AVX-512, 8 with AVX2). */
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    /** Double vectors of the preferred size. */
    static final VectorSpecies<Double> D = DoubleVector.SPECIES_PREFERRED;
    /** Float vectors with as many lanes as {@link #D}: loaded and widened into one double vector. */
    static final VectorSpecies<Float> FD = VectorSpecies.of(float.class,
            VectorShape.forBitSize(D.vectorBitSize() / 2));
    static final int FL = F.length();
    static final int DL = D.length();

    /** Rows per channels-last tile of the sums: the tile stays in L1 while each block of channels walks down it. */
    static final int TILE_ROWS = 16;
    /** Double vectors per register block of the channels-last sums (BLOCK·DL channels). */
    static final int BLOCK = 4;
    /** Channels-last chunks (small C) are at least this many floats. */
    static final int CHUNK_FLOATS = 256;

    private VectorLoops() {
    }

    /** x[i .. i + DL) widened to double. */
    private static DoubleVector wide(float[] x, int i) {
        return (DoubleVector) FloatVector.fromArray(FD, x, i).convertShape(VectorOperators.F2D, D, 0);
    }

    /** Whether channels-last rows of C floats are walked row by row (else by chunks of replicated coefficients). */
    static boolean rowWise(int channels, int lanes) {
        return channels % lanes == 0 || channels >= 4 * lanes;
    }

    /** Rows per chunk for small C: a multiple of lanes / gcd(C, lanes) (so the chunk holds whole vectors). */
    static int chunkRows(int channels, int lanes) {
        int unit = lanes / gcd(channels, lanes);
        int rows = unit;
        while (rows * channels < CHUNK_FLOATS) rows += unit;
        return rows;
    }

    private static int gcd(int a, int b) {
        while (b != 0) {
            int t = a % b;
            a = b;
            b = t;
        }
        return a;
    }

    static float[] replicate(float[] a, int channels, int rows) {
        return ElementLoops.replicate(a, channels, rows);
    }

    static double[] replicateWide(float[] a, int channels, int rows) {
        double[] r = new double[channels * rows];
        for (int j = 0; j < r.length; j++) r[j] = a[j % channels];
        return r;
    }

    /** Adds lane array l (C·DL values, lanes of channel c at c·DL) into s, lanes in order: deterministic. */
    private static void foldLanes(double[] l, double[] s) {
        for (int c = 0; c < s.length; c++) {
            double v = 0;
            for (int k = 0; k < DL; k++) v += l[c * DL + k];
            s[c] += v;
        }
    }

    /** Adds chunk accumulator a (lane j is channel j % C) into s in order j: deterministic. */
    private static void foldChunk(double[] a, double[] s, int channels) {
        for (int j = 0; j < a.length; j++) s[j % channels] += a[j];
    }

    // ---- statistics: Σ(x − center), Σ(x − center)² ----------------------------------------------------------------

    @Override
    public void centeredSumsChannelsFirst(float[] x, int lo, int hi, int channels, int inner, float[] center,
                                         double[] s1, double[] s2) {
        double[] l1 = new double[channels * DL];
        double[] l2 = new double[channels * DL];
        int pos = lo;
        long run = lo / inner;
        while (pos < hi) {
            int end = (int) Math.min(hi, (run + 1) * inner);
            int c = (int) (run % channels);
            double k = center[c];
            DoubleVector kv = DoubleVector.broadcast(D, k);
            DoubleVector a0 = DoubleVector.zero(D);
            DoubleVector a1 = a0;
            DoubleVector a2 = a0;
            DoubleVector a3 = a0;
            DoubleVector q0 = a0;
            DoubleVector q1 = a0;
            DoubleVector q2 = a0;
            DoubleVector q3 = a0;
            int i = pos;
            for (; i <= end - 4 * DL; i += 4 * DL) { // 4 independent chains: the adds' latency
                DoubleVector d0 = wide(x, i).sub(kv);
                DoubleVector d1 = wide(x, i + DL).sub(kv);
                DoubleVector d2 = wide(x, i + 2 * DL).sub(kv);
                DoubleVector d3 = wide(x, i + 3 * DL).sub(kv);
                a0 = a0.add(d0);
                a1 = a1.add(d1);
                a2 = a2.add(d2);
                a3 = a3.add(d3);
                q0 = d0.fma(d0, q0);
                q1 = d1.fma(d1, q1);
                q2 = d2.fma(d2, q2);
                q3 = d3.fma(d3, q3);
            }
            for (; i <= end - DL; i += DL) {
                DoubleVector d0 = wide(x, i).sub(kv);
                a0 = a0.add(d0);
                q0 = d0.fma(d0, q0);
            }
            int lane = c * DL;
            a0.add(a1).add(a2.add(a3)).add(DoubleVector.fromArray(D, l1, lane)).intoArray(l1, lane);
            q0.add(q1).add(q2.add(q3)).add(DoubleVector.fromArray(D, l2, lane)).intoArray(l2, lane);
            for (; i < end; i++) {
                double d = x[i] - k;
                s1[c] += d;
                s2[c] = Math.fma(d, d, s2[c]);
            }
            pos = end;
            run++;
        }
        foldLanes(l1, s1);
        foldLanes(l2, s2);
    }

    @Override
    public void centeredSumsChannelsLast(float[] x, int r0, int r1, int channels, float[] center,
                                        double[] s1, double[] s2) {
        if (!rowWise(channels, DL)) {
            centeredSumsChunks(x, r0, r1, channels, center, s1, s2);
            return;
        }
        double[] k = new double[channels];
        for (int c = 0; c < channels; c++) k[c] = center[c];
        int vecEnd = channels - channels % DL;
        int blockEnd = channels - channels % (BLOCK * DL);
        for (int t0 = r0; t0 < r1; t0 += TILE_ROWS) {
            int t1 = Math.min(r1, t0 + TILE_ROWS);
            int c = 0;
            for (; c < blockEnd; c += BLOCK * DL) {
                DoubleVector k0 = DoubleVector.fromArray(D, k, c);
                DoubleVector k1 = DoubleVector.fromArray(D, k, c + DL);
                DoubleVector k2 = DoubleVector.fromArray(D, k, c + 2 * DL);
                DoubleVector k3 = DoubleVector.fromArray(D, k, c + 3 * DL);
                DoubleVector a0 = DoubleVector.zero(D);
                DoubleVector a1 = a0;
                DoubleVector a2 = a0;
                DoubleVector a3 = a0;
                DoubleVector q0 = a0;
                DoubleVector q1 = a0;
                DoubleVector q2 = a0;
                DoubleVector q3 = a0;
                for (int i = t0 * channels + c, end = t1 * channels + c; i < end; i += channels) {
                    DoubleVector d0 = wide(x, i).sub(k0);
                    DoubleVector d1 = wide(x, i + DL).sub(k1);
                    DoubleVector d2 = wide(x, i + 2 * DL).sub(k2);
                    DoubleVector d3 = wide(x, i + 3 * DL).sub(k3);
                    a0 = a0.add(d0);
                    a1 = a1.add(d1);
                    a2 = a2.add(d2);
                    a3 = a3.add(d3);
                    q0 = d0.fma(d0, q0);
                    q1 = d1.fma(d1, q1);
                    q2 = d2.fma(d2, q2);
                    q3 = d3.fma(d3, q3);
                }
                a0.add(DoubleVector.fromArray(D, s1, c)).intoArray(s1, c);
                a1.add(DoubleVector.fromArray(D, s1, c + DL)).intoArray(s1, c + DL);
                a2.add(DoubleVector.fromArray(D, s1, c + 2 * DL)).intoArray(s1, c + 2 * DL);
                a3.add(DoubleVector.fromArray(D, s1, c + 3 * DL)).intoArray(s1, c + 3 * DL);
                q0.add(DoubleVector.fromArray(D, s2, c)).intoArray(s2, c);
                q1.add(DoubleVector.fromArray(D, s2, c + DL)).intoArray(s2, c + DL);
                q2.add(DoubleVector.fromArray(D, s2, c + 2 * DL)).intoArray(s2, c + 2 * DL);
                q3.add(DoubleVector.fromArray(D, s2, c + 3 * DL)).intoArray(s2, c + 3 * DL);
            }
            for (; c < vecEnd; c += DL) {
                DoubleVector k0 = DoubleVector.fromArray(D, k, c);
                DoubleVector a0 = DoubleVector.zero(D);
                DoubleVector q0 = a0;
                for (int i = t0 * channels + c, end = t1 * channels + c; i < end; i += channels) {
                    DoubleVector d0 = wide(x, i).sub(k0);
                    a0 = a0.add(d0);
                    q0 = d0.fma(d0, q0);
                }
                a0.add(DoubleVector.fromArray(D, s1, c)).intoArray(s1, c);
                q0.add(DoubleVector.fromArray(D, s2, c)).intoArray(s2, c);
            }
            for (; c < channels; c++) { // the last C % DL channels
                double kc = k[c];
                double a = 0;
                double q = 0;
                for (int i = t0 * channels + c, end = t1 * channels + c; i < end; i += channels) {
                    double d = x[i] - kc;
                    a += d;
                    q = Math.fma(d, d, q);
                }
                s1[c] += a;
                s2[c] += q;
            }
        }
    }

    /** Small C: chunks of R rows (R·C a multiple of DL), lane j of a chunk is channel j % C. */
    private static void centeredSumsChunks(float[] x, int r0, int r1, int channels, float[] center,
                                           double[] s1, double[] s2) {
        int rows = chunkRows(channels, DL);
        int r = r0;
        if (r1 - r0 >= rows) {
            double[] k = replicateWide(center, channels, rows);
            int len = k.length;
            double[] a = new double[len];
            double[] q = new double[len];
            for (int base = r0 * channels; r + rows <= r1; r += rows, base += len) {
                for (int j = 0; j < len; j += DL) {
                    DoubleVector d = wide(x, base + j).sub(DoubleVector.fromArray(D, k, j));
                    DoubleVector.fromArray(D, a, j).add(d).intoArray(a, j);
                    d.fma(d, DoubleVector.fromArray(D, q, j)).intoArray(q, j);
                }
            }
            foldChunk(a, s1, channels);
            foldChunk(q, s2, channels);
        }
        for (; r < r1; r++) {
            int base = r * channels;
            for (int c = 0; c < channels; c++) {
                double d = x[base + c] - (double) center[c];
                s1[c] += d;
                s2[c] = Math.fma(d, d, s2[c]);
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
            FloatVector mv = FloatVector.broadcast(F, m);
            FloatVector av = FloatVector.broadcast(F, a);
            FloatVector bv = FloatVector.broadcast(F, b);
            int i = pos;
            for (; i <= end - 2 * FL; i += 2 * FL) {
                FloatVector.fromArray(F, x, i).sub(mv).fma(av, bv).intoArray(y, i);
                FloatVector.fromArray(F, x, i + FL).sub(mv).fma(av, bv).intoArray(y, i + FL);
            }
            for (; i <= end - FL; i += FL) FloatVector.fromArray(F, x, i).sub(mv).fma(av, bv).intoArray(y, i);
            for (; i < end; i++) y[i] = Math.fma(x[i] - m, a, b);
            pos = end;
            run++;
        }
    }

    @Override
    public void applyChannelsLast(float[] x, float[] y, int r0, int r1, int channels,
                                  float[] center, float[] scale, float[] shift) {
        if (rowWise(channels, FL)) {
            int vecEnd = channels - channels % FL;
            for (int r = r0; r < r1; r++) {
                int base = r * channels;
                int c = 0;
                for (; c < vecEnd; c += FL) {
                    FloatVector.fromArray(F, x, base + c).sub(FloatVector.fromArray(F, center, c))
                            .fma(FloatVector.fromArray(F, scale, c), FloatVector.fromArray(F, shift, c))
                            .intoArray(y, base + c);
                }
                for (; c < channels; c++) y[base + c] = Math.fma(x[base + c] - center[c], scale[c], shift[c]);
            }
            return;
        }
        int rows = chunkRows(channels, FL);
        int r = r0;
        if (r1 - r0 >= rows) {
            float[] m = replicate(center, channels, rows);
            float[] a = replicate(scale, channels, rows);
            float[] b = replicate(shift, channels, rows);
            int len = m.length;
            for (int base = r0 * channels; r + rows <= r1; r += rows, base += len) {
                for (int j = 0; j < len; j += FL) {
                    FloatVector.fromArray(F, x, base + j).sub(FloatVector.fromArray(F, m, j))
                            .fma(FloatVector.fromArray(F, a, j), FloatVector.fromArray(F, b, j))
                            .intoArray(y, base + j);
                }
            }
        }
        for (; r < r1; r++) {
            int base = r * channels;
            for (int c = 0; c < channels; c++) y[base + c] = Math.fma(x[base + c] - center[c], scale[c], shift[c]);
        }
    }

    // ---- backward sums: Σdy, Σdy·(x − center) ----------------------------------------------------------------------

    @Override
    public void gradientSumsChannelsFirst(float[] x, float[] dy, int lo, int hi, int channels, int inner,
                                          float[] center, double[] sdy, double[] sdyx) {
        double[] l1 = new double[channels * DL];
        double[] l2 = new double[channels * DL];
        int pos = lo;
        long run = lo / inner;
        while (pos < hi) {
            int end = (int) Math.min(hi, (run + 1) * inner);
            int c = (int) (run % channels);
            double m = center[c];
            DoubleVector mv = DoubleVector.broadcast(D, m);
            DoubleVector a0 = DoubleVector.zero(D);
            DoubleVector a1 = a0;
            DoubleVector b0 = a0;
            DoubleVector b1 = a0;
            int i = pos;
            for (; i <= end - 2 * DL; i += 2 * DL) {
                DoubleVector g0 = wide(dy, i);
                DoubleVector g1 = wide(dy, i + DL);
                a0 = a0.add(g0);
                a1 = a1.add(g1);
                b0 = g0.fma(wide(x, i).sub(mv), b0);
                b1 = g1.fma(wide(x, i + DL).sub(mv), b1);
            }
            for (; i <= end - DL; i += DL) {
                DoubleVector g0 = wide(dy, i);
                a0 = a0.add(g0);
                b0 = g0.fma(wide(x, i).sub(mv), b0);
            }
            int lane = c * DL;
            a0.add(a1).add(DoubleVector.fromArray(D, l1, lane)).intoArray(l1, lane);
            b0.add(b1).add(DoubleVector.fromArray(D, l2, lane)).intoArray(l2, lane);
            for (; i < end; i++) {
                double g = dy[i];
                sdy[c] += g;
                sdyx[c] = Math.fma(g, x[i] - m, sdyx[c]);
            }
            pos = end;
            run++;
        }
        foldLanes(l1, sdy);
        foldLanes(l2, sdyx);
    }

    @Override
    public void gradientSumsChannelsLast(float[] x, float[] dy, int r0, int r1, int channels, float[] center,
                                         double[] sdy, double[] sdyx) {
        if (!rowWise(channels, DL)) {
            gradientSumsChunks(x, dy, r0, r1, channels, center, sdy, sdyx);
            return;
        }
        double[] k = new double[channels];
        for (int c = 0; c < channels; c++) k[c] = center[c];
        int vecEnd = channels - channels % DL;
        int blockEnd = channels - channels % (BLOCK * DL);
        for (int t0 = r0; t0 < r1; t0 += TILE_ROWS) {
            int t1 = Math.min(r1, t0 + TILE_ROWS);
            int c = 0;
            for (; c < blockEnd; c += BLOCK * DL) {
                DoubleVector k0 = DoubleVector.fromArray(D, k, c);
                DoubleVector k1 = DoubleVector.fromArray(D, k, c + DL);
                DoubleVector k2 = DoubleVector.fromArray(D, k, c + 2 * DL);
                DoubleVector k3 = DoubleVector.fromArray(D, k, c + 3 * DL);
                DoubleVector a0 = DoubleVector.zero(D);
                DoubleVector a1 = a0;
                DoubleVector a2 = a0;
                DoubleVector a3 = a0;
                DoubleVector b0 = a0;
                DoubleVector b1 = a0;
                DoubleVector b2 = a0;
                DoubleVector b3 = a0;
                for (int i = t0 * channels + c, end = t1 * channels + c; i < end; i += channels) {
                    DoubleVector g0 = wide(dy, i);
                    DoubleVector g1 = wide(dy, i + DL);
                    DoubleVector g2 = wide(dy, i + 2 * DL);
                    DoubleVector g3 = wide(dy, i + 3 * DL);
                    a0 = a0.add(g0);
                    a1 = a1.add(g1);
                    a2 = a2.add(g2);
                    a3 = a3.add(g3);
                    b0 = g0.fma(wide(x, i).sub(k0), b0);
                    b1 = g1.fma(wide(x, i + DL).sub(k1), b1);
                    b2 = g2.fma(wide(x, i + 2 * DL).sub(k2), b2);
                    b3 = g3.fma(wide(x, i + 3 * DL).sub(k3), b3);
                }
                a0.add(DoubleVector.fromArray(D, sdy, c)).intoArray(sdy, c);
                a1.add(DoubleVector.fromArray(D, sdy, c + DL)).intoArray(sdy, c + DL);
                a2.add(DoubleVector.fromArray(D, sdy, c + 2 * DL)).intoArray(sdy, c + 2 * DL);
                a3.add(DoubleVector.fromArray(D, sdy, c + 3 * DL)).intoArray(sdy, c + 3 * DL);
                b0.add(DoubleVector.fromArray(D, sdyx, c)).intoArray(sdyx, c);
                b1.add(DoubleVector.fromArray(D, sdyx, c + DL)).intoArray(sdyx, c + DL);
                b2.add(DoubleVector.fromArray(D, sdyx, c + 2 * DL)).intoArray(sdyx, c + 2 * DL);
                b3.add(DoubleVector.fromArray(D, sdyx, c + 3 * DL)).intoArray(sdyx, c + 3 * DL);
            }
            for (; c < vecEnd; c += DL) {
                DoubleVector k0 = DoubleVector.fromArray(D, k, c);
                DoubleVector a0 = DoubleVector.zero(D);
                DoubleVector b0 = a0;
                for (int i = t0 * channels + c, end = t1 * channels + c; i < end; i += channels) {
                    DoubleVector g0 = wide(dy, i);
                    a0 = a0.add(g0);
                    b0 = g0.fma(wide(x, i).sub(k0), b0);
                }
                a0.add(DoubleVector.fromArray(D, sdy, c)).intoArray(sdy, c);
                b0.add(DoubleVector.fromArray(D, sdyx, c)).intoArray(sdyx, c);
            }
            for (; c < channels; c++) {
                double kc = k[c];
                double a = 0;
                double b = 0;
                for (int i = t0 * channels + c, end = t1 * channels + c; i < end; i += channels) {
                    double g = dy[i];
                    a += g;
                    b = Math.fma(g, x[i] - kc, b);
                }
                sdy[c] += a;
                sdyx[c] += b;
            }
        }
    }

    private static void gradientSumsChunks(float[] x, float[] dy, int r0, int r1, int channels, float[] center,
                                           double[] sdy, double[] sdyx) {
        int rows = chunkRows(channels, DL);
        int r = r0;
        if (r1 - r0 >= rows) {
            double[] k = replicateWide(center, channels, rows);
            int len = k.length;
            double[] a = new double[len];
            double[] b = new double[len];
            for (int base = r0 * channels; r + rows <= r1; r += rows, base += len) {
                for (int j = 0; j < len; j += DL) {
                    DoubleVector g = wide(dy, base + j);
                    DoubleVector.fromArray(D, a, j).add(g).intoArray(a, j);
                    g.fma(wide(x, base + j).sub(DoubleVector.fromArray(D, k, j)), DoubleVector.fromArray(D, b, j))
                            .intoArray(b, j);
                }
            }
            foldChunk(a, sdy, channels);
            foldChunk(b, sdyx, channels);
        }
        for (; r < r1; r++) {
            int base = r * channels;
            for (int c = 0; c < channels; c++) {
                double g = dy[base + c];
                sdy[c] += g;
                sdyx[c] = Math.fma(g, x[base + c] - (double) center[c], sdyx[c]);
            }
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
            FloatVector mv = FloatVector.broadcast(F, m);
            FloatVector av = FloatVector.broadcast(F, a);
            FloatVector bv = FloatVector.broadcast(F, b);
            FloatVector zv = FloatVector.broadcast(F, z);
            int i = pos;
            for (; i <= end - FL; i += FL) {
                FloatVector.fromArray(F, dy, i)
                        .fma(av, FloatVector.fromArray(F, x, i).sub(mv).fma(bv, zv)).intoArray(dx, i);
            }
            for (; i < end; i++) dx[i] = Math.fma(dy[i], a, Math.fma(x[i] - m, b, z));
            pos = end;
            run++;
        }
    }

    @Override
    public void dxChannelsLast(float[] x, float[] dy, float[] dx, int r0, int r1, int channels,
                               float[] center, float[] kdy, float[] kx, float[] k0) {
        if (rowWise(channels, FL)) {
            int vecEnd = channels - channels % FL;
            for (int r = r0; r < r1; r++) {
                int base = r * channels;
                int c = 0;
                for (; c < vecEnd; c += FL) {
                    FloatVector.fromArray(F, dy, base + c).fma(FloatVector.fromArray(F, kdy, c),
                            FloatVector.fromArray(F, x, base + c).sub(FloatVector.fromArray(F, center, c))
                                    .fma(FloatVector.fromArray(F, kx, c), FloatVector.fromArray(F, k0, c)))
                            .intoArray(dx, base + c);
                }
                for (; c < channels; c++) {
                    dx[base + c] = Math.fma(dy[base + c], kdy[c], Math.fma(x[base + c] - center[c], kx[c], k0[c]));
                }
            }
            return;
        }
        int rows = chunkRows(channels, FL);
        int r = r0;
        if (r1 - r0 >= rows) {
            float[] m = replicate(center, channels, rows);
            float[] g = replicate(kdy, channels, rows);
            float[] h = replicate(kx, channels, rows);
            float[] z = replicate(k0, channels, rows);
            int len = m.length;
            for (int base = r0 * channels; r + rows <= r1; r += rows, base += len) {
                for (int j = 0; j < len; j += FL) {
                    FloatVector.fromArray(F, dy, base + j).fma(FloatVector.fromArray(F, g, j),
                            FloatVector.fromArray(F, x, base + j).sub(FloatVector.fromArray(F, m, j))
                                    .fma(FloatVector.fromArray(F, h, j), FloatVector.fromArray(F, z, j)))
                            .intoArray(dx, base + j);
                }
            }
        }
        for (; r < r1; r++) {
            int base = r * channels;
            for (int c = 0; c < channels; c++) {
                dx[base + c] = Math.fma(dy[base + c], kdy[c], Math.fma(x[base + c] - center[c], kx[c], k0[c]));
            }
        }
    }

    // ---- eval backward, fused: sums and dx = dy·kdy in one pass --------------------------------------------------

    @Override
    public void evalBackwardChannelsFirst(float[] x, float[] dy, float[] dx, int lo, int hi, int channels, int inner,
                                          float[] center, float[] kdy, double[] sdy, double[] sdyx) {
        double[] l1 = new double[channels * DL];
        double[] l2 = new double[channels * DL];
        int pos = lo;
        long run = lo / inner;
        while (pos < hi) {
            int end = (int) Math.min(hi, (run + 1) * inner);
            int c = (int) (run % channels);
            double m = center[c];
            float k = kdy[c];
            DoubleVector mv = DoubleVector.broadcast(D, m);
            FloatVector kv = FloatVector.broadcast(FD, k);
            DoubleVector a0 = DoubleVector.zero(D);
            DoubleVector b0 = a0;
            int i = pos;
            for (; i <= end - DL; i += DL) {
                FloatVector gf = FloatVector.fromArray(FD, dy, i);
                DoubleVector g = (DoubleVector) gf.convertShape(VectorOperators.F2D, D, 0);
                a0 = a0.add(g);
                b0 = g.fma(wide(x, i).sub(mv), b0);
                gf.mul(kv).intoArray(dx, i);
            }
            int lane = c * DL;
            a0.add(DoubleVector.fromArray(D, l1, lane)).intoArray(l1, lane);
            b0.add(DoubleVector.fromArray(D, l2, lane)).intoArray(l2, lane);
            for (; i < end; i++) {
                float g = dy[i];
                sdy[c] += g;
                sdyx[c] = Math.fma(g, x[i] - m, sdyx[c]);
                dx[i] = g * k;
            }
            pos = end;
            run++;
        }
        foldLanes(l1, sdy);
        foldLanes(l2, sdyx);
    }

    @Override
    public void evalBackwardChannelsLast(float[] x, float[] dy, float[] dx, int r0, int r1, int channels,
                                         float[] center, float[] kdy, double[] sdy, double[] sdyx) {
        if (channels % DL != 0) {
            ElementLoops.INSTANCE.evalBackwardChannelsLast(x, dy, dx, r0, r1, channels, center, kdy, sdy, sdyx);
            return;
        }
        double[] k = new double[channels];
        for (int c = 0; c < channels; c++) k[c] = center[c];
        for (int r = r0; r < r1; r++) {
            int base = r * channels;
            for (int c = 0; c < channels; c += DL) {
                FloatVector gf = FloatVector.fromArray(FD, dy, base + c);
                DoubleVector g = (DoubleVector) gf.convertShape(VectorOperators.F2D, D, 0);
                DoubleVector.fromArray(D, sdy, c).add(g).intoArray(sdy, c);
                g.fma(wide(x, base + c).sub(DoubleVector.fromArray(D, k, c)), DoubleVector.fromArray(D, sdyx, c))
                        .intoArray(sdyx, c);
                gf.mul(FloatVector.fromArray(FD, kdy, c)).intoArray(dx, base + c);
            }
        }
    }
}
