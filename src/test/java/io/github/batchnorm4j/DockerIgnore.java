package io.github.batchnorm4j;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.PathMatcher;
import java.util.ArrayList;
import java.util.List;

/**
 * The patterns of a {@code .dockerignore} file, and whether they keep a path of the build context out.
 *
 * <p>Docker's rules, as far as our file needs them: one pattern a line, {@code #} lines are comments, a leading
 * {@code /} is dropped, {@code *} and {@code ?} stay inside one path segment, {@code **} spans any number of
 * segments (also none), a pattern that matches a folder excludes everything in it, a leading {@code !} re-includes,
 * and the last pattern that matches decides. Paths are relative to the context root, with {@code /} separators.
 */
final class DockerIgnore {

    private record Rule(String pattern, boolean include, List<PathMatcher> matchers) {
    }

    private final List<Rule> rules;

    private DockerIgnore(List<Rule> rules) {
        this.rules = rules;
    }

    /** Reads {@code .dockerignore} at {@code path}; a missing file ignores nothing. */
    static DockerIgnore read(Path path) throws IOException {
        return Files.exists(path) ? parse(Files.readString(path, StandardCharsets.UTF_8)) : parse("");
    }

    /** Parses {@code .dockerignore} text. */
    static DockerIgnore parse(String text) {
        List<Rule> rules = new ArrayList<>();
        for (String raw : text.split("\r?\n")) {
            String line = raw.strip();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            boolean include = line.startsWith("!");
            String pattern = (include ? line.substring(1) : line).strip().replaceAll("^/+", "")
                    .replaceAll("/+$", "");
            List<PathMatcher> matchers = new ArrayList<>();
            matchers.add(FileSystems.getDefault().getPathMatcher("glob:" + pattern));
            // Java's glob needs a segment for "**/"; Docker's "**/x" also matches "x" at the root.
            String p = pattern;
            while (p.startsWith("**/")) {
                p = p.substring(3);
                matchers.add(FileSystems.getDefault().getPathMatcher("glob:" + p));
            }
            rules.add(new Rule(line, include, matchers));
        }
        return new DockerIgnore(rules);
    }

    /** Whether {@code relativePath} (or a folder containing it) is kept out of the build context. */
    boolean excludes(String relativePath) {
        Path path = Path.of(relativePath.replaceAll("^(\\./)+", "").replaceAll("/+$", ""));
        boolean excluded = false;
        for (Rule rule : rules) {
            if (matchesItselfOrParent(rule, path)) {
                excluded = !rule.include();
            }
        }
        return excluded;
    }

    /** The first pattern that excludes {@code relativePath}, for error messages; empty string when none. */
    String ruleExcluding(String relativePath) {
        Path path = Path.of(relativePath.replaceAll("^(\\./)+", "").replaceAll("/+$", ""));
        String last = "";
        for (Rule rule : rules) {
            if (matchesItselfOrParent(rule, path)) {
                last = rule.include() ? "" : rule.pattern();
            }
        }
        return last;
    }

    private static boolean matchesItselfOrParent(Rule rule, Path path) {
        for (Path p = path; p != null; p = p.getParent()) {
            for (PathMatcher m : rule.matchers()) {
                if (m.matches(p)) {
                    return true;
                }
            }
        }
        return false;
    }
}
