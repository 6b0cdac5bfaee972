package io.github.batchnorm4j.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.batchnorm4j.testing.TestData;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Property-style tests of bad input, one per class, each over many variants drawn with fixed seeds, so that the next
 * mistake of a class is found here rather than by a user: corrupted .npy headers, truncated and over-long files (also
 * through a pipe), random option values, and random aliasing of inputs and outputs. The contract checked for every
 * variant: the file is read correctly or refused with a message naming it; a command exits 0 (with all its outputs)
 * or 2 with exactly one {@code error:} line naming the option, no stack trace, no output written and no input changed.
 * The counts of variants are in the assertions at the end of each test.
 */
class BadInputPropertiesTest {
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
    private final Map<String, Path> vectors = new LinkedHashMap<>();
    private Path dy;

    @BeforeEach
    void inputs() throws IOException {
        SplittableRandom rng = TestData.random(77);
        x = dir.resolve("x.npy");
        Npy.write(x, new long[] {4, 3, 5}, TestData.normal(rng, 60, 1, 2));
        dy = dir.resolve("dy.npy");
        Npy.write(dy, new long[] {4, 3, 5}, TestData.normal(rng, 60, 0, 1));
        for (String v : List.of("gamma", "beta", "running-mean", "running-var", "save-mean", "save-invstd")) {
            Path p = dir.resolve(v + ".npy");
            Npy.write(p, new long[] {3}, TestData.uniform(rng, 3, 0.5, 1.5));
            vectors.put("--" + v, p);
        }
    }

    private static String s(Path p) {
        return p.toString();
    }

    // ---- corrupted headers ---------------------------------------------------------------------------------------

