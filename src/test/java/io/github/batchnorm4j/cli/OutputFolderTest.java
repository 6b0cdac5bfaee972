package io.github.batchnorm4j.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The output folder of the commands, all or nothing: files appear only after every one was written; a failure at any
 * point (a full disk in the middle of a file, an exception between files) leaves an existing folder exactly as it
 * was and creates no new folder; nothing named .batchnorm4j-* is ever left behind.
 */
class OutputFolderTest {
    @TempDir
    Path tmp;

    private static final List<String> NAMES = List.of("a.npy", "b.npy", "c.npy");

    /** Every file under {@code dir} (recursively) with its bytes, for before/after comparisons. */
    static Map<String, String> contents(Path dir) throws IOException {
        Map<String, String> m = new TreeMap<>();
        if (!Files.exists(dir)) return m;
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.toList()) {
                String key = dir.relativize(p).toString();
                if (Files.isDirectory(p)) m.put(key + "/", "");
                else m.put(key, new String(Files.readAllBytes(p), StandardCharsets.ISO_8859_1));
            }
        }
        return m;
    }

    private static void write(Path p, String text) {
        try {
            Files.writeString(p, text);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @Test
    void aNewFolderAppearsWithAllItsFilesAtOnce() throws IOException {
        Path out = tmp.resolve("new/nested/out");
        try (OutputFolder f = OutputFolder.prepare("--out", out, NAMES, Map.of())) {
            for (String n : NAMES) f.write(n, d -> write(d.resolve(n), n + " data"));
            assertFalse(Files.exists(out), "nothing visible before the commit");
            f.commit();
        }
        assertEquals(Map.of("a.npy", "a.npy data", "b.npy", "b.npy data", "c.npy", "c.npy data", "", ""),
                withoutRoot(contents(out)));
        assertEquals(List.of("out"), list(out.getParent()), "no staging folder left beside it");
    }

    private static Map<String, String> withoutRoot(Map<String, String> m) {
        Map<String, String> r = new TreeMap<>(m);
        r.remove("/");
        r.put("", "");
        return r;
    }

    private static List<String> list(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void aFullDiskInTheMiddleOfAFileLeavesAnExistingFolderAsItWas() throws IOException {
        Path out = tmp.resolve("out");
        Files.createDirectories(out);
        for (String n : NAMES) write(out.resolve(n), "old " + n);
        write(out.resolve("notes.txt"), "the user's");
        Map<String, String> before = contents(out);
        IllegalArgumentException e;
        try (OutputFolder f = OutputFolder.prepare("--out", out, NAMES, Map.of())) {
            f.write("a.npy", d -> write(d.resolve("a.npy"), "new a"));
            // The second file fails half-way, as a write on a full disk does.
            e = assertThrows(IllegalArgumentException.class, () -> f.write("b.npy", d -> {
                try (OutputStream o = Files.newOutputStream(d.resolve("b.npy"))) {
                    o.write("half".getBytes(StandardCharsets.US_ASCII));
                    throw new FileSystemException(d.resolve("b.npy").toString(), null, "No space left on device");
                }
            }));
        }
        assertTrue(e.getMessage().startsWith("--out " + out + ": writing b.npy failed: "), e.getMessage());
        assertTrue(e.getMessage().contains("No space left on device; nothing was written"), e.getMessage());
        assertEquals(before, contents(out), "every old file intact, no staging folder left");
    }

    @Test
    void anExceptionBetweenFilesLeavesNoNewFolderAndNoParentItCreated() throws IOException {
        Path out = tmp.resolve("p/q/out");
        try (OutputFolder f = OutputFolder.prepare("--out", out, NAMES, Map.of())) {
            f.write("a.npy", d -> write(d.resolve("a.npy"), "a"));
            assertTrue(Files.isDirectory(tmp.resolve("p/q")), "parents exist while staging");
            // e.g. the backend failed after the first output: no commit
        }
        assertEquals(List.of(), list(tmp), "the parents this created are removed too");
    }

    @Test
    void commitRefusesAMissingFileAndTheFolderIsStillCleanedUp() throws IOException {
        Path out = tmp.resolve("out");
        try (OutputFolder f = OutputFolder.prepare("--out", out, NAMES, Map.of())) {
            f.write("a.npy", d -> write(d.resolve("a.npy"), "a"));
            assertThrows(IllegalStateException.class, f::commit);
        }
        assertEquals(List.of(), list(tmp));
    }

    @Test
    void inAnExistingFolderOnlyTheCommandsFilesAreReplaced() throws IOException {
        Path out = tmp.resolve("out");
        Files.createDirectories(out);
        write(out.resolve("a.npy"), "old a");
        write(out.resolve("notes.txt"), "kept");
        try (OutputFolder f = OutputFolder.prepare("--out", out, NAMES, Map.of())) {
            for (String n : NAMES) f.write(n, d -> write(d.resolve(n), "new " + n));
            assertEquals("old a", Files.readString(out.resolve("a.npy")), "not before the commit");
            f.commit();
        }
        assertEquals("new a.npy", Files.readString(out.resolve("a.npy")));
        assertEquals("kept", Files.readString(out.resolve("notes.txt")));
        assertEquals(List.of("a.npy", "b.npy", "c.npy", "notes.txt"), list(out));
    }

    @Test
    void refusesAnInputAsAnOutputThroughLinksAndDotDot() throws IOException {
        Path out = tmp.resolve("out");
        Files.createDirectories(out);
        Path input = tmp.resolve("x.npy");
        write(input, "input");
        Files.createSymbolicLink(out.resolve("a.npy"), input);
        assertInputRefused(out, input);
        Files.delete(out.resolve("a.npy"));
        Files.createLink(out.resolve("a.npy"), input);
        assertInputRefused(out, input);
        Files.delete(out.resolve("a.npy"));
        Files.copy(input, out.resolve("a.npy"));
        assertInputRefused(tmp.resolve("out/../out"), out.resolve("a.npy"));
        assertEquals("input", Files.readString(input));
    }

    private void assertInputRefused(Path out, Path input) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> OutputFolder.prepare("--out", out, NAMES, Map.of("--x", input)));
        assertTrue(e.getMessage().contains("is the input --x " + input + "; refusing to overwrite an input"),
                e.getMessage());
    }

    @Test
    void aSymbolicLinkToAnotherFileIsReplacedNotFollowed() throws IOException {
        Path out = tmp.resolve("out");
        Files.createDirectories(out);
        Path elsewhere = tmp.resolve("elsewhere.npy");
        write(elsewhere, "not an input");
        Files.createSymbolicLink(out.resolve("a.npy"), elsewhere);
        try (OutputFolder f = OutputFolder.prepare("--out", out, NAMES, Map.of())) {
            for (String n : NAMES) f.write(n, d -> write(d.resolve(n), "new " + n));
            f.commit();
        }
        assertFalse(Files.isSymbolicLink(out.resolve("a.npy")));
        assertEquals("not an input", Files.readString(elsewhere), "the link's target is untouched");
    }

    @Test
    void refusesEmptyPathsFilesAndFoldersInTheWay() throws IOException {
        assertMessage("--out: expected a folder, got an empty path", Path.of(""));
        Path file = tmp.resolve("file");
        write(file, "f");
        assertMessage("--out " + file + ": expected a folder, got an existing file", file);
        assertMessage("--out " + file.resolve("sub") + ": " + file + " is a file, not a folder", file.resolve("sub"));
        Path out = tmp.resolve("out");
        Files.createDirectories(out.resolve("b.npy"));
        assertMessage("--out " + out + ": " + out.resolve("b.npy") + " is a folder, where the output file b.npy goes;"
                + " nothing was written", out);
        assertArrayEquals(new String[] {"b.npy"}, list(out).toArray());
    }

    private static void assertMessage(String expected, Path out) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> OutputFolder.prepare("--out", out, NAMES, Map.of()));
        assertEquals(expected, e.getMessage());
    }
}
