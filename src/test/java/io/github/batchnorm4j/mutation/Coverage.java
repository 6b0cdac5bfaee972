package io.github.batchnorm4j.mutation;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;

/**
 * The executed PTX lines of a run, read from the emulator's coverage file ({@code coverage.tsv} in the folder named by
 * {@code BATCHNORM4J_COVERAGE}; tab-separated: module, kernel, line, threads, guard-true, guarded, source, text;
 * {@code #} starts a comment). A line counts as executed when some thread reached it in the PTX text being mutated:
 * rows whose source (the hash of the module's text, {@link io.github.batchnorm4j.ptx.Coverage#sourceHash}) is another
 * text's, e.g. the mutants some tests launch under the shipped module's name, do not count. Rows of files written
 * before the source column (7 columns) count for every text.
 */
final class Coverage {
    private final Map<String, Long> threads = new HashMap<>();
    private final Set<String> otherTexts = new HashSet<>();

    private Coverage() {
    }

    /**
     * Reads {@code path}, a coverage.tsv or the folder holding it, keeping the rows of the texts in {@code ptx}
     * (module name to PTX text; a module not in it keeps all its rows).
     */
    static Coverage read(Path path, Map<String, String> ptx) throws IOException {
        Path file = Files.isDirectory(path) ? path.resolve("coverage.tsv") : path;
        if (!Files.exists(file)) throw new IllegalArgumentException("--coverage: no file " + file);
        Map<String, String> sources = new HashMap<>();
        ptx.forEach((m, text) -> sources.put(m, io.github.batchnorm4j.ptx.Coverage.sourceHash(text)));
        Coverage c = new Coverage();
        for (String row : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            if (row.isBlank() || row.startsWith("#")) continue;
            String[] f = row.split("\t", 8);
            if (f.length < 4) throw new IllegalArgumentException(file + ": expected module, kernel, line, threads in '" + row + "'");
            String want = sources.get(f[0]);
            if (f.length == 8 && want != null && !f[6].equals(want)) {
                c.otherTexts.add(f[0]);
                continue;
            }
            c.threads.merge(f[0] + ":" + Integer.parseInt(f[2]), Long.parseLong(f[3]), Long::sum);
        }
        if (c.threads.isEmpty() && c.otherTexts.isEmpty()) {
            throw new IllegalArgumentException(file + ": no coverage rows (did the tests run any kernel?)");
        }
        return c;
    }

    /** Whether some thread executed {@code line} of {@code module}. */
    boolean executed(String module, int line) {
        return threads.getOrDefault(module + ":" + line, 0L) > 0;
    }

    /** Whether the coverage has any row of {@code module} (of the text being mutated). */
    boolean knows(String module) {
        String prefix = module + ":";
        return threads.keySet().stream().anyMatch(k -> k.startsWith(prefix));
    }

    /** Whether the file has rows of {@code module} from other PTX texts (mutants, or a stale file of older PTX). */
    boolean hasOtherTexts(String module) {
        return otherTexts.contains(module);
    }
}
