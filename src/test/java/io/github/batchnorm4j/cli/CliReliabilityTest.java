package io.github.batchnorm4j.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.batchnorm4j.testing.TestData;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 12's reproductions, one test each: inputs are never overwritten, outputs are all or nothing, and every bad
 * input is exit 2 with one {@code error:} line naming the option or file with the expected and given value, never a
 * stack trace. Runs in this JVM ({@link InProcess}) with absolute paths, except where the working directory matters.
 */
class CliReliabilityTest {
    @TempDir
    Path dir;

    /** Hundreds of runs on a shared disk: skip the flush to disk of each output (the rename is what is tested). */
    @org.junit.jupiter.api.BeforeAll
    static void noFsync() {
        System.setProperty(OutputFolder.FSYNC_PROPERTY, "false");
    }

    @org.junit.jupiter.api.AfterAll
    static void fsyncAgain() {
        System.clearProperty(OutputFolder.FSYNC_PROPERTY);
    }
    private Path x;

    @BeforeEach
    void input() throws IOException {
        x = dir.resolve("x.npy");
        Npy.write(x, new long[] {4, 3, 5}, TestData.normal(TestData.random(12), 60, 1, 2));
    }

    private static String s(Path p) {
        return p.toString();
    }

    /** Exit 2, exactly one error line containing every fragment (case-insensitive), no stack trace. */
    static String assertRefused(InProcess.Result r, String... fragments) {
        assertEquals(2, r.exitCode(), r::toString);
        String line = r.errorLine();
        for (String f : fragments) {
            assertTrue(line.toLowerCase(Locale.ROOT).contains(f.toLowerCase(Locale.ROOT)),
                    () -> "expected '" + f + "' in the error line\n" + r);
        }
        assertFalse(r.stderr().contains("\tat ") || r.stderr().contains("Exception:"), r::toString);
        return line;
    }

    // ---- 1. an input is never overwritten ------------------------------------------------------------------------

    @Test
    void forwardRefusesToWriteOverItsX() throws IOException {
        Path d = Files.createDirectories(dir.resolve("d"));
        Files.copy(x, d.resolve("y.npy"));
        byte[] before = Files.readAllBytes(d.resolve("y.npy"));
        assertRefused(InProcess.run("forward", "--x", s(d.resolve("y.npy")), "--backend", "cpu", "--out", s(d)),
                "--out " + d, "is the input --x", "refusing to overwrite an input");
        assertArrayEquals(before, Files.readAllBytes(d.resolve("y.npy")));
        assertEquals(List.of("y.npy"), list(d), "and nothing else was written");
    }

    @Test
    void forwardRefusesToWriteOverTheRunningMeanItReads() throws IOException {
        Path d = Files.createDirectories(dir.resolve("d"));
        Npy.write(d.resolve("running_mean.npy"), new long[] {3}, new float[] {1, 2, 3});
        byte[] before = Files.readAllBytes(d.resolve("running_mean.npy"));
        assertRefused(InProcess.run("forward", "--x", s(x), "--running-mean", s(d.resolve("running_mean.npy")),
                "--backend", "cpu", "--out", s(d)), "is the input --running-mean");
        assertArrayEquals(before, Files.readAllBytes(d.resolve("running_mean.npy")));
    }

    @Test
    void forwardRefusesAnOutputThatIsASymbolicLinkToAnInput() throws IOException {
        Path d = Files.createDirectories(dir.resolve("d"));
        Files.createSymbolicLink(d.resolve("y.npy"), x);
        byte[] before = Files.readAllBytes(x);
        assertRefused(InProcess.run("forward", "--x", s(x), "--backend", "cpu", "--out", s(d)), "is the input --x");
        assertArrayEquals(before, Files.readAllBytes(x));
    }

    // ---- 2. all or nothing -----------------------------------------------------------------------------------------

    @Test
    void aFolderWhereOneOutputGoesFailsBeforeAnyFileIsReplaced() throws IOException {
        Path d = dir.resolve("out");
        assertEquals(0, InProcess.run("forward", "--x", s(x), "--backend", "cpu", "--out", s(d)).exitCode());
        Files.delete(d.resolve("running_var.npy"));
        Files.createDirectory(d.resolve("running_var.npy"));
        Map<String, String> before = OutputFolderTest.contents(d);
        assertRefused(InProcess.run("forward", "--x", s(x), "--eps", "1e-3", "--backend", "cpu", "--out", s(d)),
                "running_var.npy is a folder", "nothing was written");
        assertEquals(before, OutputFolderTest.contents(d), "none of the 4 other files replaced");
    }

