package io.github.batchnorm4j.cli;

import static io.github.batchnorm4j.testing.Tolerances.assertDbeta;
import static io.github.batchnorm4j.testing.Tolerances.assertDgamma;
import static io.github.batchnorm4j.testing.Tolerances.assertDx;
import static io.github.batchnorm4j.testing.Tolerances.assertForward;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.testing.Reference64;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * forward and backward through the launcher on the CPU backend, on random .npy inputs of several layouts and ranks
 * (NCHW, NHWC, NC with M = 2, a 3-D input with C = 1, a 5-D channels-last input), against {@link Reference64} with
 * the tolerances of {@link io.github.batchnorm4j.testing.Tolerances}.
 */
class CliComputeTest {
    private static final double EPS = 1e-5;

    @TempDir
    Path dir;

    /** Random values with a per-channel-ish offset; never zeros. */
    static float[] random(Random r, int n, double mu, double sigma) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (mu + sigma * r.nextGaussian());
        return a;
    }

    static float[] ones(int n) {
        float[] a = new float[n];
        java.util.Arrays.fill(a, 1f);
        return a;
    }

    static float[] uniform(Random r, int n, double lo, double hi) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (lo + (hi - lo) * r.nextDouble());
        return a;
    }

    private Path save(String name, long[] dims, float[] data) throws IOException {
        Path p = dir.resolve(name);
        Npy.write(p, dims, data);
        return p;
    }

    private float[] load(String relative, long... expectedDims) throws IOException {
        NpyArray a = Npy.read(dir.resolve(relative));
        assertArrayEquals(expectedDims, a.dims(), relative + ": dims");
        assertEquals("<f4", a.sourceDtype(), relative + ": outputs are float32");
        return a.data();
    }

    private Launcher.Result ok(String... args) throws Exception {
        Launcher.Result r = Launcher.run(dir, args);
        assertEquals(0, r.exitCode(), r::toString);
        assertTrue(r.stderr().isBlank(), r::toString);
        return r;
    }

    @Test
    void nchwTrainWithAllInputsThenBackwardRecomputingStatistics() throws Exception {
        Random r = new Random(11);
        long[] dims = {3, 4, 5, 6};
        Shape shape = Shape.channelsFirst(dims);
        int n = shape.elementCountAsInt();
        float[] x = random(r, n, 3.0, 2.0);
        float[] gamma = uniform(r, 4, 0.5, 1.5);
        float[] beta = uniform(r, 4, -1, 1);
        float[] rm = uniform(r, 4, -1, 1);
        float[] rv = uniform(r, 4, 0.5, 2);
        float[] dy = random(r, n, 0, 1);
        save("x.npy", dims, x);
        save("g.npy", new long[] {4}, gamma);
        save("b.npy", new long[] {4}, beta);
        save("rm.npy", new long[] {4}, rm);
        save("rv.npy", new long[] {4}, rv);
        save("dy.npy", dims, dy);

        Launcher.Result fwd = ok("forward", "--x", "x.npy", "--gamma", "g.npy", "--beta", "b.npy", "--running-mean",
                "rm.npy", "--running-var", "rv.npy", "--layout", "NCHW", "--momentum", "0.3", "--backend", "cpu",
                "--out", "fwd");
        assertTrue(fwd.stdout().contains("num_batches_tracked 1"), fwd::toString);
        Reference64.Forward ref = Reference64.forwardTraining(shape, x, gamma, beta, EPS, rm, rv, 0.3);
        assertForward("y", ref.y(), load("fwd/y.npy", dims));
        assertForward("save_mean", ref.mean(), load("fwd/save_mean.npy", 4));
        assertForward("save_invstd", ref.invstd(), load("fwd/save_invstd.npy", 4));
        assertForward("running_mean", ref.runningMean(), load("fwd/running_mean.npy", 4));
        assertForward("running_var", ref.runningVar(), load("fwd/running_var.npy", 4));

        ok("backward", "--x", "x.npy", "--dy", "dy.npy", "--gamma", "g.npy", "--backend", "cpu", "--out", "bwd");
        Reference64.Backward grad = Reference64.backwardTraining(shape, x, dy, gamma, EPS);
        assertDx(grad, load("bwd/dx.npy", dims));
        assertDgamma(grad, load("bwd/dgamma.npy", 4));
        assertDbeta(grad, load("bwd/dbeta.npy", 4));
    }

    /** A float64 .npy written byte by byte here (not by the code under test). */
    private Path saveFloat64(String name, long[] dims, double[] values) throws IOException {
        StringBuilder shape = new StringBuilder();
        for (long d : dims) shape.append(d).append(", ");
        String dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (" + shape.substring(0, shape.length() - 2)
                + "), }";
        int total = 10 + dict.length() + 1;
        String header = dict + " ".repeat((64 - total % 64) % 64) + "\n";
        ByteBuffer b = ByteBuffer.allocate(10 + header.length() + 8 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        b.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0}).putShort((short) header.length());
        b.put(header.getBytes(StandardCharsets.US_ASCII));
        for (double v : values) b.putDouble(v);
        Path p = dir.resolve(name);
        Files.write(p, b.array());
        return p;
    }

    @Test
    void nhwcCumulativeMomentumFromFloat64InputThenBackwardWithSavedStatistics() throws Exception {
        Random r = new Random(12);
        long[] dims = {2, 5, 6, 4};
        Shape shape = Shape.channelsLast(dims);
        int n = shape.elementCountAsInt();
        double[] x64 = new double[n];
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x64[i] = -1.5 + 0.7 * r.nextGaussian() + (i % 4); // channel-dependent mean
            x[i] = (float) x64[i]; // what the tool computes with: float64 inputs are rounded to float32
        }
        float[] rm = uniform(r, 4, -1, 1);
        float[] rv = uniform(r, 4, 0.5, 2);
        float[] dy = random(r, n, 0, 1);
        saveFloat64("x.npy", dims, x64);
        save("rm.npy", new long[] {4}, rm);
        save("rv.npy", new long[] {4}, rv);
        save("dy.npy", dims, dy);

        // K = 3 batches already tracked: this step is the 4th, weight 1/4.
        Launcher.Result fwd = ok("forward", "--x", "x.npy", "--running-mean", "rm.npy", "--running-var", "rv.npy",
                "--layout", "NHWC", "--momentum", "cumulative", "--num-batches-tracked", "3", "--backend", "cpu",
                "--out", "fwd");
        assertTrue(fwd.stdout().contains("num_batches_tracked 4"), fwd::toString);
        Reference64.Forward ref = Reference64.forwardTraining(shape, x, null, null, EPS, rm, rv, 0.25);
        assertForward("y", ref.y(), load("fwd/y.npy", dims));
        assertForward("save_mean", ref.mean(), load("fwd/save_mean.npy", 4));
        assertForward("save_invstd", ref.invstd(), load("fwd/save_invstd.npy", 4));
        assertForward("running_mean", ref.runningMean(), load("fwd/running_mean.npy", 4));
        assertForward("running_var", ref.runningVar(), load("fwd/running_var.npy", 4));

        ok("backward", "--x", "x.npy", "--dy", "dy.npy", "--save-mean", "fwd/save_mean.npy", "--save-invstd",
                "fwd/save_invstd.npy", "--layout", "NHWC", "--backend", "cpu", "--out", "bwd");
        Reference64.Backward grad = Reference64.backwardTraining(shape, x, dy, null, EPS);
        assertDx(grad, load("bwd/dx.npy", dims));
        assertDgamma(grad, load("bwd/dgamma.npy", 4));
        assertDbeta(grad, load("bwd/dbeta.npy", 4));
    }

    @Test
    void plainNcWithTwoRowsAndAffineOff() throws Exception {
        long[] dims = {2, 7};
        Shape shape = Shape.channelsLast(dims);
        // M = 2 per channel: keep the two values of each channel apart (well-conditioned, docs/design.md §6).
        float[] x = new float[14];
        Random r = new Random(13);
        for (int c = 0; c < 7; c++) {
            x[c] = (float) (c - 3 + 0.2 * r.nextGaussian());
            x[7 + c] = x[c] + (float) (1 + r.nextDouble());
        }
        float[] dy = random(r, 14, 0, 1);
        save("x.npy", dims, x);
        save("dy.npy", dims, dy);

        ok("forward", "--x", "x.npy", "--layout", "NC", "--no-affine", "--backend", "cpu", "--out", "fwd");
        Reference64.Forward ref = Reference64.forwardTraining(shape, x, null, null, EPS, new float[7], ones(7), 0.1);
        assertForward("y", ref.y(), load("fwd/y.npy", dims));
        assertForward("save_invstd", ref.invstd(), load("fwd/save_invstd.npy", 7));
        assertForward("running_var (defaults 0/1, unbiased with M = 2)", ref.runningVar(), load("fwd/running_var.npy", 7));

        ok("backward", "--x", "x.npy", "--dy", "dy.npy", "--layout", "NC", "--backend", "cpu", "--out", "bwd");
        Reference64.Backward grad = Reference64.backwardTraining(shape, x, dy, null, EPS);
        assertDx(grad, load("bwd/dx.npy", dims));
        assertDgamma(grad, load("bwd/dgamma.npy", 7));
        assertDbeta(grad, load("bwd/dbeta.npy", 7));
    }

    @Test
    void threeDimensionalSingleChannelEvalForwardAndBackward() throws Exception {
        Random r = new Random(14);
        long[] dims = {4, 1, 9};
        Shape shape = Shape.channelsFirst(dims);
        float[] x = random(r, 36, -2, 1.5);
        float[] gamma = {-0.8f};
        float[] beta = {0.4f};
        float[] rm = {-1.7f};
        float[] rv = {2.3f};
        float[] dy = random(r, 36, 0, 1);
        save("x.npy", dims, x);
        save("g.npy", new long[] {1}, gamma);
        save("b.npy", new long[] {1}, beta);
        save("rm.npy", new long[] {1}, rm);
        save("rv.npy", new long[] {1}, rv);
        save("dy.npy", dims, dy);

        ok("forward", "--x", "x.npy", "--gamma", "g.npy", "--beta", "b.npy", "--running-mean", "rm.npy",
                "--running-var", "rv.npy", "--layout", "NCL", "--mode", "eval", "--backend", "cpu", "--out", "fwd");
        assertForward("y", Reference64.forwardEval(shape, x, gamma, beta, rm, rv, EPS), load("fwd/y.npy", dims));
        assertFalse(Files.exists(dir.resolve("fwd/save_mean.npy")), "eval mode saves no statistics");
        assertFalse(Files.exists(dir.resolve("fwd/running_mean.npy")), "eval mode leaves running statistics alone");

        ok("backward", "--x", "x.npy", "--dy", "dy.npy", "--gamma", "g.npy", "--running-mean", "rm.npy",
                "--running-var", "rv.npy", "--mode", "eval", "--layout", "NCL", "--backend", "cpu", "--out", "bwd");
        Reference64.Backward grad = Reference64.backwardEval(shape, x, dy, gamma, rm, rv, EPS);
        assertDx(grad, load("bwd/dx.npy", dims));
        assertDgamma(grad, load("bwd/dgamma.npy", 1));
        assertDbeta(grad, load("bwd/dbeta.npy", 1));
    }

    @Test
    void fiveDimensionalChannelsLastWithoutRunningStatistics() throws Exception {
        Random r = new Random(15);
        long[] dims = {2, 3, 2, 3, 5};
        Shape shape = Shape.channelsLast(dims);
        int n = shape.elementCountAsInt();
        float[] x = random(r, n, 0.5, 3);
        float[] gamma = uniform(r, 5, 0.5, 1.5);
        float[] beta = uniform(r, 5, -1, 1);
        save("x.npy", dims, x);
        save("g.npy", new long[] {5}, gamma);
        save("b.npy", new long[] {5}, beta);

        ok("forward", "--x", "x.npy", "--gamma", "g.npy", "--beta", "b.npy", "--layout", "NDHWC",
                "--no-running-stats", "--backend", "cpu", "--out", "train");
        Reference64.Forward ref = Reference64.forwardTraining(shape, x, gamma, beta, EPS, null, null, 0);
        assertForward("y", ref.y(), load("train/y.npy", dims));
        assertForward("save_mean", ref.mean(), load("train/save_mean.npy", 5));
        assertFalse(Files.exists(dir.resolve("train/running_mean.npy")), "no running statistics tracked");
        assertFalse(Files.exists(dir.resolve("train/running_var.npy")), "no running statistics tracked");

        // Eval without tracked statistics normalizes with the batch statistics, as PyTorch does.
        ok("forward", "--x", "x.npy", "--gamma", "g.npy", "--beta", "b.npy", "--layout", "channels-last",
                "--no-running-stats", "--mode", "eval", "--backend", "cpu", "--out", "eval");
        assertForward("eval y", ref.y(), load("eval/y.npy", dims));
    }
}
