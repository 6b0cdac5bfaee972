package io.github.batchnorm4j.cpu;

import jdk.incubator.vector.DoubleVector;
import io.github.batchnorm4j.ReluMask;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
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

    /**
     * The element index at which float vectors start on a 64-byte boundary (FL = 16; 32-byte for FL = 8), if the
     * array itself starts on one: HotSpot's float[] data begins 16 bytes after the object, and G1 places every large
     * array (at least half a region) at the start of a region. A vector store that crosses a cache line costs about
     * as much as two: y = (x − m)·s + b measured 0.095 against 0.129 ns per float in L2, 0.68-0.74 against 0.78-0.83
     * from memory (one core). Arrays that are not so placed lose nothing but the peeled elements.
     */
    static final int ALIGN = (FL - 4) % FL;

    /** The first index ≥ i at which vectors are aligned (see {@link #ALIGN}). */
    static int alignUp(int i) {
        return i + ((ALIGN - i) & (FL - 1));
    }

    /** Runs shorter than this are not aligned first: the peeled elements would cost more than they save. */
    static final int ALIGN_MIN_RUN = 8 * FL;

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

    @Override
    public int rowAlignment(int channels) {
        return 1; // the channels-last elementwise loops walk a flat stream: any row boundary is as good as another
    }

    /**
     * The period of the channels-last coefficient pattern seen by float vectors: C when a vector holds at most one
     * row (C ≥ FL), else lcm(C, FL).
     */
    static int period(int channels) {
        return channels >= FL ? channels : channels / gcd(channels, FL) * FL;
    }

    @Override
    public int coefficientLength(int channels) {
        return period(channels) + FL;
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

    /**
     * Pieces of at least this many floats (8 MB, beyond a core's L2) walk the channels-last gradient sums row after
     * row ({@link #gradientSumsRowWalk}) instead of by tiles: from memory the tile walk (a block of channels down 16
     * rows, then the next block) read x and dy 25% slower than the channels-first sums read the same arrays (one
     * thread, 103 MB: 23.6 against 18.8 ms, a plain read of both 19.5 ms), the row walk as fast as the plain read
     * (loaded machine: 39 against 48 ms for the tiles); in L2 it costs 50% more than the tiles (accumulators in memory).
     */
    static final int ROW_WALK_MIN_FLOATS = 1 << 21;

    /**
     * Channels-last Σdy and Σdy·(x − center) in one sequential walk (C a multiple of DL): two rows at a time, each
     * channel's double accumulators in per-piece lane arrays (L1), added into sdy, sdyx at the end.
     */
    static void gradientSumsRowWalk(float[] x, float[] dy, int r0, int r1, int channels, float[] center,
                                    double[] sdy, double[] sdyx) {
        double[] k = new double[channels];
        for (int c = 0; c < channels; c++) k[c] = center[c];
        double[] a = new double[channels];
        double[] b = new double[channels];
        int r = r0;
        for (; r + 2 <= r1; r += 2) {
            int i0 = r * channels;
            int i1 = i0 + channels;
            for (int c = 0; c < channels; c += DL) {
                DoubleVector kc = DoubleVector.fromArray(D, k, c);
                DoubleVector g0 = wide(dy, i0 + c);
                DoubleVector g1 = wide(dy, i1 + c);
                DoubleVector.fromArray(D, a, c).add(g0).add(g1).intoArray(a, c);
                g1.fma(wide(x, i1 + c).sub(kc), g0.fma(wide(x, i0 + c).sub(kc), DoubleVector.fromArray(D, b, c)))
                        .intoArray(b, c);
            }
        }
        for (; r < r1; r++) {
            int i0 = r * channels;
            for (int c = 0; c < channels; c += DL) {
                DoubleVector g0 = wide(dy, i0 + c);
                DoubleVector.fromArray(D, a, c).add(g0).intoArray(a, c);
                g0.fma(wide(x, i0 + c).sub(DoubleVector.fromArray(D, k, c)), DoubleVector.fromArray(D, b, c))
                        .intoArray(b, c);
            }
        }
        for (int c = 0; c < channels; c++) {
            sdy[c] += a[c];
            sdyx[c] += b[c];
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
            applyRun(x, y, pos, end, center[c], scale[c], shift[c]);
            pos = end;
            run++;
        }
    }

    /** y = (x − m)·a + b over [i, end), vectors aligned when the run is long enough (see {@link #ALIGN}). */
    private static void applyRun(float[] x, float[] y, int i, int end, float m, float a, float b) {
        int head = end - i >= ALIGN_MIN_RUN ? alignUp(i) : i;
        for (; i < head; i++) y[i] = Math.fma(x[i] - m, a, b);
        FloatVector mv = FloatVector.broadcast(F, m);
        FloatVector av = FloatVector.broadcast(F, a);
        FloatVector bv = FloatVector.broadcast(F, b);
        for (; i <= end - 2 * FL; i += 2 * FL) {
            FloatVector.fromArray(F, x, i).sub(mv).fma(av, bv).intoArray(y, i);
            FloatVector.fromArray(F, x, i + FL).sub(mv).fma(av, bv).intoArray(y, i + FL);
        }
        for (; i <= end - FL; i += FL) FloatVector.fromArray(F, x, i).sub(mv).fma(av, bv).intoArray(y, i);
        for (; i < end; i++) y[i] = Math.fma(x[i] - m, a, b);
    }

    /**
     * Channels-last y as one flat stream over the piece's rows, vectors aligned (see {@link #ALIGN}): the vector at
     * flat position p meets channels q .. q + FL − 1 (mod C), q = p's position in the coefficient period, and reads
     * the coefficient arrays there; they are extended ({@link #coefficientLength}: element i is channel i % C), so a
     * vector that runs past the end of a row (or holds several rows, C &lt; FL) finds its channels in place.
     */
    @Override
    public void applyChannelsLast(float[] x, float[] y, int r0, int r1, int channels,
                                  float[] center, float[] scale, float[] shift) {
        int period = period(channels);
        int p = r0 * channels;
        int hi = r1 * channels;
        int head = Math.min(hi, alignUp(p));
        int q = 0;
        for (; p < head; p++) {
            y[p] = Math.fma(x[p] - center[q], scale[q], shift[q]);
            if (++q == period) q = 0;
        }
        for (; p <= hi - FL; p += FL) {
            FloatVector.fromArray(F, x, p).sub(FloatVector.fromArray(F, center, q))
                    .fma(FloatVector.fromArray(F, scale, q), FloatVector.fromArray(F, shift, q)).intoArray(y, p);
            q += FL;
            if (q >= period) q -= period;
        }
        for (; p < hi; p++) {
            y[p] = Math.fma(x[p] - center[q], scale[q], shift[q]);
            if (++q == period) q = 0;
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
        if (channels % DL == 0 && (long) (r1 - r0) * channels >= ROW_WALK_MIN_FLOATS) {
            gradientSumsRowWalk(x, dy, r0, r1, channels, center, sdy, sdyx);
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
            dxRun(x, dy, dx, pos, end, center[c], kdy[c], kx[c], k0[c]);
            pos = end;
            run++;
        }
    }

    /** dx = dy·a + ((x − m)·b + z) over [i, end), vectors aligned when the run is long enough. */
    private static void dxRun(float[] x, float[] dy, float[] dx, int i, int end, float m, float a, float b, float z) {
        int head = end - i >= ALIGN_MIN_RUN ? alignUp(i) : i;
        for (; i < head; i++) dx[i] = Math.fma(dy[i], a, Math.fma(x[i] - m, b, z));
        FloatVector mv = FloatVector.broadcast(F, m);
        FloatVector av = FloatVector.broadcast(F, a);
        FloatVector bv = FloatVector.broadcast(F, b);
        FloatVector zv = FloatVector.broadcast(F, z);
        for (; i <= end - FL; i += FL) {
            FloatVector.fromArray(F, dy, i)
                    .fma(av, FloatVector.fromArray(F, x, i).sub(mv).fma(bv, zv)).intoArray(dx, i);
        }
        for (; i < end; i++) dx[i] = Math.fma(dy[i], a, Math.fma(x[i] - m, b, z));
    }

    /** Channels-last dx as one flat aligned stream, like {@link #applyChannelsLast} (extended coefficients). */
    @Override
    public void dxChannelsLast(float[] x, float[] dy, float[] dx, int r0, int r1, int channels,
                               float[] center, float[] kdy, float[] kx, float[] k0) {
        int period = period(channels);
        int p = r0 * channels;
        int hi = r1 * channels;
        int head = Math.min(hi, alignUp(p));
        int q = 0;
        for (; p < head; p++) {
            dx[p] = Math.fma(dy[p], kdy[q], Math.fma(x[p] - center[q], kx[q], k0[q]));
            if (++q == period) q = 0;
        }
        for (; p <= hi - FL; p += FL) {
            FloatVector.fromArray(F, dy, p).fma(FloatVector.fromArray(F, kdy, q),
                    FloatVector.fromArray(F, x, p).sub(FloatVector.fromArray(F, center, q))
                            .fma(FloatVector.fromArray(F, kx, q), FloatVector.fromArray(F, k0, q)))
                    .intoArray(dx, p);
            q += FL;
            if (q >= period) q -= period;
        }
        for (; p < hi; p++) {
            dx[p] = Math.fma(dy[p], kdy[q], Math.fma(x[p] - center[q], kx[q], k0[q]));
            if (++q == period) q = 0;
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

    // ---- whole channels of a channels-first tensor ------------------------------------------------------------------

    /** The lanes added in lane order (deterministic, unlike reduceLanes, whose order is unspecified). */
    private static double sumLanes(double[] l) {
        double s = 0;
        for (double d : l) s += d;
        return s;
    }

    @Override
    public void channelSums(float[] x, int c, int batches, int channels, int inner, float center, double[] out) {
        // Vector accumulators live within one run and are then added into lane arrays: C2 (JDK 17) keeps vectors in
        // registers only when they do not cross the outer loop (measured: 7x slower when they did).
        double[] l1 = new double[DL];
        double[] l2 = new double[DL];
        double k = center;
        double ta = 0;
        double tq = 0;
        for (int n = 0; n < batches; n++) {
            int i = (n * channels + c) * inner;
            int end = i + inner;
            sumRun(x, i, end - (end - i) % DL, k, l1, l2);
            for (i = end - (end - i) % DL; i < end; i++) {
                double d = x[i] - k;
                ta += d;
                tq = Math.fma(d, d, tq);
            }
        }
        out[0] = sumLanes(l1) + ta;
        out[1] = sumLanes(l2) + tq;
    }

    /** Σ(x − k), Σ(x − k)² of x[i .. end) (a multiple of DL long) added lane-wise into l1, l2. */
    private static void sumRun(float[] x, int i, int end, double k, double[] l1, double[] l2) {
        DoubleVector kv = DoubleVector.broadcast(D, k);
        DoubleVector a0 = DoubleVector.zero(D);
        DoubleVector a1 = a0;
        DoubleVector a2 = a0;
        DoubleVector a3 = a0;
        DoubleVector q0 = a0;
        DoubleVector q1 = a0;
        DoubleVector q2 = a0;
        DoubleVector q3 = a0;
        for (; i <= end - 4 * DL; i += 4 * DL) {
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
        for (; i < end; i += DL) {
            DoubleVector d0 = wide(x, i).sub(kv);
            a0 = a0.add(d0);
            q0 = d0.fma(d0, q0);
        }
        a0.add(a1).add(a2.add(a3)).add(DoubleVector.fromArray(D, l1, 0)).intoArray(l1, 0);
        q0.add(q1).add(q2.add(q3)).add(DoubleVector.fromArray(D, l2, 0)).intoArray(l2, 0);
    }

    @Override
    public void channelApply(float[] x, float[] y, int c, int batches, int channels, int inner, float center,
                             float scale, float shift) {
        for (int n = batches - 1; n >= 0; n--) {
            int i = (n * channels + c) * inner;
            applyRun(x, y, i, i + inner, center, scale, shift);
        }
    }

    @Override
    public void channelGradientSums(float[] x, float[] dy, int c, int batches, int channels, int inner, float center,
                                    double[] out) {
        double[] l1 = new double[DL]; // lane arrays: see channelSums
        double[] l2 = new double[DL];
        double m = center;
        double ta = 0;
        double tb = 0;
        for (int n = 0; n < batches; n++) {
            int i = (n * channels + c) * inner;
            int end = i + inner;
            gradientRun(x, dy, i, end - (end - i) % DL, m, l1, l2);
            for (i = end - (end - i) % DL; i < end; i++) {
                double g = dy[i];
                ta += g;
                tb = Math.fma(g, x[i] - m, tb);
            }
        }
        out[0] = sumLanes(l1) + ta;
        out[1] = sumLanes(l2) + tb;
    }

    /** Σdy, Σdy·(x − m) of [i .. end) (a multiple of DL long) added lane-wise into l1, l2. */
    private static void gradientRun(float[] x, float[] dy, int i, int end, double m, double[] l1, double[] l2) {
        DoubleVector mv = DoubleVector.broadcast(D, m);
        DoubleVector a0 = DoubleVector.zero(D);
        DoubleVector a1 = a0;
        DoubleVector b0 = a0;
        DoubleVector b1 = a0;
        for (; i <= end - 2 * DL; i += 2 * DL) {
            DoubleVector g0 = wide(dy, i);
            DoubleVector g1 = wide(dy, i + DL);
            a0 = a0.add(g0);
            a1 = a1.add(g1);
            b0 = g0.fma(wide(x, i).sub(mv), b0);
            b1 = g1.fma(wide(x, i + DL).sub(mv), b1);
        }
        for (; i < end; i += DL) {
            DoubleVector g0 = wide(dy, i);
            a0 = a0.add(g0);
            b0 = g0.fma(wide(x, i).sub(mv), b0);
        }
        a0.add(a1).add(DoubleVector.fromArray(D, l1, 0)).intoArray(l1, 0);
        b0.add(b1).add(DoubleVector.fromArray(D, l2, 0)).intoArray(l2, 0);
    }

    @Override
    public void channelDx(float[] x, float[] dy, float[] dx, int c, int batches, int channels, int inner,
                          float center, float kdy, float kx, float k0) {
        for (int n = batches - 1; n >= 0; n--) {
            int i = (n * channels + c) * inner;
            dxRun(x, dy, dx, i, i + inner, center, kdy, kx, k0);
        }
    }

    // ---- per-channel coefficients: the scalar formulas lane by lane (same operations in the same order, so the same
    // bits; see PieceLoops) -------------------------------------------------------------------------------------------

    /** a[k .. k + DL) widened to double, or ones when a is null (gamma absent). */
    private static DoubleVector wideOr(float[] a, int k, double absent) {
        return a == null ? DoubleVector.broadcast(D, absent) : wide(a, k);
    }

    private static void narrowInto(DoubleVector v, float[] a, int k) {
        ((FloatVector) v.convertShape(VectorOperators.D2F, FD, 0)).intoArray(a, k);
    }

    @Override
    public void forwardCoefficients(double[] mean, double[] m2, long m, float[] gamma, float[] beta, double eps,
                                    float[] hi, float[] scale, float[] shift, float[] invstdF) {
        int c = mean.length;
        int k = 0;
        double md = m;
        DoubleVector one = DoubleVector.broadcast(D, 1.0);
        for (; k <= c - DL; k += DL) {
            // invstd = 1 / sqrt(M2 / m + eps); s = gamma · invstd; hi = (float) mean; shift = beta − (mean − hi) · s
            DoubleVector invstd = one.div(DoubleVector.fromArray(D, m2, k).div(md).add(eps).sqrt());
            DoubleVector sc = wideOr(gamma, k, 1.0).mul(invstd);
            DoubleVector mu = DoubleVector.fromArray(D, mean, k);
            FloatVector h = (FloatVector) mu.convertShape(VectorOperators.D2F, FD, 0);
            h.intoArray(hi, k);
            DoubleVector hd = (DoubleVector) h.convertShape(VectorOperators.F2D, D, 0);
            narrowInto(sc, scale, k);
            narrowInto(wideOr(beta, k, 0.0).sub(mu.sub(hd).mul(sc)), shift, k);
            narrowInto(invstd, invstdF, k);
        }
        float[] k3 = new float[3];
        for (; k < c; k++) {
            CpuBatchNormOps.forwardCoefficients(k, mean, m2, m, gamma, beta, eps, hi, invstdF, k3);
            scale[k] = k3[1];
            shift[k] = k3[2];
        }
    }

    @Override
    public void inferenceCoefficients(float[] gamma, float[] beta, float[] runningVar, double eps, float[] scale,
                                      float[] shift) {
        int c = runningVar.length;
        int k = 0;
        for (; k <= c - DL; k += DL) {
            narrowInto(wideOr(gamma, k, 1.0).div(wide(runningVar, k).add(eps).sqrt()), scale, k);
        }
        for (; k < c; k++) scale[k] = (float) (CpuBatchNormOps.gammaOf(gamma, k) / Math.sqrt(runningVar[k] + eps));
        if (beta != null) {
            System.arraycopy(beta, 0, shift, 0, c);
        } else {
            java.util.Arrays.fill(shift, 0, c, 0f);
        }
    }

    @Override
    public void dxCoefficients(float[] gamma, float[] saveInvstd, double m, double[] sumDy, double[] sumDyXhat,
                               float[] kdy, float[] kx, float[] k0) {
        int c = sumDy.length;
        int k = 0;
        for (; k <= c - DL; k += DL) {
            // kdy = g·is, kx = −g·is·is·Σdy·xhat / m, k0 = −g·is·Σdy / m, evaluated left to right as the scalar code
            DoubleVector is = wide(saveInvstd, k);
            DoubleVector g = wideOr(gamma, k, 1.0);
            DoubleVector ngis = g.neg().mul(is);
            narrowInto(g.mul(is), kdy, k);
            narrowInto(ngis.mul(is).mul(DoubleVector.fromArray(D, sumDyXhat, k)).div(m), kx, k);
            narrowInto(ngis.mul(DoubleVector.fromArray(D, sumDy, k)).div(m), k0, k);
        }
        float[] k3 = new float[3];
        for (; k < c; k++) {
            CpuBatchNormOps.dxCoefficients(k, gamma, saveInvstd, m, sumDy[k], sumDyXhat[k], k3);
            kdy[k] = k3[0];
            kx[k] = k3[1];
            k0[k] = k3[2];
        }
    }

    @Override
    public void mergeStatistics(double[][] s1, double[][] s2, float[] center, long m, double[] mean, double[] m2) {
        int c = mean.length;
        double md = m;
        int k = 0;
        for (; k <= c - DL; k += DL) {
            DoubleVector a = DoubleVector.zero(D);
            DoubleVector q = a;
            for (int t = 0; t < s1.length; t++) { // piece order, as the scalar merge
                a = a.add(DoubleVector.fromArray(D, s1[t], k));
                q = q.add(DoubleVector.fromArray(D, s2[t], k));
            }
            DoubleVector am = a.div(md);
            wide(center, k).add(am).intoArray(mean, k);
            DoubleVector sq = q.sub(a.mul(am));
            sq.blend(0.0, sq.lt(0.0)).intoArray(m2, k); // NaN is not < 0: stays NaN
        }
        for (; k < c; k++) { // the scalar merge of PieceLoops
            double a = 0;
            double q = 0;
            for (int t = 0; t < s1.length; t++) {
                a += s1[t][k];
                q += s2[t][k];
            }
            mean[k] = center[k] + a / md;
            double sq = q - a * (a / md);
            m2[k] = sq < 0 ? 0 : sq;
        }
    }

    @Override
    public void updateRunning(double[] mean, double[] m2, long m, double momentum, float[] runningMean,
                              float[] runningVar) {
        int c = mean.length;
        double keep = 1 - momentum;
        double m1 = m - 1;
        int k = 0;
        for (; k <= c - DL; k += DL) {
            narrowInto(wide(runningMean, k).mul(keep).add(DoubleVector.fromArray(D, mean, k).mul(momentum)),
                    runningMean, k);
            narrowInto(wide(runningVar, k).mul(keep).add(DoubleVector.fromArray(D, m2, k).div(m1).mul(momentum)),
                    runningVar, k);
        }
        for (; k < c; k++) {
            runningMean[k] = (float) ((1 - momentum) * runningMean[k] + momentum * mean[k]);
            runningVar[k] = (float) ((1 - momentum) * runningVar[k] + momentum * (m2[k] / (m - 1)));
        }
    }

    // ---- the fused ops' ReLU epilogue and gating (ReluMask's results, bit for bit) ---------------------------------
    // JDK 17 has no intrinsic for VectorMask.toLong / fromLong (they ran at 0.83 ns per float, six times the
    // elementwise pass), so the bits go through lanes: lane j of a vector of powers of two is 2^j.

    /** Int lanes as many as {@link #F}'s float lanes. */
    private static final VectorSpecies<Integer> FI = VectorSpecies.of(int.class, F.vectorShape());
    /** Lane j is 2^j: the OR of the passing lanes' weights is a mask word's bits. */
    private static final IntVector BIT_WEIGHTS = IntVector.fromArray(FI, laneWeights(), 0);
    /** Lane j is 31 − j: shifting a word's bits left by it puts bit j in the sign bit of lane j. */
    private static final IntVector SIGN_SHIFTS = IntVector.fromArray(FI, signShifts(), 0);

    private static int[] laneWeights() {
        int[] w = new int[FL];
        for (int j = 0; j < FL; j++) w[j] = 1 << j;
        return w;
    }

    private static int[] signShifts() {
        int[] s = new int[FL];
        for (int j = 0; j < FL; j++) s[j] = 31 - j;
        return s;
    }

    /**
     * {@link ReluMask#apply}, {@link #FL} lanes at a time: v = pre + z (the same float add), out = v where !(v &lt;= 0)
     * (NaN passes, −0 does not) else +0, and the mask words of [from, to) (from a multiple of 32, to a multiple of 32 or
     * the element count). A word's bits are the OR of the powers of two of the passing lanes, the test done again on
     * v's bits as ints (an int OR reduction is a tree; a float sum of the weights was a chain, three times slower).
     */
    @Override
    public void reluEpilogue(float[] pre, float[] z, float[] out, int[] mask, int from, int to) {
        int full = from + ((to - from) & ~31);
        FloatVector zero = FloatVector.zero(F);
        IntVector noBits = IntVector.zero(BIT_WEIGHTS.species());
        for (int w = from; w < full; w += 32) {
            int bits = 0;
            for (int k = 0; k < 32; k += FL) {
                FloatVector v = FloatVector.fromArray(F, pre, w + k);
                if (z != null) v = v.add(FloatVector.fromArray(F, z, w + k));
                VectorMask<Float> blocked = v.compare(VectorOperators.LE, 0f);
                v.blend(zero, blocked).intoArray(out, w + k);
                IntVector vi = v.reinterpretAsInts(); // passes: bits > 0 (v > 0 as an int), or NaN of either sign
                VectorMask<Integer> pass = vi.compare(VectorOperators.GT, 0)
                        .or(vi.and(0x7fffffff).compare(VectorOperators.GT, 0x7f800000));
                bits |= noBits.blend(BIT_WEIGHTS, pass).reduceLanes(VectorOperators.OR) << k;
            }
            if (mask != null) mask[w >>> 5] = bits;
        }
        if (full < to) ReluMask.apply(pre, z, out, mask, full, to);
    }

    /**
     * {@link ReluMask#gate}, FL lanes at a time: g = dy where the element's mask bit is 1, else +0 (the bit shifted into
     * each lane's sign and spread over the lane by an arithmetic shift selects dy's bits or none).
     */
    @Override
    public void gate(float[] dy, int[] mask, float[] g, int from, int to) {
        int i = from;
        int head = Math.min(to, (from + 31) & ~31);
        if (head > i) ReluMask.gate(dy, mask, g, i, head);
        i = head;
        VectorSpecies<Integer> is = FI;
        for (; i <= to - 32; i += 32) {
            int bits = mask[i >>> 5];
            for (int k = 0; k < 32; k += FL) {
                IntVector select = IntVector.broadcast(is, bits >>> k).lanewise(VectorOperators.LSHL, SIGN_SHIFTS)
                        .lanewise(VectorOperators.ASHR, 31);
                FloatVector.fromArray(F, dy, i + k).reinterpretAsInts().and(select).reinterpretAsFloats()
                        .intoArray(g, i + k);
            }
        }
        if (i < to) ReluMask.gate(dy, mask, g, i, to);
    }

    /** dst[lo, hi) = src[lo, hi), stores aligned (see {@link #ALIGN}): {@link FloatCopy}. */
    static void copy(float[] src, float[] dst, int lo, int hi) {
        int i = lo;
        int head = hi - lo >= ALIGN_MIN_RUN ? Math.min(hi, alignUp(i)) : i;
        for (; i < head; i++) dst[i] = src[i];
        for (; i <= hi - 4 * FL; i += 4 * FL) {
            FloatVector.fromArray(F, src, i).intoArray(dst, i);
            FloatVector.fromArray(F, src, i + FL).intoArray(dst, i + FL);
            FloatVector.fromArray(F, src, i + 2 * FL).intoArray(dst, i + 2 * FL);
            FloatVector.fromArray(F, src, i + 3 * FL).intoArray(dst, i + 3 * FL);
        }
        for (; i <= hi - FL; i += FL) FloatVector.fromArray(F, src, i).intoArray(dst, i);
        for (; i < hi; i++) dst[i] = src[i];
    }
}
