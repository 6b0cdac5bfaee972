package io.github.batchnorm4j.mutation;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * The executed PTX lines of a run, read from the emulator's coverage file ({@code coverage.tsv} in the folder named by
 * {@code BATCHNORM4J_COVERAGE}; tab-separated: module, kernel, line, threads, ... ; {@code #} starts a comment). A line
 * counts as executed when some thread reached it.
 */
final class Coverage {
    private final Map<String, Long> threads = new HashMap<>();

    private Coverage() {
    }

    /** Reads {@code path}, a coverage.tsv or the folder holding it. */
    static Coverage read(Path path) throws IOException {
        Path file = Files.isDirectory(path) ? path.resolve("coverage.tsv") : path;
        if (!Files.exists(file)) throw new IllegalArgumentException("--coverage: no file " + file);
        Coverage c = new Coverage();
        for (String row : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            if (row.isBlank() || row.startsWith("#")) continue;
            String[] f = row.split("\t", 5);
            if (f.length < 4) throw new IllegalArgumentException(file + ": expected module, kernel, line, threads in '" + row + "'");
            c.threads.merge(f[0] + ":" + Integer.parseInt(f[2]), Long.parseLong(f[3]), Long::sum);
        }
        if (c.threads.isEmpty()) throw new IllegalArgumentException(file + ": no coverage rows (did the tests run any kernel?)");
        return c;
    }

    /** Whether some thread executed {@code line} of {@code module}. */
    boolean executed(String module, int line) {
        return threads.getOrDefault(module + ":" + line, 0L) > 0;
    }

    /** Whether the coverage has any row of {@code module}. */
    boolean knows(String module) {
        String prefix = module + ":";
        return threads.keySet().stream().anyMatch(k -> k.startsWith(prefix));
    }
}
