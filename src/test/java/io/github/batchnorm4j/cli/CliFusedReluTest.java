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
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code forward --activation relu [--residual Z]} and {@code backward --activation relu [--mask M]} in process on the
 * CPU backend, against {@link Reference64}: y = relu(bn(x) + z) and mask.npy (NumPy's packbits layout), backward
 * with the forward's mask file and with the mask recomputed (the same bits), dz.npy, and the refusals.
 */
class CliFusedReluTest {
    private static final double EPS = 1e-5;

    @TempDir
    Path dir;

    private String save(String name, long[] dims, float[] data) throws Exception {
        Path p = dir.resolve(name);
        Npy.write(p, dims, data);
        return p.toString();
    }

    private float[] load(String name) throws Exception {
        return Npy.read(dir.resolve(name)).data();
    }

    private InProcess.Result ok(String... args) {
        InProcess.Result r = InProcess.run(args);
        assertEquals(0, r.exitCode(), r::toString);
        return r;
    }

    private String refused(String... args) {
        InProcess.Result r = InProcess.run(args);
        assertEquals(2, r.exitCode(), r::toString);
        return r.errorLine();
    }

    @Test
    void forwardWithResidualThenBackwardThroughTheMaskFileAndRecomputed() throws Exception {
        Random r = new Random(5);
        long[] dims = {3, 4, 5, 6};
        Shape shape = Shape.channelsFirst(dims);
        int n = shape.elementCountAsInt();
        float[] x = CliComputeTest.random(r, n, 1.0, 2.0);
        float[] z = CliComputeTest.random(r, n, 0.2, 1.0);
        float[] dy = CliComputeTest.random(r, n, 0.0, 1.0);
        float[] gamma = CliComputeTest.uniform(r, 4, 0.5, 1.5);
        float[] beta = CliComputeTest.random(r, 4, 0, 1);
        String xf = save("x.npy", dims, x);
        String zf = save("z.npy", dims, z);
        String dyf = save("dy.npy", dims, dy);
        String gf = save("g.npy", new long[] {4}, gamma);
        String bf = save("b.npy", new long[] {4}, beta);
        String fwd = dir.resolve("fwd").toString();

        InProcess.Result f = ok("forward", "--x", xf, "--residual", zf, "--gamma", gf, "--beta", bf, "--activation",
                "relu", "--backend", "cpu", "--out", fwd);
        assertTrue(f.stdout().contains("y = relu(bn(x) + z)"), f.stdout());
        Reference64.Forward e = Reference64.forwardTraining(shape, x, gamma, beta, EPS, null, null, 0);
        double[] v = Reference64.preActivation(e.y(), Reference64.wide(z));
        assertForward("y", Reference64.relu(v), load("fwd/y.npy"));
        Npy.ByteArray m = Npy.readBytes(dir.resolve("fwd/mask.npy"));
        assertEquals("|u1", m.descr());
        assertArrayEquals(new long[] {4L * ((n + 31) / 32)}, m.dims(), "4 bytes per 32 elements");
        int[] words = MaskFile.read("--mask", dir.resolve("fwd/mask.npy"), n);
        boolean[] bits = Reference64.bits(words, n);
        for (int i = 0; i < n; i++) assertEquals(v[i] > 0, bits[i], "mask bit " + i + " (v = " + v[i] + ")");
        // np.unpackbits(mask, bitorder='little'): bit k of byte j is element 8j + k.
        for (int i = 0; i < n; i++) assertEquals(bits[i], (m.data()[i / 8] >> (i % 8) & 1) == 1, "packbits bit " + i);

        String b1 = dir.resolve("b1").toString();
        ok("backward", "--x", xf, "--dy", dyf, "--gamma", gf, "--activation", "relu", "--mask",
                dir.resolve("fwd/mask.npy").toString(), "--residual", zf, "--save-mean",
                dir.resolve("fwd/save_mean.npy").toString(), "--save-invstd",
                dir.resolve("fwd/save_invstd.npy").toString(), "--backend", "cpu", "--out", b1);
        Reference64.Backward g = Reference64.backwardTraining(shape, Reference64.wide(x),
                Reference64.gate(Reference64.wide(dy), bits), Reference64.wide(gamma),
                Reference64.wide(load("fwd/save_mean.npy")), Reference64.wide(load("fwd/save_invstd.npy")));
        assertDx(g, load("b1/dx.npy"));
        assertDgamma(g, load("b1/dgamma.npy"));
        assertDbeta(g, load("b1/dbeta.npy"));
        float[] dz = load("b1/dz.npy");
        for (int i = 0; i < n; i++) assertEquals(bits[i] ? dy[i] : 0f, dz[i], "dz " + i);

        // Recomputing the mask (and the statistics) from x, z, gamma and beta: the same bits, the same results.
        String b2 = dir.resolve("b2").toString();
        InProcess.Result rb = ok("backward", "--x", xf, "--dy", dyf, "--gamma", gf, "--beta", bf, "--activation",
                "relu", "--residual", zf, "--backend", "cpu", "--out", b2);
        assertTrue(rb.stdout().contains("ReLU mask recomputed from x"), rb.stdout());
        assertArrayEquals(load("b1/dx.npy"), load("b2/dx.npy"));
        assertArrayEquals(dz, load("b2/dz.npy"));

        // Without --residual no dz.npy.
        String b3 = dir.resolve("b3").toString();
        ok("backward", "--x", xf, "--dy", dyf, "--activation", "relu", "--mask", dir.resolve("fwd/mask.npy").toString(),
                "--backend", "cpu", "--out", b3);
        assertFalse(Files.exists(dir.resolve("b3/dz.npy")));
    }

    @Test
    void evalForwardAndBooleanMaskFiles() throws Exception {
        Random r = new Random(6);
        long[] dims = {6, 5};   // [N, C]: 30 elements, a partial last word
        Shape shape = Shape.channelsLast(dims);
        float[] x = CliComputeTest.random(r, 30, 0.0, 1.0);
        float[] rm = CliComputeTest.random(r, 5, 0.0, 0.5);
        float[] rv = CliComputeTest.uniform(r, 5, 0.5, 2);
        String xf = save("x.npy", dims, x);
        String rmf = save("rm.npy", new long[] {5}, rm);
        String rvf = save("rv.npy", new long[] {5}, rv);
        ok("forward", "--x", xf, "--mode", "eval", "--running-mean", rmf, "--running-var", rvf, "--activation",
                "RELU", "--backend", "cpu", "--out", dir.resolve("e").toString());
        double[] v = Reference64.forwardEval(shape, x, null, null, rm, rv, EPS);
        assertForward("eval y", Reference64.relu(v), load("e/y.npy"));

        // A boolean mask (np.save('m.npy', v > 0)) is read too.
        byte[] header = Npy.headerBytes("|b1", dims);
        byte[] data = new byte[30];
        for (int i = 0; i < 30; i++) data[i] = (byte) (v[i] > 0 ? 1 : 0);
        Path bool = dir.resolve("bool.npy");
        Files.write(bool, concat(header, data));
        assertArrayEquals(MaskFile.read("--mask", dir.resolve("e/mask.npy"), 30), MaskFile.read("--mask", bool, 30));
    }

    @Test
    void badFusedUsageIsRefusedNamingTheOption() throws Exception {
        long[] dims = {2, 3, 4};
        float[] x = CliComputeTest.random(new Random(7), 24, 0, 1);
        String xf = save("x.npy", dims, x);
        String out = dir.resolve("o").toString();
        assertEquals("error: --residual: needs --activation relu (y = relu(bn(x) + z))",
                refused("forward", "--x", xf, "--residual", xf, "--out", out));
        assertEquals("error: --activation: expected none or relu, got gelu",
                refused("forward", "--x", xf, "--activation", "gelu", "--out", out));
        assertTrue(refused("forward", "--x", xf, "--activation", "relu", "--residual",
                save("z.npy", new long[] {2, 3, 5}, new float[30]), "--out", out)
                .contains("--residual " + dir.resolve("z.npy") + ": expected the shape of x (2,3,4)"));
        assertEquals("error: --mask: needs --activation relu",
                refused("backward", "--x", xf, "--dy", xf, "--mask", xf, "--out", out));
        assertTrue(refused("backward", "--x", xf, "--dy", xf, "--activation", "relu", "--mask", xf, "--out", out)
                .contains("unsupported dtype '<f4': expected uint8"));
        Path shortMask = dir.resolve("short.npy");
        Npy.writeBytes(shortMask, new byte[2]);
        assertTrue(refused("backward", "--x", xf, "--dy", xf, "--activation", "relu", "--mask", shortMask.toString(),
                "--out", out).contains("expected a packed mask of 3 to 4 bytes"));
        Path extra = dir.resolve("extra.npy");
        Npy.writeBytes(extra, new byte[] {0, 0, 0, 1});   // bit 24: past 24 elements
        assertTrue(refused("backward", "--x", xf, "--dy", xf, "--activation", "relu", "--mask", extra.toString(),
                "--out", out).contains("bits set past the last of x's 24 elements"));
        assertTrue(refused("backward", "--x", xf, "--dy", xf, "--activation", "relu", "--mask", extra.toString(),
                "--beta", xf, "--out", out).startsWith("error: --beta: only used to recompute the ReLU mask"));
        assertFalse(Files.exists(dir.resolve("o")), "nothing written");
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] c = new byte[a.length + b.length];
        System.arraycopy(a, 0, c, 0, a.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
}
