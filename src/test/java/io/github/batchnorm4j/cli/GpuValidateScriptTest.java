package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.BackendInfo;
import io.github.batchnorm4j.Backends;
import io.github.batchnorm4j.train.MiniJson;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

/**
 * scripts/gpu-validate.sh end to end: without a GPU it stops at once with exit 3 and the reason; on a pretend GPU
 * ({@link FakeGpuCli}: our kernels on the emulator as "cuda", the fake cuDNN as "cudnn"; one small shape; a stand-in
 * for the GPU-tagged tests) it runs every step and writes the report. Bench runs once per op without warm-up: its
 * default 0.5 s warm-up per op and layout was 15 of this class's 17 s, and the report's arithmetic does not need it.
 */
class GpuValidateScriptTest {
    static final Path SCRIPT = Path.of("scripts", "gpu-validate.sh").toAbsolutePath();

    @TempDir
    Path tmp;

    record Run(int exit, String stdout, String stderr) {
    }

    private Run run(Map<String, String> env, String... args) throws IOException, InterruptedException {
        List<String> cmd = new java.util.ArrayList<>(List.of(SCRIPT.toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(tmp.toFile());
        pb.environment().put("JAVA_HOME", System.getProperty("java.home"));
        pb.environment().remove("BATCHNORM4J_CLI");
        pb.environment().putAll(env);
        Path out = tmp.resolve("stdout.txt");
        Path err = tmp.resolve("stderr.txt");
        pb.redirectOutput(out.toFile()).redirectError(err.toFile());
        Process p = pb.start();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("gpu-validate.sh did not finish in 120 s");
        }
        return new Run(p.exitValue(), Files.readString(out), Files.readString(err));
    }

    private Path mvnStub() throws IOException {
        Path mvn = tmp.resolve("mvn-stub");
        Files.writeString(mvn, "#!/bin/sh\necho \"mvn $*\" >> \"" + tmp.resolve("mvn.log") + "\"\n");
        Files.setPosixFilePermissions(mvn, PosixFilePermissions.fromString("rwxr-xr-x"));
        return mvn;
    }

    private static double copyGbps(List<?> bench, String backend, double bytes) {
        List<Double> g = bench.stream().map(b -> (Map<?, ?>) b)
                .filter(b -> "copy".equals(b.get("op")) && backend.equals(b.get("backend"))
                        && Double.valueOf(bytes).equals(b.get("bytes")))
                .map(b -> (Double) b.get("gbps")).toList();
        assertEquals(1, g.size(), backend + " copy rows of " + bytes + " bytes: " + bench);
        return g.get(0);
    }

    @Test
    void withoutAGpuItExits3WithTheReasonAndRunsNothingElse() throws Exception {
        BackendInfo cuda = Backends.provider("cuda").probe();
        assumeFalse(cuda.available(), "this machine has a GPU");
        Run r = run(Map.of("BATCHNORM4J_CLASSPATH", System.getProperty("java.class.path"),
                "MVN", mvnStub().toString()), "--out", "out");
        assertEquals(3, r.exit(), r.toString());
        assertTrue(r.stderr().contains("error: no usable GPU: cuda: " + cuda.detail().substring(0, 20)), r.stderr());
        assertFalse(Files.exists(tmp.resolve("mvn.log")), "no test step without a GPU");
        assertFalse(Files.exists(tmp.resolve("out/report.json")));
        assertEquals(2, run(Map.of(), "--repeat", "0").exit(), "bad usage");
        assertEquals(2, run(Map.of(), "--warmup", "-1").exit(), "bad usage");
    }

    @Test
    void onAPretendGpuEveryStepRunsAndTheReportComparesUsWithCudnnAndTheCopy() throws Exception {
        String cli = Path.of(System.getProperty("java.home"), "bin", "java") + " -XX:TieredStopAtLevel=1 -cp "
                + System.getProperty("java.class.path") + " " + FakeGpuCli.class.getName();
        Run r = run(Map.of("BATCHNORM4J_CLI", cli, "GPU_VALIDATE_SHAPES", "4,8,6,6",
                "GPU_VALIDATE_TEST_COMMAND", "echo 'Tests run: 5, Failures: 0, Errors: 0, Skipped: 2'"),
                "--out", "out", "--repeat", "1", "--warmup", "0");
        assertEquals(0, r.exit(), r.toString());
        assertTrue(Files.readString(tmp.resolve("out/steps.tsv")).contains(" bench --backend cudnn --shape 4,8,6,6 "
                + "--repeat 1 --warmup 0 --json"), "--repeat and --warmup reach every bench");
        Map<String, Object> report = MiniJson.parseObject(Files.readString(tmp.resolve("out/report.json"), StandardCharsets.UTF_8));
        assertEquals("gpu-validation", report.get("kind"));
        assertEquals("PASS", report.get("result"));
        assertTrue(String.valueOf(report.get("device")).startsWith("fake GPU"), String.valueOf(report.get("device")));
        List<?> steps = (List<?>) report.get("steps");
        assertEquals(List.of("info", "tests", "check", "bench-cuda-0", "bench-cudnn-0"),
                steps.stream().map(s -> ((Map<?, ?>) s).get("name")).toList());
        Map<?, ?> tests = (Map<?, ?>) report.get("tests");
        assertEquals(5.0, tests.get("run"));
        assertEquals(2.0, tests.get("skipped"));
        assertEquals("PASS", ((Map<?, ?>) report.get("check")).get("result"));
        List<?> bench = (List<?>) report.get("bench");
        assertEquals(2, bench.stream().filter(b -> "copy".equals(((Map<?, ?>) b).get("op"))).count(),
                "a device copy for each backend");
        assertTrue(bench.stream().anyMatch(b -> "cuda".equals(((Map<?, ?>) b).get("backend"))
                && ((Map<?, ?>) b).get("kernels") instanceof List<?> k && !k.isEmpty()), "cuda rows list their kernels");
        List<?> comparison = (List<?>) report.get("comparison");
        assertEquals(2 * BenchCommand.ALL_OPS.size(), comparison.size(), "every op x NCHW and NHWC: " + comparison);
        for (Object o : comparison) {
            Map<?, ?> c = (Map<?, ?>) o;
            double ours = (Double) c.get("ours_gbps");
            double cudnn = (Double) c.get("cudnn_gbps");
            // (Json writes 6 significant digits.)
            assertEquals(ours / cudnn, (Double) c.get("ours_over_cudnn"), 1e-5 * ours / cudnn, c.toString());
            double pct = 100 * ours / (Double) c.get("copy_gbps");
            assertEquals(pct, (Double) c.get("ours_pct_of_copy"), 1e-5 * pct, c.toString());
            // Each side against its own backend's copy of the same bytes, as the bench rows report it.
            assertEquals(copyGbps(bench, "cuda", (Double) c.get("bytes")), (Double) c.get("copy_gbps"), c.toString());
            double cudnnPct = 100 * cudnn / copyGbps(bench, "cudnn", (Double) c.get("bytes"));
            assertEquals(cudnnPct, (Double) c.get("cudnn_pct_of_copy"), 1e-5 * cudnnPct, c.toString());
        }
        String summary = Files.readString(tmp.resolve("out/summary.txt"));
        assertTrue(summary.contains("ours/cuDNN") && summary.contains("channels-last") && summary.endsWith("result: PASS\n"),
                summary);
        assertEquals(summary, r.stdout(), "the summary is what the run prints");
    }
}
