package io.github.batchnorm4j.cli;

import static io.github.batchnorm4j.testing.Tolerances.assertDbeta;
import static io.github.batchnorm4j.testing.Tolerances.assertDgamma;
import static io.github.batchnorm4j.testing.Tolerances.assertForward;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.ReluMask;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.cpu.CpuBatchNormOps;
import io.github.batchnorm4j.testing.HalfTolerances;
import io.github.batchnorm4j.testing.Reference64;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * forward and backward in float16 and bfloat16 from the command line: a {@code '<f2'} x runs in float16 and writes
 * {@code '<f2'} y and dx (and the fused ReLU's dz); {@code --dtype bfloat16} rounds float32 inputs once to bfloat16 and writes float32 files
 * holding exact bfloat16 values; statistics and parameter gradients stay float32. Results against {@link Reference64}
 * on the already-rounded inputs with {@link HalfTolerances}.
 */
class CliMixedPrecisionTest {
    private static final double EPS = 1e-5;

    @TempDir
    Path dir;

    private Path save(String name, long[] dims, float[] data) throws IOException {
        Path p = dir.resolve(name);
        Npy.write(p, dims, data);
        return p;
    }

    private Path save16(String name, long[] dims, short[] bits) throws IOException {
        Path p = dir.resolve(name);
        Npy.writeFloat16(p, dims, bits);
        return p;
    }

    private static InProcess.Result ok(String... args) {
        InProcess.Result r = InProcess.run(args);
        assertEquals(0, r.exitCode(), r::toString);
        return r;
    }

    /** An output read back as storage-type bits: '<f2' for float16; float32 of exact bfloat16 values for bfloat16. */
    private short[] stored(String relative, DType t, long... dims) throws IOException {
        NpyArray a = Npy.read(dir.resolve(relative));
        assertArrayEquals(dims, a.dims(), relative);
        assertEquals(t == DType.FLOAT16 ? "<f2" : "<f4", a.sourceDtype(), relative);
        for (float v : a.data()) {
            if (!Float.isNaN(v)) assertEquals(v, t.round(v), relative + " holds exact " + t + " values");
        }
        return t.encode(a.data());
    }

    private float[] float32(String relative, long... dims) throws IOException {
        NpyArray a = Npy.read(dir.resolve(relative));
        assertArrayEquals(dims, a.dims(), relative);
        assertEquals("<f4", a.sourceDtype(), relative + ": statistics and parameter gradients are float32");
        return a.data();
    }

    @Test
    void aFloat16FileRunsInFloat16AndWritesFloat16() throws IOException {
        Random r = new Random(5);
        long[] dims = {4, 3, 5, 6};
        Shape shape = Shape.channelsFirst(dims);
        int n = shape.elementCountAsInt();
        short[] x = new short[n];
        short[] dy = new short[n];
        for (int i = 0; i < n; i++) {
            x[i] = DType.FLOAT16.encode((float) (100 + 3 * r.nextGaussian()));  // |mean| 1e2, float16's hard case
            dy[i] = DType.FLOAT16.encode((float) r.nextGaussian());
        }
        float[] g = {0.5f, 1f, 1.5f};
        float[] b = {-1f, 0f, 2f};
        float[] rm = {0f, 1f, 2f};
        float[] rv = {1f, 2f, 3f};
        String xs = save16("x.npy", dims, x).toString();
        String dys = save16("dy.npy", dims, dy).toString();
        String gs = save("g.npy", new long[] {3}, g).toString();
        String bs = save("b.npy", new long[] {3}, b).toString();
        save("rm.npy", new long[] {3}, rm);
        save("rv.npy", new long[] {3}, rv);

        InProcess.Result fwd = ok("forward", "--x", xs, "--gamma", gs, "--beta", bs, "--running-mean",
                dir.resolve("rm.npy").toString(), "--running-var", dir.resolve("rv.npy").toString(), "--backend", "cpu",
                "--out", dir.resolve("fwd").toString());
        assertTrue(fwd.stdout().contains("on cpu in float16:"), fwd::toString);
        float[] xw = DType.FLOAT16.decode(x);
        Reference64.Forward ref = Reference64.forwardTraining(shape, xw, g, b, EPS, rm, rv, 0.1);
        HalfTolerances.assertY("y", DType.FLOAT16, ref.y(), stored("fwd/y.npy", DType.FLOAT16, dims));
        float[] mean = float32("fwd/save_mean.npy", 3);
        float[] invstd = float32("fwd/save_invstd.npy", 3);
        assertForward("save_mean", ref.mean(), mean);
        assertForward("save_invstd", ref.invstd(), invstd);
        assertForward("running_mean", ref.runningMean(), float32("fwd/running_mean.npy", 3));
        assertForward("running_var", ref.runningVar(), float32("fwd/running_var.npy", 3));

        ok("forward", "--x", xs, "--gamma", gs, "--beta", bs, "--running-mean", dir.resolve("rm.npy").toString(),
                "--running-var", dir.resolve("rv.npy").toString(), "--mode", "eval", "--backend", "cpu", "--out",
                dir.resolve("eval").toString());
        double[] eval = Reference64.forwardEval(shape, xw, g, b, rm, rv, EPS);
        HalfTolerances.assertY("eval y", DType.FLOAT16, eval, stored("eval/y.npy", DType.FLOAT16, dims));

        // backward with the forward's saved statistics, then recomputing them from x
        ok("backward", "--x", xs, "--dy", dys, "--gamma", gs, "--save-mean", dir.resolve("fwd/save_mean.npy")
                .toString(), "--save-invstd", dir.resolve("fwd/save_invstd.npy").toString(), "--backend", "cpu",
                "--out", dir.resolve("bwd").toString());
        Reference64.Backward grad = Reference64.backwardTraining(shape, xw, DType.FLOAT16.decode(dy), g, mean, invstd);
        HalfTolerances.assertDx(DType.FLOAT16, grad, stored("bwd/dx.npy", DType.FLOAT16, dims));
        assertDgamma(grad, float32("bwd/dgamma.npy", 3));
        assertDbeta(grad, float32("bwd/dbeta.npy", 3));
        InProcess.Result again = ok("backward", "--x", xs, "--dy", dys, "--gamma", gs, "--backend", "cpu", "--out",
                dir.resolve("bwd2").toString());
        assertTrue(again.stdout().contains("statistics recomputed from x"), again::toString);
        Reference64.Backward recomputed = Reference64.backwardTraining(shape, xw, DType.FLOAT16.decode(dy), g, EPS);
        HalfTolerances.assertDx(DType.FLOAT16, recomputed, stored("bwd2/dx.npy", DType.FLOAT16, dims));

        // --dtype float32 computes the '<f2' x in float32 and writes float32
        ok("forward", "--x", xs, "--dtype", "float32", "--backend", "cpu", "--out", dir.resolve("f32").toString());
        double[] plain = Reference64.forwardTraining(shape, xw, null, null, EPS, null, null, 0).y();
        assertForward("float32 y", plain, float32("f32/y.npy", dims));
    }

    @Test
    void bfloat16RoundsFloat32InputsOnceAndWritesExactBfloat16Values() throws IOException {
        Random r = new Random(6);
        long[] dims = {6, 7, 4};  // NHWC-like channels-last [N, L, C]
        Shape shape = Shape.channelsLast(dims);
        int n = shape.elementCountAsInt();
        float[] x = new float[n];
        float[] dy = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (1e4 + r.nextGaussian());  // |mean| 1e4 with std 1: bfloat16's hard case
            dy[i] = (float) r.nextGaussian();
        }
        String xs = save("x.npy", dims, x).toString();
        String dys = save("dy.npy", dims, dy).toString();
        for (String backend : new String[] {"cpu", "emulator"}) {
            Path fwd = dir.resolve("fwd-" + backend);
            InProcess.Result f = ok("forward", "--x", xs, "--dtype", "bf16", "--layout", "channels-last",
                    "--no-running-stats", "--backend", backend, "--out", fwd.toString());
            assertTrue(f.stdout().contains("in bfloat16:"), f::toString);
            float[] xr = DType.BFLOAT16.decode(DType.BFLOAT16.encode(x));  // the one rounding of x
            float[] dyr = DType.BFLOAT16.decode(DType.BFLOAT16.encode(dy));
            Reference64.Forward ref = Reference64.forwardTraining(shape, xr, null, null, EPS, null, null, 0);
            String rel = dir.relativize(fwd).toString();
            HalfTolerances.assertY(backend + " y", DType.BFLOAT16, ref.y(), stored(rel + "/y.npy", DType.BFLOAT16,
                    dims));
            assertForward(backend + " save_mean", ref.mean(), float32(rel + "/save_mean.npy", 4));
            assertForward(backend + " save_invstd", ref.invstd(), float32(rel + "/save_invstd.npy", 4));

            Path bwd = dir.resolve("bwd-" + backend);
            ok("backward", "--x", xs, "--dy", dys, "--dtype", "bfloat16", "--layout", "channels-last", "--backend",
                    backend, "--out", bwd.toString());
            Reference64.Backward grad = Reference64.backwardTraining(shape, xr, dyr, null, EPS);
            String brel = dir.relativize(bwd).toString();
            HalfTolerances.assertDx(DType.BFLOAT16, grad, stored(brel + "/dx.npy", DType.BFLOAT16, dims));
            assertDgamma(grad, float32(brel + "/dgamma.npy", 4));
            assertDbeta(grad, float32(brel + "/dbeta.npy", 4));
        }
    }

    @Test
    void theFusedReluRunsInFloat16WithItsResidualAndGradients() throws IOException {
        Random r = new Random(7);
        long[] dims = {3, 4, 5};
        Shape shape = Shape.channelsFirst(dims);
        int n = shape.elementCountAsInt();
        short[] x = new short[n];
        short[] z = new short[n];
        short[] dy = new short[n];
        for (int i = 0; i < n; i++) {
            x[i] = DType.FLOAT16.encode((float) (1 + r.nextGaussian()));
            z[i] = DType.FLOAT16.encode((float) (0.3 + r.nextGaussian()));
            dy[i] = DType.FLOAT16.encode((float) r.nextGaussian());
        }
        String xs = save16("x.npy", dims, x).toString();
        String zs = save16("z.npy", dims, z).toString();
        String dys = save16("dy.npy", dims, dy).toString();
        ok("forward", "--x", xs, "--residual", zs, "--activation", "relu", "--no-running-stats", "--backend", "cpu",
                "--out", dir.resolve("fwd").toString());
        // the same 16-bit operation through the API: the command adds nothing and rounds nothing more
        try (BatchNormOps cpu = new CpuBatchNormOps()) {
            short[] y = new short[n];
            int[] mask = ReluMask.allocate(shape);
            cpu.forwardTrainingRelu(shape, DType.FLOAT16, x, z, null, null, EPS, null, null, 0, y, mask, new float[4],
                    new float[4]);
            assertArrayEquals(y, stored("fwd/y.npy", DType.FLOAT16, dims));
            short[] dx = new short[n];
            short[] dz = new short[n];
            float[][] st = {float32("fwd/save_mean.npy", 4), float32("fwd/save_invstd.npy", 4)};
            cpu.backwardTrainingRelu(shape, DType.FLOAT16, x, dy, mask, null, st[0], st[1], dx, dz, new float[4],
                    new float[4]);
            ok("backward", "--x", xs, "--dy", dys, "--activation", "relu", "--mask", dir.resolve("fwd/mask.npy")
                    .toString(), "--residual", zs, "--save-mean", dir.resolve("fwd/save_mean.npy").toString(),
                    "--save-invstd", dir.resolve("fwd/save_invstd.npy").toString(), "--backend", "cpu", "--out",
                    dir.resolve("bwd").toString());
            assertArrayEquals(dx, stored("bwd/dx.npy", DType.FLOAT16, dims));
            assertArrayEquals(dz, stored("bwd/dz.npy", DType.FLOAT16, dims));
        }
    }

    @Test
    void anUnknownDtypeIsRefused() throws IOException {
        String xs = save16("x.npy", new long[] {2, 3}, DType.FLOAT16.encode(new float[] {1, 2, 3, 4, 5, 6}))
                .toString();
        InProcess.Result bad = InProcess.run("forward", "--x", xs, "--dtype", "float8", "--out",
                dir.resolve("o").toString());
        assertEquals(2, bad.exitCode(), bad::toString);
        assertTrue(bad.stderr().contains("expected float32, float16 or bfloat16, got 'float8'"), bad::toString);
        // float32 reads a '<f2' x too (widened exactly)
        ok("forward", "--x", xs, "--dtype", "float32", "--backend", "cpu", "--out", dir.resolve("f32").toString());
        float32("f32/y.npy", 2, 3);
    }

    @Test
    void checkRunsASixteenBitTypeWithADtypeColumn() throws Exception {
        // bfloat16 only (float16 and float32 run through the same code; CrossCheckTest checks every type in process)
        Launcher.Result r = Launcher.run(dir, "check", "--backends", "cpu,emulator", "--dtype", "bfloat16");
        assertEquals(0, r.exitCode(), r::toString);
        java.util.List<String> out = r.stdout().lines().toList();
        long cases = CrossCheck.shapes().size() * (long) CrossCheck.OPS.size();
        for (String backend : new String[] {"cpu", "emulator"}) {
            long pass = out.stream().filter(l -> l.matches(backend + "\\s+bfloat16\\s.*\\sPASS\\s.*")).count();
            assertEquals(cases, pass, backend + ": " + r);
        }
        assertTrue(out.stream().anyMatch(l -> l.matches("dtype\\s+op\\s+layout\\s+shape\\s+tolerance\\s+cpu~emulator")),
                r::toString);
        assertTrue(out.stream().anyMatch(l -> l.matches("bfloat16\\s+forward-train\\s+channels-first\\s+2,3,4,5\\s+"
                + "\\S+\\s+\\d\\.\\d\\de[-+]\\d\\d")), r::toString);
        assertTrue(out.get(out.size() - 1).startsWith("check: PASS, " + 3 * cases + " checks")
                && out.get(out.size() - 1).endsWith(" on cpu, emulator in bfloat16"), r::toString);
        InProcess.Result bad = InProcess.run("check", "--backends", "cpu", "--dtype", "float16,int8");
        assertEquals(2, bad.exitCode(), bad::toString);
        assertTrue(bad.stderr().contains("--dtype: expected float32, float16, bfloat16 or all"), bad::toString);
    }

    private static String field(String json, String key) {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("\"" + key + "\":(\"[^\"]*\"|[^,}]*)")
                .matcher(json);
        return m.find() ? m.group(1) : null;
    }

    @Test
    void benchCountsTheStorageTypesBytesAndTimesTheSixteenBitDeviceOps() throws Exception {
        Launcher.Result r = Launcher.run(dir, "bench", "--backend", "emulator", "--dtype", "bfloat16", "--shape",
                "4,8,16,16", "--layout", "NCHW", "--repeat", "1", "--warmup", "0", "--json");
        assertEquals(0, r.exitCode(), r::toString);
        java.util.List<String> rows = r.stdout().lines().filter(l -> !l.contains("\"op\":\"copy\"")).toList();
        assertEquals(BenchCommand.ALL_OPS.size(), rows.size(), r::toString);
        for (String row : rows) {
            String op = field(row, "op").replace("\"", "");
            assertEquals("\"bfloat16\"", field(row, "dtype"), row);
            assertEquals(2L * 4 * 8 * 16 * 16, Long.parseLong(field(row, "bytes")), "S in bfloat16 bytes: " + row);
            double budget = Double.parseDouble(field(row, "budget"));
            String path = field(row, "path").replace("\"", "");
            // bench's default --path auto: the 16-bit persistent kernels for the training ops (the tensor fits)
            if (!op.contains("relu")) {
                assertEquals(op.equals("forward-train") || op.equals("backward") ? "persistent" : "two-pass", path,
                        row);
            }
            assertEquals(BenchCommand.trafficUnits(op, DType.BFLOAT16, path), budget, 1e-12, row);
            if (!op.contains("relu")) {
                // the 16-bit kernels on device-resident buffers, within the budget in bfloat16 bytes
                assertEquals("\"device\"", field(row, "timed"), row);
                assertTrue(Double.parseDouble(field(row, "traffic_ratio")) <= budget + 0.1, row);
                assertTrue(Double.parseDouble(field(row, "sector_efficiency")) >= 0.9, row);
                assertTrue(row.contains("_bf16_vec8\""), row);
            }
            if (op.equals("backward-relu")) {
                // the fused 16-bit backward kernels: 6 S + 2 masks of S/16, within 3 %
                double ratio = Double.parseDouble(field(row, "traffic_ratio"));
                assertTrue(ratio >= budget && ratio <= 1.03 * budget, row);
            }
        }
        assertEquals(6 + 1.0 / 8, BenchCommand.trafficUnits("backward-relu", DType.BFLOAT16));
        assertEquals(4 + 1.0 / 16, BenchCommand.trafficUnits("forward-train-relu", DType.FLOAT16));
        assertEquals(4 + 1.0 / 32, BenchCommand.trafficUnits("forward-train-relu", DType.FLOAT32));
    }
}