    @Test
    void evalWithBatchStatisticsOfOneValuePerChannelLeavesNoFolder() throws IOException {
        Path m1 = dir.resolve("m1.npy");
        Npy.write(m1, new long[] {1, 3}, new float[] {1, 2, 3});
        assertRefused(InProcess.run("forward", "--x", s(m1), "--mode", "eval", "--no-running-stats", "--backend",
                "cpu", "--out", s(dir.resolve("o"))), "--no-running-stats", "more than 1 value per channel", "M = 1");
        assertEquals(List.of("m1.npy", "x.npy"), list(dir), "no o/ and no staging folder");
    }

    @Test
    void trainChecksItsOutputFolderBeforeTraining() throws IOException {
        Path file = dir.resolve("file");
        Files.writeString(file, "not a folder");
        InProcess.Result r = InProcess.run("train", "--out", s(file.resolve("sub")), "--backend", "cpu",
                "--no-progress");
        assertRefused(r, "--out " + file.resolve("sub"), file + " is a file, not a folder");
        assertFalse(r.stdout().contains("epoch"), "refused before any training\n" + r);

        Path out = Files.createDirectories(dir.resolve("runs"));
        Files.createDirectory(out.resolve("summary.png"));
        r = InProcess.run("train", "--out", s(out), "--backend", "cpu", "--no-progress");
        assertRefused(r, "summary.png is a folder");
        assertFalse(r.stdout().contains("epoch"), r::toString);
        assertEquals(List.of("summary.png"), list(out));
    }

    @Test
    void trainWithAnOutputFolderTheSystemRefusesSaysWhy() {
        assumeTrue(Files.isDirectory(Path.of("/proc/self")), "Linux /proc");
        InProcess.Result r = InProcess.run("train", "--out", "/proc/x", "--backend", "cpu", "--no-progress");
        assertRefused(r, "--out /proc/x: cannot create files in /proc: ");
        assertFalse(r.stdout().contains("epoch"), r::toString);
        assertFalse(r.stderr().contains("java.nio"), r::toString);
    }

    // ---- 3. sizes that used to be exit 1 with a stack trace -----------------------------------------------------

