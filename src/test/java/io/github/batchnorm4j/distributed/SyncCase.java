package io.github.batchnorm4j.distributed;

import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.testing.Reference64;
import io.github.batchnorm4j.testing.TestData;
import io.github.batchnorm4j.testing.Tolerances;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * One data-parallel batch-norm case: a batch of N = B₁ + … + B_K samples cut into K slices along N (rank r holds
 * B_r samples), seeded random inputs, and the float64 reference of single-device batch norm over the whole batch.
 * Slices along N are contiguous in both layouts (N is the outermost axis), so the whole batch is the concatenation of
 * the slices.
 */
final class SyncCase {
    static final double EPS = 1e-5;
    static final double MOMENTUM = 0.1;

    final Layout layout;
    final int channels;
    final long[] spatial;
    final int[] batches;
    final Shape whole;
    final float[] x;
    final float[] dy;
    final float[] gamma;
    final float[] beta;
    final float[] runningMean;
    final float[] runningVar;

    /** What one rank's forward and backward wrote. */
    record Output(float[] y, float[] saveMean, float[] saveInvstd, float[] runningMean, float[] runningVar,
                  float[] dx, float[] dgamma, float[] dbeta) {
    }

    SyncCase(Layout layout, int channels, long[] spatial, int... batches) {
        this.layout = layout;
        this.channels = channels;
        this.spatial = spatial.clone();
        this.batches = batches.clone();
        this.whole = shape(Arrays.stream(batches).sum());
        SplittableRandom rng = TestData.random(31L * hashCode() + 7);
        x = TestData.perChannelNormal(rng, whole);
        dy = TestData.normal(rng, x.length, 0.3, 1.0);
        gamma = TestData.uniform(rng, channels, 0.5, 1.5);
        beta = TestData.uniform(rng, channels, -1, 1);
        runningMean = TestData.uniform(rng, channels, -0.5, 0.5);
        runningVar = TestData.uniform(rng, channels, 0.5, 2);
    }

    /** K = 2, 3, 4 with equal and unequal slices (a slice of one sample among them), in the given layout. */
    static List<SyncCase> matrix(Layout layout, int channels, long... spatial) {
        List<SyncCase> out = new ArrayList<>();
        for (int[] b : new int[][] {{3, 3}, {1, 6}, {2, 2, 2}, {4, 1, 2}, {2, 2, 2, 2}, {3, 1, 5, 2}}) {
            out.add(new SyncCase(layout, channels, spatial, b));
        }
        return out;
    }

    int ranks() {
        return batches.length;
    }

    /** The shape of n samples in this case's layout. */
    Shape shape(long n) {
        long[] dims = new long[2 + spatial.length];
        dims[0] = n;
        if (layout == Layout.CHANNELS_FIRST) {
            dims[1] = channels;
            System.arraycopy(spatial, 0, dims, 2, spatial.length);
        } else {
            System.arraycopy(spatial, 0, dims, 1, spatial.length);
            dims[dims.length - 1] = channels;
        }
        return Shape.of(layout, dims);
    }

    Shape rankShape(int r) {
        return shape(batches[r]);
    }

    /** Rank r's contiguous part of a whole-batch tensor. */
    float[] slice(float[] wholeTensor, int r) {
        long per = whole.elementCount() / whole.batch();
        int from = 0;
        for (int q = 0; q < r; q++) from += (int) (batches[q] * per);
        return Arrays.copyOfRange(wholeTensor, from, from + (int) (batches[r] * per));
    }

    /** The ranks' slices of a tensor, concatenated in rank order. */
    static float[] concat(List<float[]> parts) {
        int n = parts.stream().mapToInt(a -> a.length).sum();
        float[] out = new float[n];
        int o = 0;
        for (float[] p : parts) {
            System.arraycopy(p, 0, out, o, p.length);
            o += p.length;
        }
        return out;
    }

    /**
     * Asserts that the ranks' outputs are single-device batch norm over the whole batch within the tolerances of
     * {@link Tolerances}, and that everything shared (saved and running statistics, dgamma, dbeta) is bitwise the same
     * on every rank.
     */
    void assertMatchesSingleDevice(List<Output> out) {
        Reference64.Forward f = Reference64.forwardTraining(whole, x, gamma, beta, EPS, runningMean, runningVar, MOMENTUM);
        List<float[]> ys = new ArrayList<>();
        List<float[]> dxs = new ArrayList<>();
        for (Output o : out) {
            ys.add(o.y());
            dxs.add(o.dx());
        }
        Tolerances.assertForward("y", f.y(), concat(ys));
        Output first = out.get(0);
        Tolerances.assertForward("saveMean", f.mean(), first.saveMean());
        Tolerances.assertForward("saveInvstd", f.invstd(), first.saveInvstd());
        Tolerances.assertForward("runningMean", f.runningMean(), first.runningMean());
        Tolerances.assertForward("runningVar", f.runningVar(), first.runningVar());
        Reference64.Backward b = Reference64.backwardTraining(whole, x, dy, gamma, first.saveMean(), first.saveInvstd());
        Tolerances.assertDx(b, concat(dxs));
        Tolerances.assertDgamma(b, first.dgamma());
        Tolerances.assertDbeta(b, first.dbeta());
        for (int r = 1; r < out.size(); r++) {
            Output o = out.get(r);
            String at = " of rank " + r + " vs rank 0 in " + this;
            assertArrayEquals(first.saveMean(), o.saveMean(), "saveMean" + at);
            assertArrayEquals(first.saveInvstd(), o.saveInvstd(), "saveInvstd" + at);
            assertArrayEquals(first.runningMean(), o.runningMean(), "runningMean" + at);
            assertArrayEquals(first.runningVar(), o.runningVar(), "runningVar" + at);
            assertArrayEquals(first.dgamma(), o.dgamma(), "dgamma" + at);
            assertArrayEquals(first.dbeta(), o.dbeta(), "dbeta" + at);
        }
    }

    /** Asserts two runs wrote the same bits everywhere. */
    void assertSameBits(List<Output> a, List<Output> b) {
        assertEquals(a.size(), b.size());
        for (int r = 0; r < a.size(); r++) {
            String at = " of rank " + r + " differs between runs in " + this;
            Output p = a.get(r);
            Output q = b.get(r);
            assertArrayEquals(p.y(), q.y(), "y" + at);
            assertArrayEquals(p.dx(), q.dx(), "dx" + at);
            assertArrayEquals(p.saveMean(), q.saveMean(), "saveMean" + at);
            assertArrayEquals(p.saveInvstd(), q.saveInvstd(), "saveInvstd" + at);
            assertArrayEquals(p.runningMean(), q.runningMean(), "runningMean" + at);
            assertArrayEquals(p.runningVar(), q.runningVar(), "runningVar" + at);
            assertArrayEquals(p.dgamma(), q.dgamma(), "dgamma" + at);
            assertArrayEquals(p.dbeta(), q.dbeta(), "dbeta" + at);
        }
    }

    @Override
    public String toString() {
        return layout + " C=" + channels + " spatial=" + Arrays.toString(spatial) + " batches=" + Arrays.toString(batches);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(batches) * 31 + Arrays.hashCode(spatial) * 7 + layout.ordinal() * 3 + channels;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof SyncCase c && c.toString().equals(toString());
    }
}
