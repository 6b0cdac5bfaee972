package io.github.batchnorm4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import io.github.batchnorm4j.BackendInfo;
import io.github.batchnorm4j.Backends;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The command line on a machine without an NVIDIA driver (our CI), through the launcher as users run it: asking for
 * cuda or cudnn by name is exit 3 with the probe's reason on one stderr line; {@code info} says why each is
 * unavailable and that auto picks the CPU; {@code check} skips them with their reasons and still checks the CPU and
 * the emulator, against float64 and pairwise. Skipped where CUDA is available.
 */
class CliWithoutGpuTest {
    /** The start of the reason CudaProbe gives when libcuda.so.1 cannot load. */
    private static final String NO_DRIVER = "no NVIDIA driver: libcuda.so.1";

    @TempDir
    Path dir;

    @BeforeAll
    static void noGpuHere() {
        BackendInfo cuda = Backends.probeAll().stream().filter(i -> i.name().equals("cuda")).findFirst()
                .orElseThrow();
        assumeFalse(cuda.available(), "CUDA is available here: " + cuda.detail());
        assumeTrue(cuda.detail().startsWith(NO_DRIVER), "another reason: " + cuda.detail());
    }

    private static void assumeTrue(boolean b, String why) {
        org.junit.jupiter.api.Assumptions.assumeTrue(b, why);
    }

    /** Exit 3, nothing on stdout, one stderr line: "error: backend 'B' is unavailable: " + the probe's reason. */
    private static void assertUnavailable(Launcher.Result r, String backend, String reasonStart) {
        assertEquals(Main.UNAVAILABLE, r.exitCode(), r::toString);
        assertEquals("", r.stdout(), r::toString);
        List<String> err = r.stderrLines();
        assertEquals(1, err.size(), r::toString);
        assertTrue(err.get(0).startsWith("error: backend '" + backend + "' is unavailable: " + reasonStart),
                r::toString);
        assertTrue(err.get(0).contains("libcuda.so.1"), r::toString);
    }

    private Path x() throws Exception {
        Path x = dir.resolve("x.npy");
        Npy.write(x, new long[] {2, 3, 2, 2}, RandomInputs.of(io.github.batchnorm4j.Shape.channelsFirst(2, 3, 2, 2),
                1).x());
        return x;
    }

    @Test
    void forwardOnCudaOrCudnnIsExitThreeWithTheReason() throws Exception {
        Path x = x();
        assertUnavailable(Launcher.run(dir, "forward", "--x", x.toString(), "--backend", "cuda", "--out", "o1"),
                "cuda", NO_DRIVER);
        assertUnavailable(Launcher.run(dir, "forward", "--x", x.toString(), "--backend", "cudnn", "--out", "o2"),
                "cudnn", "needs CUDA, which is unavailable: " + NO_DRIVER);
        assertTrue(!dir.resolve("o1").toFile().exists() && !dir.resolve("o2").toFile().exists(), "no output written");
    }

    @Test
    void benchOnCudaOrCudnnIsExitThreeWithTheReason() throws Exception {
        assertUnavailable(Launcher.run(dir, "bench", "--backend", "cuda", "--shape", "2,3,4,4", "--repeat", "1"),
                "cuda", NO_DRIVER);
        assertUnavailable(Launcher.run(dir, "bench", "--backend", "cudnn", "--shape", "2,3,4,4", "--repeat", "1",
                "--json"), "cudnn", "needs CUDA, which is unavailable: " + NO_DRIVER);
    }

    @Test
    void infoNamesCudaAndCudnnUnavailableWithReasonsAndAutoIsCpu() throws Exception {
        Launcher.Result text = Launcher.run(dir, "info");
        assertEquals(0, text.exitCode(), text::toString);
        assertTrue(text.stdout().lines().anyMatch(l -> l.matches("\\s*cuda\\s+unavailable\\s+" + NO_DRIVER + ".*")),
                text::toString);
        assertTrue(text.stdout().lines().anyMatch(l -> l.matches(
                "\\s*cudnn\\s+unavailable\\s+needs CUDA, which is unavailable: " + NO_DRIVER + ".*")), text::toString);
        assertTrue(text.stdout().lines().anyMatch(l -> l.startsWith("auto -> cpu (cuda unavailable: " + NO_DRIVER)),
                text::toString);

        Launcher.Result json = Launcher.run(dir, "info", "--json");
        assertEquals(0, json.exitCode(), json::toString);
        String line = json.stdout().strip();
        assertTrue(line.contains("\"auto\":\"cpu\""), line);
        assertTrue(line.contains("{\"name\":\"cuda\",\"available\":false,\"detail\":\"" + NO_DRIVER), line);
        assertTrue(line.contains("{\"name\":\"cudnn\",\"available\":false,\"detail\":\"needs CUDA, which is "
                + "unavailable: " + NO_DRIVER), line);
    }

    @Test
    void checkNamingCudaIsExitThreeBeforeAnythingRuns() throws Exception {
        assertUnavailable(Launcher.run(dir, "check", "--backends", "cpu,cuda"), "cuda", NO_DRIVER);
    }

    @Test
    void checkOfAllSkipsCudaAndCudnnAndComparesCpuAndEmulator() throws Exception {
        Launcher.Result r = Launcher.run(dir, "check");
        assertEquals(0, r.exitCode(), r::toString);
        List<String> out = r.stdout().lines().toList();
        assertTrue(out.contains("skipped cuda: unavailable (" + Backends.probeAll().stream()
                .filter(i -> i.name().equals("cuda")).findFirst().orElseThrow().detail() + ")"), r::toString);
        assertTrue(out.stream().anyMatch(l -> l.startsWith("skipped cudnn: unavailable (needs CUDA, which is "
                + "unavailable: " + NO_DRIVER)), r::toString);
        long cases = CrossCheck.shapes().size() * (long) CrossCheck.OPS.size();
        for (String backend : List.of("cpu", "emulator")) {
            long pass = out.stream().filter(l -> l.startsWith(backend + " ") && l.contains(" PASS ")).count();
            assertEquals(cases, pass, backend + " rows against float64: " + r);
        }
        int header = out.indexOf(out.stream().filter(l -> l.startsWith("op ")).findFirst().orElseThrow());
        assertTrue(out.get(header).matches("op\\s+layout\\s+shape\\s+tolerance\\s+cpu~emulator"), out.get(header));
        List<String> pairRows = out.subList(header + 1, (int) (header + 1 + cases));
        for (String row : pairRows) {
            String[] cells = row.trim().split("\\s+");
            assertEquals(5, cells.length, row);
            assertTrue(CrossCheck.OPS.contains(cells[0]), row);
            double err = Double.parseDouble(cells[4]);
            assertTrue(err >= 0 && err <= Double.parseDouble(cells[3]), row);
        }
        assertTrue(out.get(out.size() - 1).startsWith("check: PASS, ") && out.get(out.size() - 1)
                .endsWith(" pairwise) on cpu, emulator; skipped cuda, cudnn"), r::toString);
        assertEquals(List.of(), r.stderrLines(), r::toString);
    }
}