    /** A .npy file with the given header dict (numpy's padding) and data bytes. */
    static byte[] npy(String dict, byte[] data) {
        String header = dict + " ".repeat(63 - (10 + dict.length()) % 64) + "\n";
        ByteBuffer b = ByteBuffer.allocate(10 + header.length() + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0}).putShort((short) header.length());
        b.put(header.getBytes(StandardCharsets.ISO_8859_1)).put(data);
        return b.array();
    }

    @Test
    void headersWithHugeShapesAreBadInput() throws IOException {
        String[][] cases = {
            {"(4294967296, 4294967296)", "more than 2147483639 elements"},
            {"(4611686018427387904, 4)", "more than 2147483639 elements"},
            {"(100000000000000000000, 3)", "shape dimension 100000000000000000000 is larger than 2^63 - 1"},
        };
        for (String[] c : cases) {
            Path f = dir.resolve("huge.npy");
            Files.write(f, npy("{'descr': '<f4', 'fortran_order': False, 'shape': " + c[0] + ", }", new byte[0]));
            assertRefused(InProcess.run("forward", "--x", s(f), "--backend", "cpu", "--out", s(dir.resolve("o"))),
                    "--x " + f, c[1]);
        }
        assertFalse(Files.exists(dir.resolve("o")));
    }

    @Test
    void benchOfAShapeWhoseElementCountOverflows() {
        assertRefused(InProcess.run("bench", "--backend", "cpu", "--shape", "4294967296,4294967296"),
                "--shape: expected at most 2^60 elements", "18446744073709551616");
    }

    @Test
    void trainRefusesHiddenWidthsTooLargeBeforeAllocating() {
        assertRefused(InProcess.run("train", "--hidden", "2000000000", "--backend", "cpu", "--no-progress", "--out",
                s(dir.resolve("o"))), "--hidden 2000000000", "64 x 2000000000 = 128000000000 weights");
        assertRefused(InProcess.run("train", "--hidden", "100000,100000", "--backend", "cpu", "--no-progress",
                "--out", s(dir.resolve("o"))), "--hidden 100000,100000", "10000000000 weights");
        // Widths whose weights fit in arrays but not in this JVM's heap: layers of 40000 x 40000 (6.4 GB each with
        // gradients and momentum), as many as it takes to exceed the heap.
        long perLayer = 16L * 40000 * 40000;
        int layers = (int) (Runtime.getRuntime().maxMemory() / perLayer) + 2;
        String hidden = String.join(",", java.util.Collections.nCopies(layers, "40000"));
        long start = System.nanoTime();
        assertRefused(InProcess.run("train", "--hidden", hidden, "--backend", "cpu", "--no-progress", "--out",
                s(dir.resolve("o"))), "--hidden " + hidden + ": needs ", " of memory (weights, gradients", "maximum heap");
        assertTrue(System.nanoTime() - start < 5e9, "refused before allocating, not after minutes");
        assertFalse(Files.exists(dir.resolve("o")));
    }

    // ---- 4. an empty --out -----------------------------------------------------------------------------------------

    @Test
    void anEmptyOutIsRefusedNotTheCurrentFolder() throws Exception {
        // Through the launcher in a fresh folder: the current folder is what an empty path would have meant.
        Path cwd = Files.createDirectories(dir.resolve("cwd"));
        for (String[] args : new String[][] {
            {"forward", "--x", s(x), "--backend", "cpu", "--out="},
            {"train", "--backend", "cpu", "--epochs", "1", "--out="}}) {
            Launcher.Result r = Launcher.run(cwd, args);
            assertEquals(2, r.exitCode(), r::toString);
            assertEquals(List.of("error: --out: expected a folder, got an empty path"), r.stderrLines());
        }
        assertEquals(List.of(), list(cwd), "nothing written into the current folder");
    }

    // ---- 5. sentences naming the option, not exception text -------------------------------------------------------

    @Test
    void outPathsTheSystemRefusesAreSentences() throws IOException {
        Path file = Files.writeString(dir.resolve("some-file"), "f");
        String line = assertRefused(InProcess.run("forward", "--x", s(x), "--backend", "cpu", "--out",
                s(file.resolve("sub"))), "--out " + file.resolve("sub") + ": " + file + " is a file, not a folder");
        assertFalse(line.contains("Exception"), line);
        if (Files.isDirectory(Path.of("/proc/self"))) {
            line = assertRefused(InProcess.run("forward", "--x", s(x), "--backend", "cpu", "--out", "/proc/x"),
                    "--out /proc/x: cannot create files in /proc");
            assertFalse(line.contains("Exception"), line);
        }
    }

    @Test
    void aPipeIsReadAsX() throws Exception {
        Path fifo = dir.resolve("x.fifo");
        Process mk = new ProcessBuilder("mkfifo", fifo.toString()).start();
        assumeTrue(mk.waitFor() == 0, "mkfifo");
        byte[] bytes = Files.readAllBytes(x);
        Thread writer = new Thread(() -> {
            try {
                Files.write(fifo, bytes); // blocks until the command opens the pipe
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        writer.setDaemon(true);
        writer.start();
        Path viaPipe = dir.resolve("pipe");
        Path viaFile = dir.resolve("file");
        InProcess.Result r = InProcess.run("forward", "--x", s(fifo), "--backend", "cpu", "--out", s(viaPipe));
        assertEquals(0, r.exitCode(), r::toString);
        writer.join(10_000);
        assertEquals(0, InProcess.run("forward", "--x", s(x), "--backend", "cpu", "--out", s(viaFile)).exitCode());
        for (String f : list(viaFile)) {
            assertArrayEquals(Files.readAllBytes(viaFile.resolve(f)), Files.readAllBytes(viaPipe.resolve(f)), f);
        }
    }

    @Test
    void aTestFractionThatHoldsOutNothingNamesTheOption() {
        assertRefused(InProcess.run("train", "--test-fraction", "0.0001", "--backend", "cpu", "--no-progress",
                "--out", s(dir.resolve("o"))), "--test-fraction", "at least 1 of the 1797 samples", "0 test samples");
        assertFalse(Files.exists(dir.resolve("o")));
    }

    @Test
    void layoutAndBackendErrorsNameTheOptionsTyped() {
        assertRefused(InProcess.run("forward", "--x", s(x), "--layout", "bogus", "--backend", "cpu", "--out",
                s(dir.resolve("o"))), "error: --layout: expected channels-first", "got 'bogus'");
        assertRefused(InProcess.run("forward", "--x", s(x), "--backend", "bogus", "--out", s(dir.resolve("o"))),
                "error: --backend: expected one of auto, cpu", "got 'bogus'");
        assertRefused(InProcess.run("bench", "--backend", "bogus"), "error: --backend: expected");
        assertRefused(InProcess.run("check", "--backends", "cpu,bogus"), "error: --backends: expected");
        assertFalse(Files.exists(dir.resolve("o")));
    }

    @Test
    void anEpsThatRoundsToZeroIsReportedAsTyped() {
        assertRefused(InProcess.run("forward", "--x", s(x), "--eps", "1e-400", "--backend", "cpu", "--out",
                s(dir.resolve("o"))), "--eps", "'1e-400'", "round to 0");
        assertRefused(InProcess.run("train", "--lr", "1e-50", "--backend", "cpu", "--out", s(dir.resolve("o"))),
                "--lr", "'1e-50'", "round to 0");
        assertRefused(InProcess.run("train", "--lr", "1e39", "--backend", "cpu", "--out", s(dir.resolve("o"))),
                "--lr", "'1e39'", "round to infinity");
    }

    // ---- 6. check with only empty names ---------------------------------------------------------------------------

    @Test
    void checkWithOnlyEmptyBackendNamesIsBadUsage() {
        assertRefused(InProcess.run("check", "--backends", ",,"), "--backends: empty name in ',,'");
        assertRefused(InProcess.run("check", "--backends", ""), "--backends: empty name");
    }

    // ---- 7. per-channel files: a vector, with axes of size 1 allowed ------------------------------------------------

    @Test
    void perChannelFilesAreVectorsPossiblyWithAxesOfSizeOne() throws IOException {
        float[] g = {0.5f, 1.5f, 2f};
        Path ref = dir.resolve("ref");
        Npy.write(dir.resolve("g.npy"), new long[] {3}, g);
        assertEquals(0, InProcess.run("forward", "--x", s(x), "--gamma", s(dir.resolve("g.npy")), "--backend", "cpu",
                "--out", s(ref)).exitCode());
        for (long[] dims : new long[][] {{3, 1}, {1, 3}, {1, 3, 1}}) {
            Path gf = dir.resolve("g" + dims.length + dims[0] + ".npy");
            Npy.write(gf, dims, g);
            Path out = dir.resolve("o" + dims.length + dims[0]);
            InProcess.Result r = InProcess.run("forward", "--x", s(x), "--gamma", s(gf), "--backend", "cpu", "--out",
                    s(out));
            assertEquals(0, r.exitCode(), r::toString);
            assertArrayEquals(Files.readAllBytes(ref.resolve("y.npy")), Files.readAllBytes(out.resolve("y.npy")));
        }
        Path x6 = dir.resolve("x6.npy");
        Npy.write(x6, new long[] {2, 6}, TestData.normal(new SplittableRandom(3), 12, 0, 1));
        Path matrix = dir.resolve("g23.npy");
        Npy.write(matrix, new long[] {2, 3}, TestData.normal(new SplittableRandom(4), 6, 1, 0.1));
        assertRefused(InProcess.run("forward", "--x", s(x6), "--gamma", s(matrix), "--backend", "cpu", "--out",
                s(dir.resolve("o"))), "--gamma " + matrix, "expected a vector of 6 values", "got shape (2,3)");
    }

    // ---- the top-level handler ----------------------------------------------------------------------------------

    @Test
    void anInternalErrorIsOneLineAndItsStackTraceOnlyWithDebug() {
        StringWriter err = new StringWriter();
        assertEquals(Main.FAILED, Main.exitCodeOf(new IllegalStateException("boom"), new PrintWriter(err), false));
        assertEquals("error: internal error: java.lang.IllegalStateException: boom (run with --debug or"
                + " BATCHNORM4J_DEBUG=1 for the stack trace, and please report it)", err.toString().strip());
        err = new StringWriter();
        Main.exitCodeOf(new IllegalStateException("boom"), new PrintWriter(err), true);
        assertTrue(err.toString().contains("\tat io.github.batchnorm4j"), err.toString());
        assertTrue(Main.debugRequested("forward", "--debug"));
        assertFalse(Main.debugRequested("forward", "--", "--debug") && System.getenv(Main.DEBUG_ENV) == null);
    }

    private static List<String> list(Path d) throws IOException {
        try (var s = Files.list(d)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }
}
