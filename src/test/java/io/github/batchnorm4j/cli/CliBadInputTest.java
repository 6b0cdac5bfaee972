package io.github.batchnorm4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bad usage and bad input through the launcher: exit code 2, exactly one line on stderr starting with {@code error:}
 * that names the problem, and no output written.
 */
class CliBadInputTest {
    @TempDir
    Path dir;

    @BeforeEach
    void inputs() throws Exception {
        Random r = new Random(21);
        Npy.write(dir.resolve("x4d.npy"), new long[] {2, 3, 4, 5}, CliComputeTest.random(r, 120, 1, 2));
        Npy.write(dir.resolve("x1.npy"), new long[] {1, 3}, CliComputeTest.random(r, 3, 1, 2));
        Npy.write(dir.resolve("g4.npy"), new long[] {4}, CliComputeTest.uniform(r, 4, 0.5, 1.5));
        Files.copy(Path.of("src/test/resources/npy/bad_int32.npy"), dir.resolve("int32.npy"),
                StandardCopyOption.REPLACE_EXISTING);
    }

    /** Runs, and checks exit 2, one error line containing every fragment, and nothing written to out/. */
    private void rejects(List<String> fragments, String... args) throws Exception {
        Launcher.Result r = Launcher.run(dir, args);
        assertEquals(2, r.exitCode(), r::toString);
        List<String> lines = r.stderrLines();
        assertEquals(1, lines.size(), () -> "expected exactly one stderr line\n" + r);
        assertTrue(lines.get(0).startsWith("error: "), r::toString);
        for (String f : fragments) {
            assertTrue(lines.get(0).toLowerCase(Locale.ROOT).contains(f.toLowerCase(Locale.ROOT)),
                    () -> "expected '" + f + "' in the error line\n" + r);
        }
        assertFalse(Files.exists(dir.resolve("out/y.npy")) || Files.exists(dir.resolve("out/dx.npy")),
                "a failing call must write nothing");
    }

    @Test
    void missingFile() throws Exception {
        rejects(List.of("--x", "missing.npy", "no such file"), "forward", "--x", "missing.npy", "--backend", "cpu",
                "--out", "out");
    }

    @Test
    void namedLayoutOfTheWrongRank() throws Exception {
        rejects(List.of("--layout NCL", "3-D", "4-D"), "forward", "--x", "x4d.npy", "--layout", "NCL", "--backend",
                "cpu", "--out", "out");
    }

    @Test
    void gammaWithTheWrongChannelCount() throws Exception {
        rejects(List.of("--gamma", "g4.npy", "expected 3 values", "(4)"), "forward", "--x", "x4d.npy", "--gamma",
                "g4.npy", "--backend", "cpu", "--out", "out");
    }

    @Test
    void oneValuePerChannelInTraining() throws Exception {
        rejects(List.of("expected more than 1 value per channel when training"), "forward", "--x", "x1.npy",
                "--backend", "cpu", "--out", "out");
    }

    @Test
    void nonPositiveEps() throws Exception {
        rejects(List.of("--eps", "> 0", "-0.001"), "forward", "--x", "x4d.npy", "--eps", "-1e-3", "--backend", "cpu",
                "--out", "out");
    }

    @Test
    void momentumOutsideZeroToOne() throws Exception {
        rejects(List.of("--momentum", "[0, 1]", "1.5"), "forward", "--x", "x4d.npy", "--momentum", "1.5",
                "--backend", "cpu", "--out", "out");
    }

    @Test
    void unsupportedDtype() throws Exception {
        rejects(List.of("--x", "int32.npy", "'<i4'", "float32"), "backward", "--x", "int32.npy", "--dy", "int32.npy",
                "--backend", "cpu", "--out", "out");
    }

    @Test
    void unknownBackend() throws Exception {
        rejects(List.of("backend", "'nosuch'", "cpu"), "forward", "--x", "x4d.npy", "--backend", "nosuch", "--out",
                "out");
    }

    @Test
    void benchOfOneValuePerChannelIsRejectedBeforeAnyOutput() throws Exception {
        String[] args = {"bench", "--backend", "cpu", "--shape", "1,3", "--repeat", "1"};
        rejects(List.of("--shape 1,3", "expected more than 1 value per channel when training", "M = 1"), args);
        assertEquals("", Launcher.run(dir, args).stdout(), "no half-printed table before the error");
    }

    @Test
    void unknownOption() throws Exception {
        rejects(List.of("--frobnicate"), "forward", "--x", "x4d.npy", "--frobnicate", "--out", "out");
    }
}
