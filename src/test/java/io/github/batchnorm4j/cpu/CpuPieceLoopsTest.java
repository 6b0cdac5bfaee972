package io.github.batchnorm4j.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.batchnorm4j.ReluMask;
import io.github.batchnorm4j.testing.TestData;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Both implementations of {@link PieceLoops} (the scalar {@link ElementLoops} and the Vector API's {@link
 * VectorLoops}) on pieces whose boundaries fall inside runs and rows, against sums and elementwise results computed
 * here in double, for channel counts and run lengths that reach every branch of the vector loops: channels-first runs
 * shorter than one vector, between one and four vectors (the single-vector loop and the scalar tail), and longer
 * (the four-chain loop); channels-last C that divides the vector length or is a multiple of it (rows of whole
 * vectors, with and without full register blocks of 4 vectors), small C that does not (chunks of replicated
 * coefficients, with rows left over), and large C that does not (rows of vectors plus scalar channels); row counts
 * that are not multiples of the tile or the chunk.
 *
 * <p>Bounds: sums accumulate in double, so they must agree with the double sums here within 1e−12 of Σ|term| (the
 * scalar channels-last gradient sums add float groups: (F + 1)·2^−24 of Σ|term|, ElementLoops' bound); an elementwise
 * result within a few float roundings of the terms that make it. Values outside the piece must stay untouched.
 */
class CpuPieceLoopsTest {
    private static final double U = 0x1p-24; // float unit roundoff

    private static PieceLoops[] loops() {
        assertTrue(CpuBatchNormOps.VECTOR_AVAILABLE, "the tests run with --add-modules jdk.incubator.vector (pom.xml)");
        return new PieceLoops[] {ElementLoops.INSTANCE, VectorLoops.INSTANCE};
    }

    @Test
    void channelsFirstPieces() {
        int[][] cases = { // {channels, inner}
            {3, 1}, {5, 3}, {4, 7}, {3, 8}, {2, 9}, {3, 16}, {2, 17}, {3, 33}, {2, 49}, {2, 64}, {3, 100}, {2, 300},
            {1, 1000},
        };
        for (PieceLoops l : loops()) {
            for (int[] cs : cases) {
                int c = cs[0];
                int inner = cs[1];
                int n = 3 * c * inner;
                SplittableRandom rng = TestData.random(31L * c + inner);
                for (int[] piece : pieces(rng, n)) {
                    check(l, true, c, inner, n, piece[0], piece[1], rng);
                }
            }
        }
    }

    @Test
    void channelsLastPieces() {
        int[] channels = {1, 2, 3, 5, 7, 8, 12, 16, 17, 24, 31, 32, 33, 40, 48, 64, 65, 67, 100, 128, 136, 1000, 1024};
        for (PieceLoops l : loops()) {
            for (int c : channels) {
                int rows = c >= 100 ? 21 : 150; // several tiles and chunks, and a remainder of each
                SplittableRandom rng = TestData.random(77L * c);
                for (int[] piece : pieces(rng, rows)) {
                    check(l, false, c, 0, rows * c, piece[0], piece[1], rng);
                }
            }
        }
    }

    /**
     * The channel-wise walks (a channels-first channel's N runs, sums then the elementwise pass): runs shorter than a
     * vector, with a tail, and several vectors long; every channel of a tensor, nothing written outside it.
     */
    @Test
    void wholeChannels() {
        int[][] cases = {{3, 1, 5}, {2, 5, 3}, {3, 8, 4}, {2, 9, 3}, {3, 33, 2}, {2, 49, 5}, {4, 100, 3}, {1, 1000, 2}};
        for (PieceLoops l : loops()) {
            for (int[] cs : cases) {
                int c = cs[0];
                int inner = cs[1];
                int batches = cs[2];
                int n = batches * c * inner;
                String what = l.getClass().getSimpleName() + " C " + c + " inner " + inner + " N " + batches;
                SplittableRandom rng = TestData.random(5L * c + inner);
                float[] x = TestData.normal(rng, n, 3, 2);
                float[] dy = TestData.normal(rng, n, 0.1, 1);
                float[] y = TestData.poisoned(n);
                float[] dx = TestData.poisoned(n);
                for (int ch = 0; ch < c; ch++) {
                    float center = x[ch * inner];
                    float scale = (float) (1 + rng.nextDouble());
                    float shift = (float) rng.nextDouble();
                    float k0 = (float) (0.1 * rng.nextDouble());
                    double[] e = new double[8];
                    for (int b = 0; b < batches; b++) {
                        for (int i = (b * c + ch) * inner; i < (b * c + ch + 1) * inner; i++) {
                            double d = (double) x[i] - center;
                            e[0] += d;
                            e[4] += Math.abs(d);
                            e[1] += d * d;
                            e[5] += d * d;
                            e[2] += dy[i];
                            e[6] += Math.abs(dy[i]);
                            e[3] += dy[i] * d;
                            e[7] += Math.abs(dy[i] * d);
                        }
                    }
                    double[] out = {Double.NaN, Double.NaN};
                    l.channelSums(x, ch, batches, c, inner, center, out);
                    assertSums(what + " channel " + ch + " Σ(x − center)", new double[] {e[0]}, new double[] {e[4]},
                            new double[] {out[0]}, 1e-12);
                    assertSums(what + " channel " + ch + " Σ(x − center)²", new double[] {e[1]},
                            new double[] {e[5]}, new double[] {out[1]}, 1e-12);
                    l.channelGradientSums(x, dy, ch, batches, c, inner, center, out);
                    assertSums(what + " channel " + ch + " Σdy", new double[] {e[2]}, new double[] {e[6]},
                            new double[] {out[0]}, 1e-12);
                    assertSums(what + " channel " + ch + " Σdy·(x − center)", new double[] {e[3]},
                            new double[] {e[7]}, new double[] {out[1]}, 1e-12);
                    l.channelApply(x, y, ch, batches, c, inner, center, scale, shift);
                    l.channelDx(x, dy, dx, ch, batches, c, inner, center, scale, shift, k0);
                    for (int i = 0; i < n; i++) {
                        boolean mine = (i / inner) % c == ch;
                        boolean done = (i / inner) % c <= ch;
                        if (!done) {
                            if (!Float.isNaN(y[i]) || !Float.isNaN(dx[i])) fail(what + ": element " + i + " written");
                            continue;
                        }
                        if (!mine) continue;
                        double d = (double) x[i] - center;
                        assertElement(what + " y", i, d * scale + shift, y[i],
                                4 * U * (Math.abs(d * scale) + Math.abs(shift)));
                        assertElement(what + " dx", i, dy[i] * (double) scale + (d * shift + k0), dx[i],
                                5 * U * (Math.abs(dy[i] * scale) + Math.abs(d * shift) + Math.abs(k0)));
                    }
                }
            }
        }
    }

    /** The whole range, an empty piece, and three pieces with random boundaries. */
    private static int[][] pieces(SplittableRandom rng, int total) {
        int a = 1 + rng.nextInt(total / 3);
        int b = a + 1 + rng.nextInt(total / 3);
        return new int[][] {{0, total}, {a, a}, {0, a}, {a, b}, {b, total}};
    }

    /**
     * Runs every pass of {@code l} on the piece [lo, hi) (channels-first: flat indices; channels-last: rows) of a
     * tensor of n floats and checks it.
     */
    private static void check(PieceLoops l, boolean cf, int c, int inner, int n, int lo, int hi,
                              SplittableRandom rng) {
        String what = l.getClass().getSimpleName() + (cf ? " channels-first C " + c + " inner " + inner
                : " channels-last C " + c) + " piece [" + lo + ", " + hi + ")";
        float[] x = TestData.normal(rng, n, 3, 2);
        float[] dy = TestData.normal(rng, n, 0.1, 1);
        float[] center = TestData.normal(rng, c, 3, 1);
        float[] scale = TestData.normal(rng, c, 1, 0.5);
        float[] shift = TestData.normal(rng, c, 0, 1);
        float[] k0 = TestData.normal(rng, c, 0, 0.1);
        int from = cf ? lo : lo * c;
        int to = cf ? hi : hi * c;

        // Expected sums in double, and the magnitudes that bound their rounding.
        double[][] e = new double[8][c]; // s1, s2, sdy, sdyx and their Σ|term|
        for (int i = from; i < to; i++) {
            int ch = cf ? (i / inner) % c : i % c;
            double d = (double) x[i] - center[ch];
            e[0][ch] += d;
            e[4][ch] += Math.abs(d);
            e[1][ch] += d * d;
            e[5][ch] += d * d;
            e[2][ch] += dy[i];
            e[6][ch] += Math.abs(dy[i]);
            e[3][ch] += dy[i] * d;
            e[7][ch] += Math.abs(dy[i] * d);
        }
        double[] s1 = new double[c];
        double[] s2 = new double[c];
        if (cf) {
            l.centeredSumsChannelsFirst(x, lo, hi, c, inner, center, s1, s2);
        } else {
            l.centeredSumsChannelsLast(x, lo, hi, c, center, s1, s2);
        }
        assertSums(what + " Σ(x − center)", e[0], e[4], s1, 1e-12);
        assertSums(what + " Σ(x − center)²", e[1], e[5], s2, 1e-12);

        double[] sdy = new double[c];
        double[] sdyx = new double[c];
        if (cf) {
            l.gradientSumsChannelsFirst(x, dy, lo, hi, c, inner, center, sdy, sdyx);
        } else {
            l.gradientSumsChannelsLast(x, dy, lo, hi, c, center, sdy, sdyx);
        }
        // ElementLoops' channels-last gradient sums add groups of FLUSH_CHUNKS float terms (its documented bound).
        double groups = !cf && l == ElementLoops.INSTANCE ? (ElementLoops.FLUSH_CHUNKS + 1) * U : 1e-12;
        assertSums(what + " Σdy", e[2], e[6], sdy, 1e-12);
        assertSums(what + " Σdy·(x − center)", e[3], e[7], sdyx, groups);

        float[] y = TestData.poisoned(n);
        if (cf) {
            l.applyChannelsFirst(x, y, lo, hi, c, inner, center, scale, shift);
        } else {
            l.applyChannelsLast(x, y, lo, hi, c, l.extend(center, c), l.extend(scale, c), l.extend(shift, c));
        }
        float[] dx = TestData.poisoned(n);
        if (cf) {
            l.dxChannelsFirst(x, dy, dx, lo, hi, c, inner, center, scale, shift, k0);
        } else {
            l.dxChannelsLast(x, dy, dx, lo, hi, c, l.extend(center, c), l.extend(scale, c), l.extend(shift, c),
                    l.extend(k0, c));
        }
        float[] dxEval = TestData.poisoned(n);
        double[] edy = new double[c];
        double[] edyx = new double[c];
        if (cf) {
            l.evalBackwardChannelsFirst(x, dy, dxEval, lo, hi, c, inner, center, scale, edy, edyx);
        } else {
            l.evalBackwardChannelsLast(x, dy, dxEval, lo, hi, c, center, scale, edy, edyx);
        }
        assertSums(what + " eval Σdy", e[2], e[6], edy, 1e-12);
        assertSums(what + " eval Σdy·(x − center)", e[3], e[7], edyx, 1e-12);
        for (int i = 0; i < n; i++) {
            if (i < from || i >= to) {
                if (!Float.isNaN(y[i]) || !Float.isNaN(dx[i]) || !Float.isNaN(dxEval[i])) {
                    fail(what + ": element " + i + " outside the piece was written");
                }
                continue;
            }
            int ch = cf ? (i / inner) % c : i % c;
            double d = (double) x[i] - center[ch];
            double ey = d * scale[ch] + shift[ch];
            double eyScale = Math.abs(d * scale[ch]) + Math.abs(shift[ch]);
            assertElement(what + " y", i, ey, y[i], 4 * U * eyScale);
            double edx = dy[i] * (double) scale[ch] + (d * shift[ch] + k0[ch]);
            double edxScale = Math.abs(dy[i] * scale[ch]) + Math.abs(d * shift[ch]) + Math.abs(k0[ch]);
            assertElement(what + " dx", i, edx, dx[i], 5 * U * edxScale);
            assertElement(what + " eval dx", i, dy[i] * (double) scale[ch], dxEval[i], U * Math.abs(dy[i] * scale[ch]));
        }
    }

    private static void assertSums(String what, double[] expected, double[] magnitude, double[] actual, double rel) {
        for (int ch = 0; ch < expected.length; ch++) {
            double bound = rel * magnitude[ch] + 1e-300;
            if (!(Math.abs(actual[ch] - expected[ch]) <= bound)) {
                fail(what + " channel " + ch + ": expected " + expected[ch] + ", got " + actual[ch] + " (bound "
                        + bound + ") of " + Arrays.toString(actual));
            }
        }
    }

    private static void assertElement(String what, int i, double expected, float actual, double bound) {
        if (!(Math.abs(actual - expected) <= bound + Double.MIN_NORMAL)) {
            fail(what + " element " + i + ": expected " + expected + ", got " + actual + " (bound " + bound + ")");
        }
    }

    /**
     * The channels-last gradient sums' row walk (pieces of at least {@link VectorLoops#ROW_WALK_MIN_FLOATS} floats):
     * directly on pieces of even and odd row counts, and once through gradientSumsChannelsLast on a piece just above
     * the threshold, against double sums within 1e−12 of Σ|term|; sums are added to what the arrays held.
     */
    @Test
    void channelsLastGradientSumsRowWalk() {
        for (int c : new int[] {8, 16, 24, 128, 1024}) {
            SplittableRandom rng = TestData.random(5L * c);
            int rows = 37;
            checkRowWalk(c, rows, 0, rows, rng, false);
            checkRowWalk(c, rows, 3, 20, rng, false);
            checkRowWalk(c, rows, 4, 5, rng, false);
        }
        int c = 128;
        int rows = VectorLoops.ROW_WALK_MIN_FLOATS / c + 5;
        checkRowWalk(c, rows, 2, rows, TestData.random(99), true);
    }

    private static void checkRowWalk(int c, int rows, int r0, int r1, SplittableRandom rng, boolean dispatch) {
        int n = rows * c;
        float[] x = TestData.normal(rng, n, 3, 2);
        float[] dy = TestData.normal(rng, n, 0.1, 1);
        float[] center = TestData.normal(rng, c, 3, 1);
        double[][] e = new double[4][c];
        double[] sdy = new double[c];
        double[] sdyx = new double[c];
        for (int ch = 0; ch < c; ch++) { // sums are added to what the arrays hold
            sdy[ch] = ch;
            sdyx[ch] = -ch;
            e[0][ch] = ch;
            e[1][ch] = -ch;
            e[2][ch] = ch;
            e[3][ch] = ch;
        }
        for (int i = r0 * c; i < r1 * c; i++) {
            int ch = i % c;
            double d = (double) x[i] - center[ch];
            e[0][ch] += dy[i];
            e[2][ch] += Math.abs(dy[i]);
            e[1][ch] += dy[i] * d;
            e[3][ch] += Math.abs(dy[i] * d);
        }
        if (dispatch) {
            VectorLoops.INSTANCE.gradientSumsChannelsLast(x, dy, r0, r1, c, center, sdy, sdyx);
        } else {
            VectorLoops.gradientSumsRowWalk(x, dy, r0, r1, c, center, sdy, sdyx);
        }
        String what = "row walk C " + c + " rows [" + r0 + ", " + r1 + ")" + (dispatch ? " (dispatched)" : "");
        assertSums(what + " Σdy", e[0], e[2], sdy, 1e-12);
        assertSums(what + " Σdy·(x − center)", e[1], e[3], sdyx, 1e-12);
    }

    /**
     * The per-channel coefficient loops of VectorLoops give the very bits of the scalar formulas (PieceLoops'
     * defaults, which the channel-wise walks use one channel at a time), for C below, at and above the vector length
     * with a scalar tail, gamma and beta present and absent, statistics whose M2 rounds below 0, NaN and infinity.
     */
    @Test
    void vectorCoefficientsEqualTheScalarFormulasBitForBit() {
        PieceLoops scalar = new PieceLoops() { // the interface's defaults, nothing else called
            @Override public int rowAlignment(int channels) { throw new AssertionError(); }
            @Override public int coefficientLength(int channels) { throw new AssertionError(); }
            @Override public void centeredSumsChannelsFirst(float[] x, int lo, int hi, int channels, int inner,
                    float[] center, double[] s1, double[] s2) { throw new AssertionError(); }
            @Override public void centeredSumsChannelsLast(float[] x, int r0, int r1, int channels, float[] center,
                    double[] s1, double[] s2) { throw new AssertionError(); }
            @Override public void applyChannelsFirst(float[] x, float[] y, int lo, int hi, int channels, int inner,
                    float[] center, float[] scale, float[] shift) { throw new AssertionError(); }
            @Override public void applyChannelsLast(float[] x, float[] y, int r0, int r1, int channels,
                    float[] center, float[] scale, float[] shift) { throw new AssertionError(); }
            @Override public void gradientSumsChannelsFirst(float[] x, float[] dy, int lo, int hi, int channels,
                    int inner, float[] center, double[] sdy, double[] sdyx) { throw new AssertionError(); }
            @Override public void gradientSumsChannelsLast(float[] x, float[] dy, int r0, int r1, int channels,
                    float[] center, double[] sdy, double[] sdyx) { throw new AssertionError(); }
            @Override public void dxChannelsFirst(float[] x, float[] dy, float[] dx, int lo, int hi, int channels,
                    int inner, float[] center, float[] kdy, float[] kx, float[] k0) { throw new AssertionError(); }
            @Override public void dxChannelsLast(float[] x, float[] dy, float[] dx, int r0, int r1, int channels,
                    float[] center, float[] kdy, float[] kx, float[] k0) { throw new AssertionError(); }
            @Override public void evalBackwardChannelsFirst(float[] x, float[] dy, float[] dx, int lo, int hi,
                    int channels, int inner, float[] center, float[] kdy, double[] sdy, double[] sdyx) {
                throw new AssertionError();
            }
            @Override public void evalBackwardChannelsLast(float[] x, float[] dy, float[] dx, int r0, int r1,
                    int channels, float[] center, float[] kdy, double[] sdy, double[] sdyx) {
                throw new AssertionError();
            }
            @Override public void channelSums(float[] x, int c, int batches, int channels, int inner, float center,
                    double[] out) { throw new AssertionError(); }
            @Override public void channelApply(float[] x, float[] y, int c, int batches, int channels, int inner,
                    float center, float scale, float shift) { throw new AssertionError(); }
            @Override public void channelGradientSums(float[] x, float[] dy, int c, int batches, int channels,
                    int inner, float center, double[] out) { throw new AssertionError(); }
            @Override public void channelDx(float[] x, float[] dy, float[] dx, int c, int batches, int channels,
                    int inner, float center, float kdy, float kx, float k0) { throw new AssertionError(); }
        };
        PieceLoops vector = VectorLoops.INSTANCE;
        for (int c : new int[] {1, 5, 8, 13, 16, 37, 1000}) {
            SplittableRandom rng = TestData.random(911L * c);
            long m = 2 + rng.nextInt(5000);
            double[][] s1 = new double[3][c];
            double[][] s2 = new double[3][c];
            float[] center = TestData.normal(rng, c, 5, 3);
            for (int t = 0; t < 3; t++) {
                for (int k = 0; k < c; k++) {
                    s1[t][k] = rng.nextGaussian() * 40;
                    s2[t][k] = k % 5 == 3 ? 0 : Math.abs(rng.nextGaussian()) * m; // 0: M2 rounds below 0
                }
            }
            if (c > 4) {
                s1[1][2] = Double.NaN;
                s2[2][4] = Double.POSITIVE_INFINITY;
            }
            double[] mean = new double[c];
            double[] m2 = new double[c];
            double[] vMean = new double[c];
            double[] vM2 = new double[c];
            scalar.mergeStatistics(s1, s2, center, m, mean, m2);
            vector.mergeStatistics(s1, s2, center, m, vMean, vM2);
            assertBits("mean", mean, vMean);
            assertBits("m2", m2, vM2);
            float[] rm = TestData.normal(rng, c, 0, 1);
            float[] rv = TestData.normal(rng, c, 4, 1);
            float[] vRm = rm.clone();
            float[] vRv = rv.clone();
            scalar.updateRunning(mean, m2, m, 0.1, rm, rv);
            vector.updateRunning(mean, m2, m, 0.1, vRm, vRv);
            assertBits("runningMean", rm, vRm);
            assertBits("runningVar", rv, vRv);
            float[] gamma = TestData.normal(rng, c, 1, 0.5);
            float[] beta = TestData.normal(rng, c, 0, 1);
            for (boolean affine : new boolean[] {true, false}) {
                float[] g = affine ? gamma : null;
                float[] b = affine ? beta : null;
                float[][] sc = new float[4][c + 3]; // longer than C, as the extended coefficient arrays
                float[][] vc = new float[4][c + 3];
                for (float[] a : vc) Arrays.fill(a, Float.NaN); // beyond C: untouched
                for (float[] a : sc) Arrays.fill(a, Float.NaN);
                scalar.forwardCoefficients(mean, m2, m, g, b, 1e-5, sc[0], sc[1], sc[2], sc[3]);
                vector.forwardCoefficients(mean, m2, m, g, b, 1e-5, vc[0], vc[1], vc[2], vc[3]);
                for (int i = 0; i < 4; i++) assertBits("forward coefficient " + i + " affine " + affine, sc[i], vc[i]);
                for (float[] a : sc) Arrays.fill(a, Float.NaN);
                for (float[] a : vc) Arrays.fill(a, Float.NaN);
                float[] runningVar = rv.clone();
                runningVar[0] = -1e-6f; // below −eps: NaN
                scalar.inferenceCoefficients(g, b, runningVar, 1e-5, sc[0], sc[1]);
                vector.inferenceCoefficients(g, b, runningVar, 1e-5, vc[0], vc[1]);
                for (int i = 0; i < 2; i++) assertBits("inference coefficient " + i + " affine " + affine, sc[i], vc[i]);
                for (float[] a : sc) Arrays.fill(a, Float.NaN);
                for (float[] a : vc) Arrays.fill(a, Float.NaN);
                float[] invstd = TestData.normal(rng, c, 2, 0.5);
                double[] sumDy = new double[c];
                double[] sumDyXhat = new double[c];
                for (int k = 0; k < c; k++) {
                    sumDy[k] = rng.nextGaussian() * 100;
                    sumDyXhat[k] = rng.nextGaussian() * 100;
                }
                scalar.dxCoefficients(g, invstd, m, sumDy, sumDyXhat, sc[0], sc[1], sc[2]);
                vector.dxCoefficients(g, invstd, m, sumDy, sumDyXhat, vc[0], vc[1], vc[2]);
                for (int i = 0; i < 3; i++) assertBits("dx coefficient " + i + " affine " + affine, sc[i], vc[i]);
            }
        }
    }

    private static void assertBits(String what, double[] expected, double[] actual) {
        for (int i = 0; i < expected.length; i++) {
            if (Double.doubleToLongBits(expected[i]) != Double.doubleToLongBits(actual[i])) {
                fail(what + "[" + i + "] of " + expected.length + ": scalar " + expected[i] + ", vector " + actual[i]);
            }
        }
    }

    private static void assertBits(String what, float[] expected, float[] actual) {
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToIntBits(expected[i]) != Float.floatToIntBits(actual[i])) {
                fail(what + "[" + i + "] of " + expected.length + ": scalar " + expected[i] + ", vector " + actual[i]);
            }
        }
    }

    /**
     * The vector ReLU epilogue and gating give ReluMask's bits: pre-activations with +0, −0, NaN of both signs,
     * ±infinity, subnormals and values that round to 0 when z is added; ranges of whole words with a partial last word;
     * with and without z and the mask; out aliasing pre; gating over ranges that start and end inside words, g
     * aliasing dy.
     */
    @Test
    void vectorReluEpilogueAndGateGiveReluMasksBits() {
        SplittableRandom rng = TestData.random(91);
        int n = 1000;
        float[] special = {0f, -0f, Float.NaN, Float.intBitsToFloat(0xffc00000), Float.POSITIVE_INFINITY,
            Float.NEGATIVE_INFINITY, Float.MIN_VALUE, -Float.MIN_VALUE, 1e-40f, -1e-40f};
        float[] pre = new float[n];
        float[] z = new float[n];
        for (int i = 0; i < n; i++) {
            pre[i] = rng.nextInt(4) == 0 ? special[rng.nextInt(special.length)] : (float) rng.nextGaussian();
            z[i] = rng.nextInt(5) == 0 ? -pre[i] : (float) rng.nextGaussian(); // v = +0 exactly, or −0 for −0 + −0
        }
        int[][] ranges = {{0, 1000}, {32, 992}, {96, 128}, {0, 0}, {960, 1000}, {64, 96}};
        for (int[] r : ranges) {
            for (boolean withZ : new boolean[] {false, true}) {
                for (boolean withMask : new boolean[] {false, true}) {
                    String what = "epilogue [" + r[0] + ", " + r[1] + ") z " + withZ + " mask " + withMask;
                    float[] expected = TestData.poisoned(n);
                    float[] actual = TestData.poisoned(n);
                    int[] em = withMask ? new int[(n + 31) / 32] : null;
                    int[] am = withMask ? new int[(n + 31) / 32] : null;
                    if (withMask) {
                        Arrays.fill(em, 0x5a5a5a5a);
                        Arrays.fill(am, 0x5a5a5a5a);
                    }
                    ReluMask.apply(pre, withZ ? z : null, expected, em, r[0], r[1]);
                    VectorLoops.INSTANCE.reluEpilogue(pre, withZ ? z : null, actual, am, r[0], r[1]);
                    assertBits(what, expected, actual);
                    if (withMask) assertEquals(Arrays.toString(em), Arrays.toString(am), what + ": mask");
                    float[] inPlace = pre.clone();
                    VectorLoops.INSTANCE.reluEpilogue(inPlace, withZ ? z : null, inPlace, am, r[0], r[1]);
                    for (int i = r[0]; i < r[1]; i++) {
                        if (Float.floatToIntBits(inPlace[i]) != Float.floatToIntBits(expected[i])) {
                            fail(what + ", in place: element " + i);
                        }
                    }
                }
            }
        }
        int[] mask = new int[(n + 31) / 32];
        for (int w = 0; w < mask.length; w++) mask[w] = rng.nextInt();
        for (int[] r : new int[][] {{0, 1000}, {5, 999}, {33, 64}, {40, 41}, {7, 7}}) {
            float[] expected = TestData.poisoned(n);
            float[] actual = TestData.poisoned(n);
            ReluMask.gate(pre, mask, expected, r[0], r[1]);
            VectorLoops.INSTANCE.gate(pre, mask, actual, r[0], r[1]);
            assertBits("gate [" + r[0] + ", " + r[1] + ")", expected, actual);
            float[] inPlace = pre.clone();
            VectorLoops.INSTANCE.gate(inPlace, mask, inPlace, r[0], r[1]);
            for (int i = r[0]; i < r[1]; i++) {
                if (Float.floatToIntBits(inPlace[i]) != Float.floatToIntBits(expected[i])) fail("gate in place " + i);
            }
        }
    }

    @Test
    void theVectorLoopsRunInTheTestsAndCanBeTurnedOff() {
        try (CpuBatchNormOps vector = new CpuBatchNormOps(2); CpuBatchNormOps scalar = new CpuBatchNormOps(2, 1,
                false)) {
            assertEquals("vector", vector.loopsName());
            assertEquals("scalar", scalar.loopsName());
        }
    }
}