    /** Valid files to corrupt: float32 and float64, versions 1.0 and 2.0, ranks 1 to 4. */
    private static List<byte[]> validFiles() {
        List<byte[]> out = new ArrayList<>();
        out.add(file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3, 5), }", 60, 4));
        out.add(file(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 6, 8));
        out.add(file(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 3, 4));
        out.add(file(1, "{'descr': '|f4', 'fortran_order': False, 'shape': (2, 1, 2, 2), }", 8, 4));
        return out;
    }

    /** A .npy file of the given version with numpy's padding and {@code count} random values of {@code itemSize}. */
    static byte[] file(int version, String dict, int count, int itemSize) {
        int prefix = version == 1 ? 10 : 12;
        String header = dict + " ".repeat(63 - (prefix + dict.length()) % 64) + "\n";
        ByteBuffer b = ByteBuffer.allocate(prefix + header.length() + count * itemSize).order(ByteOrder.LITTLE_ENDIAN);
        b.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', (byte) version, 0});
        if (version == 1) b.putShort((short) header.length());
        else b.putInt(header.length());
        b.put(header.getBytes(StandardCharsets.ISO_8859_1));
        SplittableRandom rng = TestData.random(count);
        for (int i = 0; i < count; i++) {
            if (itemSize == 4) b.putFloat((float) rng.nextDouble(-2, 2));
            else b.putDouble(rng.nextDouble(-2, 2));
        }
        return b.array();
    }

    private static int headerEnd(byte[] f) {
        int version = f[6];
        ByteBuffer b = ByteBuffer.wrap(f).order(ByteOrder.LITTLE_ENDIAN);
        return version == 1 ? 10 + (b.getShort(8) & 0xffff) : 12 + b.getInt(8);
    }

    private static final String[] SHAPES = {"()", "(0,)", "(3,)", "(4, 3, 5)", "(-1, 3)", "(4294967296, 4294967296)",
        "(4611686018427387904, 4)", "(100000000000000000000, 3)", "(3, 4", "((3,),)", "(3.0, 2)", "(, )", "(60,)",
        "(1, 60)", "(2147483647, 2)", "(9223372036854775807,)", "(9223372036854775808,)", "(3L, 20L)", "[3, 20]"};
    private static final String[] DESCRS = {"'<f4'", "'<f8'", "'>f4'", "'|f4'", "'<i4'", "'<f2'", "'f4'", "'<c8'",
        "''", "[('a', '<f4')]", "'<f4", "None", "4"};
    private static final String[] FORTRAN = {"False", "True", "0", "'False'", "Fals"};

    /** One random corruption of a valid file (its kind is recorded in {@code kinds}). */
    private static byte[] corrupt(byte[] valid, SplittableRandom rng, Map<String, Integer> kinds) {
        byte[] f = valid.clone();
        int end = headerEnd(f);
        int kind = rng.nextInt(7);
        kinds.merge(switch (kind) {
            case 0 -> "random byte";
            case 1 -> "random header character";
            case 2 -> "deleted or inserted character";
            case 3 -> "random shape";
            case 4 -> "random descr / fortran_order";
            case 5 -> "random version";
            default -> "random header length";
        }, 1, Integer::sum);
        switch (kind) {
            case 0 -> f[rng.nextInt(end)] = (byte) rng.nextInt(256);
            case 1 -> {
                int i = (f[6] == 1 ? 10 : 12) + rng.nextInt(end - (f[6] == 1 ? 10 : 12));
                String chars = "(){}[],:'\" 0123456789-LTFx\n\0\u00e9\u0085\r";
                f[i] = (byte) chars.charAt(rng.nextInt(chars.length()));
            }
            case 2 -> {
                int start = f[6] == 1 ? 10 : 12;
                int i = start + rng.nextInt(end - start);
                byte[] g = rng.nextBoolean() ? new byte[f.length - 1] : new byte[f.length + 1];
                if (g.length < f.length) {
                    System.arraycopy(f, 0, g, 0, i);
                    System.arraycopy(f, i + 1, g, i, f.length - i - 1);
                } else {
                    System.arraycopy(f, 0, g, 0, i);
                    g[i] = (byte) "( ,'9".charAt(rng.nextInt(5));
                    System.arraycopy(f, i, g, i + 1, f.length - i);
                }
                f = g; // the header length field now disagrees by one
            }
            case 3, 4 -> {
                String h = new String(f, 0, end, StandardCharsets.ISO_8859_1);
                if (kind == 3) h = h.replaceFirst("'shape': \\([^)]*\\)", "'shape': " + SHAPES[rng.nextInt(SHAPES.length)]);
                else if (rng.nextBoolean()) h = h.replaceFirst("'descr': '[^']*'", "'descr': " + DESCRS[rng.nextInt(DESCRS.length)]);
                else h = h.replaceFirst("False", FORTRAN[rng.nextInt(FORTRAN.length)]);
                byte[] hb = h.getBytes(StandardCharsets.ISO_8859_1);
                byte[] g = new byte[hb.length + f.length - end];
                System.arraycopy(hb, 0, g, 0, hb.length);
                System.arraycopy(f, end, g, hb.length, f.length - end);
                if (rng.nextBoolean()) fixHeaderLength(g, hb.length); // sometimes a consistent header
                f = g;
            }
            case 5 -> {
                f[6] = (byte) rng.nextInt(5);
                f[7] = (byte) (rng.nextInt(4) == 0 ? rng.nextInt(3) : 0);
            }
            default -> {
                ByteBuffer b = ByteBuffer.wrap(f).order(ByteOrder.LITTLE_ENDIAN);
                if (f[6] == 1) b.putShort(8, (short) rng.nextInt(65536));
                else b.putInt(8, rng.nextInt());
            }
        }
        return f;
    }

    private static void fixHeaderLength(byte[] f, int end) {
        ByteBuffer b = ByteBuffer.wrap(f).order(ByteOrder.LITTLE_ENDIAN);
        if (f[6] == 1) b.putShort(8, (short) (end - 10));
        else if (f[6] == 2 || f[6] == 3) b.putInt(8, end - 12);
    }

    @Test
    void corruptedHeadersAreReadCorrectlyOrRefusedNamingTheFile() throws IOException {
        List<byte[]> valid = validFiles();
        Map<String, Integer> kinds = new TreeMap<>();
        int read = 0;
        int refused = 0;
        Path f = dir.resolve("corrupt.npy");
        for (int variant = 0; variant < 2000; variant++) {
            SplittableRandom rng = TestData.random(100_000 + variant);
            byte[] bytes = corrupt(valid.get(rng.nextInt(valid.size())), rng, kinds);
            Files.write(f, bytes);
            try {
                NpyArray a = Npy.read(f);
                // Accepted: a consistent file (e.g. a changed digit of a dimension with data to match, or padding).
                assertEquals(a.elementCount(), a.data().length);
                assertEquals(bytes.length, headerEnd(bytes) + a.elementCount() * (a.sourceDtype().equals("<f8") ? 8 : 4),
                        "accepted a file whose size does not match its header");
                read++;
            } catch (NpyFormatException e) {
                assertTrue(e.getMessage().startsWith(f.toString() + ": "), e.getMessage());
                refused++;
            } catch (RuntimeException | IOException | OutOfMemoryError e) {
                fail("variant " + variant + " (" + Arrays.toString(Arrays.copyOf(bytes, Math.min(bytes.length, 140)))
                        + "): " + e, e);
            }
        }
        assertTrue(refused > 1700 && read > 20, refused + " refused, " + read + " read; kinds " + kinds);
        assertEquals(7, kinds.size(), kinds.toString());
    }

    @Test
    void commandsGivenCorruptedFilesExitTwoWithOneLineAndWriteNothing() throws IOException {
        List<byte[]> valid = validFiles().subList(0, 1); // (4, 3, 5): a valid x for forward
        Map<String, Integer> kinds = new TreeMap<>();
        int ok = 0;
        int refused = 0;
        Path f = dir.resolve("corrupt.npy");
        Path out = dir.resolve("out");
        for (int variant = 0; variant < 60; variant++) {
            SplittableRandom rng = TestData.random(200_000 + variant);
            Files.write(f, corrupt(valid.get(0), rng, kinds));
            String option = rng.nextBoolean() ? "--x" : "--gamma";
            InProcess.Result r = option.equals("--x")
                    ? InProcess.run("forward", "--x", s(f), "--backend", "cpu", "--out", s(out))
                    : InProcess.run("forward", "--x", s(x), "--gamma", s(f), "--backend", "cpu", "--out", s(out));
            if (r.exitCode() == 0) {
                ok++;
                deleteTree(out);
                continue;
            }
            String line = CliReliabilityTest.assertRefused(r, option);
            assertFalse(Files.exists(out), "variant " + variant + " left " + out + ": " + line);
            refused++;
        }
        assertTrue(refused > 45, refused + " refused, " + ok + " ran");
    }

    // ---- truncated and over-long files ---------------------------------------------------------------------------

    @Test
    void everyTruncationAndTrailingBytesAreRefused() throws IOException {
        Path f = dir.resolve("cut.npy");
        int variants = 0;
        for (byte[] valid : validFiles()) {
            for (int len = 0; len < valid.length; len++) {
                Files.write(f, Arrays.copyOf(valid, len));
                assertRefusedByNpy(f, len < headerEnd(valid) ? "" : "(truncated)");
                variants++;
            }
            for (int extra = 1; extra <= 70; extra++) {
                Files.write(f, Arrays.copyOf(valid, valid.length + extra));
                assertRefusedByNpy(f, "(trailing bytes)");
                variants++;
            }
        }
        assertTrue(variants > 1100, variants + " variants");
    }

    private static void assertRefusedByNpy(Path f, String fragment) {
        try {
            Npy.read(f);
            fail(f + " was read");
        } catch (NpyFormatException e) {
            assertTrue(e.getMessage().startsWith(f + ": ") && e.getMessage().contains(fragment), e.getMessage());
        } catch (IOException e) {
            fail(e);
        }
    }

    @Test
    void truncatedAndOverLongPipesAreRefusedToo() throws Exception {
        Path fifo = dir.resolve("in.fifo");
        if (new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor() != 0) return; // no mkfifo: nothing to test
        byte[] valid = validFiles().get(0);
        SplittableRandom rng = TestData.random(5);
        int variants = 0;
        for (int i = 0; i < 24; i++) {
            int len = i < 16 ? rng.nextInt(valid.length) : valid.length + 1 + rng.nextInt(64);
            byte[] bytes = Arrays.copyOf(valid, len);
            Thread writer = new Thread(() -> {
                try {
                    Files.write(fifo, bytes);
                } catch (IOException e) {
                    // the reader may stop early (trailing bytes): a broken pipe is expected then
                }
            });
            writer.setDaemon(true);
            writer.start();
            try {
                Npy.read(fifo);
                fail("a pipe of " + len + " bytes was read");
            } catch (NpyFormatException e) {
                assertTrue(e.getMessage().startsWith(fifo + ": "), e.getMessage());
                assertTrue(len < valid.length ? !e.getMessage().contains("trailing")
                        : e.getMessage().contains("trailing bytes"), len + ": " + e.getMessage());
            }
            writer.join(5000);
            variants++;
        }
        assertEquals(24, variants);
    }

    // ---- random option values ------------------------------------------------------------------------------------

    /** Values that have broken command lines: empty, signs, under- and overflow, non-numbers, separators. */
    private static final String[] NASTY = {"", " ", "-1", "0", "-0", "1e-400", "1e400", "-1e400", "NaN", "Infinity",
        "-Infinity", "0x1p-2000", "abc", "1,2", ",", "1,,2", "99999999999999999999", "2147483648", "-2147483649",
        "1e-45", "1.5", "0.5", "1", "2", "1e-5", "3e38", "4e38", "\u00e9", "--out", "1 2"};

    /** The options a variant may set, with a few valid values of each that keep the run short. */
    private record Fuzz(String command, String option, String[] valid) {
    }

    private static final List<Fuzz> FUZZ = List.of(
        new Fuzz("forward", "--eps", new String[] {"1e-5", "0.1"}),
        new Fuzz("forward", "--momentum", new String[] {"0.1", "cumulative", "1"}),
        new Fuzz("forward", "--num-batches-tracked", new String[] {"0", "5"}),
        new Fuzz("forward", "--layout", new String[] {"channels-last", "NCL", "NLC", "NCHW"}),
        new Fuzz("forward", "--mode", new String[] {"train", "eval", "EVAL"}),
        new Fuzz("forward", "--backend", new String[] {"cpu", "CPU"}),
        new Fuzz("backward", "--eps", new String[] {"1e-3"}),
        new Fuzz("backward", "--mode", new String[] {"train", "eval"}),
        new Fuzz("backward", "--layout", new String[] {"channels-first", "NC"}),
        new Fuzz("train", "--epochs", new String[] {"1"}),
        new Fuzz("train", "--batch-size", new String[] {"400", "1797"}),
        new Fuzz("train", "--lr", new String[] {"0.05"}),
        new Fuzz("train", "--momentum", new String[] {"0", "0.5"}),
        new Fuzz("train", "--weight-decay", new String[] {"0", "1e-4"}),
        new Fuzz("train", "--hidden", new String[] {"4", "3,2"}),
        new Fuzz("train", "--seed", new String[] {"7", "-3"}),
        new Fuzz("train", "--test-fraction", new String[] {"0.5", "0.05"}),
        new Fuzz("train", "--data", new String[] {"digits"}),
        new Fuzz("train", "--backend", new String[] {"cpu"}),
        new Fuzz("bench", "--shape", new String[] {"2,3,4", "5,2"}),
        new Fuzz("bench", "--repeat", new String[] {"1"}),
        new Fuzz("bench", "--op", new String[] {"forward-eval", "backward"}),
        new Fuzz("bench", "--layout", new String[] {"NHWC", "channels-first"}),
        new Fuzz("check", "--backends", new String[] {"cpu"}),
        new Fuzz("check", "--seed", new String[] {"1"}));

    private List<String> baseline(String command, Path out) {
        return new ArrayList<>(switch (command) {
            case "forward" -> List.of("forward", "--x", s(x), "--backend", "cpu", "--out", s(out));
            case "backward" -> List.of("backward", "--x", s(x), "--dy", s(dy), "--backend", "cpu", "--out", s(out));
            case "train" -> List.of("train", "--epochs", "1", "--hidden", "4", "--batch-size", "600", "--no-progress",
                    "--backend", "cpu", "--out", s(out));
            case "bench" -> List.of("bench", "--backend", "cpu", "--shape", "2,3,4", "--repeat", "1", "--op",
                    "forward-eval", "--warmup", "0", "--json");
            default -> List.of("check", "--backends", "cpu", "--json");
        });
    }

    @Test
    void randomOptionValuesRunOrAreRefusedNamingTheOption() throws IOException {
        int ran = 0;
        int refused = 0;
        int trained = 0;
        Path out = dir.resolve("out");
        java.io.PrintStream stdout = System.out;
        java.io.ByteArrayOutputStream sink = new java.io.ByteArrayOutputStream();
        System.setOut(new java.io.PrintStream(sink, true)); // bench and check print their tables on System.out
        try {
            for (int variant = 0; variant < 200; variant++) {
                SplittableRandom rng = TestData.random(300_000 + variant);
                Fuzz fz = FUZZ.get(rng.nextInt(FUZZ.size()));
                if (fz.command().equals("train") && trained >= 4) continue; // a run trains and plots: the slow kind
                // Mostly nasty values; a valid one now and then, so that the baseline is known to run.
                String value = rng.nextInt(5) == 0 ? fz.valid()[rng.nextInt(fz.valid().length)]
                        : NASTY[rng.nextInt(NASTY.length)];
                if (fz.command().equals("train") && value.matches("\\d+") && !fz.option().equals("--seed")
                        && !Arrays.asList(fz.valid()).contains(value) && (value.length() > 1 || value.compareTo("4") > 0)) {
                    value = fz.valid()[0]; // a large valid epoch count or width would train for minutes
                }
                List<String> args = baseline(fz.command(), out);
                int at = args.indexOf(fz.option());
                if (at >= 0) {
                    args.set(at + 1, value);
                } else {
                    args.add(fz.option());
                    args.add(value);
                }
                if (fz.command().equals("backward") && fz.option().equals("--mode") && value.equalsIgnoreCase("eval")) {
                    args.addAll(List.of("--running-mean", s(vectors.get("--running-mean")), "--running-var",
                            s(vectors.get("--running-var"))));
                }
                InProcess.Result r = InProcess.run(args.toArray(String[]::new));
                if (fz.command().equals("train") && r.exitCode() == 0) trained++;
                String what = "variant " + variant + ": " + String.join(" ", args) + "\n" + r;
                if (r.exitCode() == 0) {
                    ran++;
                } else {
                    assertEquals(2, r.exitCode(), what);
                    String line = r.errorLine();
                    assertTrue(line.contains(fz.option()), "the error line must name " + fz.option() + "\n" + what);
                    assertFalse(r.stderr().contains("\tat "), what);
                    assertFalse(Files.exists(out), "a refused run wrote " + out + "\n" + what);
                    refused++;
                }
                deleteTree(out);
            }
        } finally {
            System.setOut(stdout);
        }
        assertTrue(refused > 80 && ran > 20 && trained == 4, refused + " refused, " + ran + " ran");
    }

    // ---- random aliasing of inputs and outputs -------------------------------------------------------------------

    @Test
    void anyInputSpelledAsAnOutputIsRefusedAndLeftIntact() throws IOException {
        String[] forwardOut = {"y.npy", "save_mean.npy", "save_invstd.npy", "running_mean.npy", "running_var.npy"};
        String[] backwardOut = {"dx.npy", "dgamma.npy", "dbeta.npy"};
        int refused = 0;
        int ran = 0;
        for (int variant = 0; variant < 40; variant++) {
            SplittableRandom rng = TestData.random(400_000 + variant);
            Path out = dir.resolve("out" + variant);
            Files.createDirectories(out);
            boolean forward = rng.nextBoolean();
            String[] outputs = forward ? forwardOut : backwardOut;
            String output = outputs[rng.nextInt(outputs.length)];
            // The options of this command that take a file, with their (fresh copies of the) inputs.
            Map<String, Path> given = new LinkedHashMap<>();
            given.put("--x", copy(x, out.resolveSibling("in" + variant + "-x.npy")));
            if (!forward) given.put("--dy", copy(dy, out.resolveSibling("in" + variant + "-dy.npy")));
            List<String> optional = forward ? List.of("--gamma", "--beta", "--running-mean", "--running-var")
                    : List.of("--gamma", "--save-mean", "--save-invstd");
            boolean saved = rng.nextBoolean(); // --save-mean and --save-invstd go together
            for (String o : optional) {
                if (o.startsWith("--save-") ? saved : rng.nextBoolean()) {
                    given.put(o, copy(vectors.get(o), out.resolveSibling("in" + variant + o + ".npy")));
                }
            }
            List<String> options = new ArrayList<>(given.keySet());
            String victim = options.get(rng.nextInt(options.size()));
            boolean collide = rng.nextInt(5) > 0;
            String spelling = "none";
            if (collide) {
                Path input = given.get(victim);
                Path target = out.resolve(output);
                switch (rng.nextInt(4)) {
                    case 0 -> { // the input lives in the output folder under an output's name
                        Files.move(input, target);
                        given.put(victim, target);
                        spelling = "same path";
                    }
                    case 1 -> {
                        Files.createSymbolicLink(target, input);
                        spelling = "symbolic link";
                    }
                    case 2 -> {
                        Files.createLink(target, input);
                        spelling = "hard link";
                    }
                    default -> { // named through .. and a symbolic link to the folder
                        Files.move(input, target);
                        Path alias = Files.createSymbolicLink(dir.resolve("alias" + variant), out);
                        given.put(victim, alias.resolve("..").resolve(out.getFileName()).resolve(output));
                        spelling = "..";
                    }
                }
            }
            Map<String, byte[]> before = new LinkedHashMap<>();
            for (Map.Entry<String, Path> e : given.entrySet()) before.put(e.getKey(), Files.readAllBytes(e.getValue()));
            List<String> args = new ArrayList<>(List.of(forward ? "forward" : "backward", "--backend", "cpu", "--out",
                    s(out)));
            for (Map.Entry<String, Path> e : given.entrySet()) args.addAll(List.of(e.getKey(), s(e.getValue())));
            InProcess.Result r = InProcess.run(args.toArray(String[]::new));
            String what = "variant " + variant + " (" + victim + " as " + output + " by " + spelling + "): "
                    + String.join(" ", args) + "\n" + r;
            if (collide) {
                assertEquals(2, r.exitCode(), what);
                assertTrue(r.errorLine().contains("is the input " + victim + " ")
                        && r.errorLine().contains("refusing to overwrite an input"), what);
                refused++;
            } else {
                assertEquals(0, r.exitCode(), what);
                ran++;
            }
            for (Map.Entry<String, Path> e : given.entrySet()) {
                assertArrayEquals(before.get(e.getKey()), Files.readAllBytes(e.getValue()), e.getKey() + " changed: " + what);
            }
        }
        assertTrue(refused > 25 && ran > 4, refused + " refused, " + ran + " ran");
    }

    private static Path copy(Path from, Path to) throws IOException {
        Files.copy(from, to, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        return to;
    }

    private static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) return;
        try (var s = Files.walk(p)) {
            for (Path q : s.sorted(java.util.Comparator.reverseOrder()).toList()) Files.delete(q);
        }
    }
}
