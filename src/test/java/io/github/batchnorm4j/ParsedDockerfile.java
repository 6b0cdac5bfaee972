package io.github.batchnorm4j;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * A Dockerfile read into instructions grouped by build stage: as much of the Dockerfile syntax as our
 * Dockerfile uses, so that {@code DockerfileTest} can check it without a Docker engine.
 *
 * <p>Understood: comment lines (also inside continued instructions), line continuations with the default escape
 * character {@code \}, {@code FROM [--platform=P] IMAGE [AS NAME]}, {@code COPY}/{@code ADD} with leading
 * {@code --flag[=value]} options in shell or JSON form, {@code WORKDIR} (absolute or relative), {@code ENV} in both
 * forms, and exec-form (JSON) {@code ENTRYPOINT}/{@code CMD}. Anything it cannot read faithfully (an
 * {@code # escape=} directive, a here-document in {@code COPY}/{@code ADD}, an instruction before the first
 * {@code FROM} other than {@code ARG}) is an {@link IllegalArgumentException} naming the line, never a guess.
 * Variables ({@code $X}) are not expanded.
 */
final class ParsedDockerfile {

    /** One instruction: the line it starts on (1-based), its keyword in upper case, and its argument text. */
    record Instruction(int line, String keyword, String arguments) {
    }

    /**
     * One build stage: its position (0-based), base image as written, name ({@code AS NAME}; empty when
     * unnamed), and its instructions after the {@code FROM}.
     */
    record Stage(int index, String image, Optional<String> name, int line, List<Instruction> instructions) {

        /** The stage's instructions with this keyword, in order. */
        List<Instruction> all(String keyword) {
            return instructions.stream().filter(i -> i.keyword().equals(keyword)).toList();
        }

        /** The working directory in force after the stage's last {@code WORKDIR} ({@code /} when none). */
        String finalWorkdir() {
            String dir = "/";
            for (Instruction i : all("WORKDIR")) {
                dir = resolve(dir, i.arguments().trim());
            }
            return dir;
        }

        /** The working directory in force at one of this stage's instructions. */
        String workdirAt(Instruction at) {
            String dir = "/";
            for (Instruction i : instructions) {
                if (i == at) {
                    return dir;
                }
                if (i.keyword().equals("WORKDIR")) {
                    dir = resolve(dir, i.arguments().trim());
                }
            }
            throw new IllegalArgumentException("instruction at line " + at.line() + " is not in stage " + index);
        }

        /** The stage's environment: every {@code ENV} key with its last value (unexpanded). */
        Map<String, String> env() {
            Map<String, String> env = new LinkedHashMap<>();
            for (Instruction i : all("ENV")) {
                env.putAll(parseEnv(i));
            }
            return env;
        }
    }

    /**
     * A {@code COPY} or {@code ADD}: its {@code --from} value (empty: from the build context), sources as written,
     * destination as written, and the instruction itself.
     */
    record Copy(Instruction instruction, Optional<String> from, List<String> sources, String destination,
            Map<String, String> flags) {

        /** The absolute path in the image where {@code source} lands, given the stage's working directory. */
        String target(String source, String workdir) {
            String dest = resolve(workdir, destination);
            if (destination.endsWith("/") || sources.size() > 1) {
                String base = source.replaceAll("/+$", "");
                return dest.replaceAll("/+$", "") + "/" + base.substring(base.lastIndexOf('/') + 1);
            }
            return dest;
        }
    }

    private final List<Stage> stages;

    private ParsedDockerfile(List<Stage> stages) {
        this.stages = Collections.unmodifiableList(stages);
    }

    /** Reads and parses the Dockerfile at {@code path} (UTF-8). */
    static ParsedDockerfile read(Path path) throws IOException {
        return parse(Files.readString(path, StandardCharsets.UTF_8));
    }

    /** Parses Dockerfile text; see the class comment for what is understood. */
    static ParsedDockerfile parse(String text) {
        List<Instruction> instructions = joinLines(text);
        List<Stage> stages = new ArrayList<>();
        List<Instruction> current = null;
        for (Instruction i : instructions) {
            if (i.keyword().equals("FROM")) {
                current = new ArrayList<>();
                stages.add(parseFrom(i, stages.size(), current));
            } else if (current == null) {
                if (!i.keyword().equals("ARG")) {
                    throw new IllegalArgumentException(
                            "line " + i.line() + ": " + i.keyword() + " before the first FROM (only ARG may be)");
                }
            } else {
                current.add(i);
            }
        }
        if (stages.isEmpty()) {
            throw new IllegalArgumentException("no FROM instruction: not a Dockerfile");
        }
        return new ParsedDockerfile(stages);
    }

    /** The build stages in file order. */
    List<Stage> stages() {
        return stages;
    }

    /** The last stage: the image that {@code docker build} produces by default. */
    Stage finalStage() {
        return stages.get(stages.size() - 1);
    }

    /**
     * The stage a {@code --from=REF} (or {@code FROM REF}) at stage {@code fromIndex} refers to: a name or index
     * of an earlier stage. Empty when REF is no earlier stage (it would then be pulled as an image).
     */
    Optional<Stage> earlierStage(String ref, int fromIndex) {
        for (Stage s : stages.subList(0, fromIndex)) {
            if (s.name().map(n -> n.equalsIgnoreCase(ref)).orElse(false) || ref.equals(Integer.toString(s.index()))) {
                return Optional.of(s);
            }
        }
        return Optional.empty();
    }

    /** Every {@code COPY} and {@code ADD} of a stage, parsed. */
    static List<Copy> copies(Stage stage) {
        List<Copy> copies = new ArrayList<>();
        for (Instruction i : stage.instructions()) {
            if (i.keyword().equals("COPY") || i.keyword().equals("ADD")) {
                copies.add(parseCopy(i));
            }
        }
        return copies;
    }

    /** The strings of an exec-form (JSON array) instruction such as {@code ENTRYPOINT ["a", "b"]}. */
    static List<String> execForm(Instruction i) {
        String a = i.arguments().trim();
        if (!a.startsWith("[")) {
            throw new IllegalArgumentException("line " + i.line() + ": " + i.keyword()
                    + " is in shell form, expected the exec form [\"...\"]: " + a);
        }
        return parseJsonStrings(a, i.line());
    }

    // ---- parsing ----

    private static List<Instruction> joinLines(String text) {
        String[] lines = text.split("\r?\n", -1);
        List<Instruction> out = new ArrayList<>();
        StringBuilder pending = null;
        int start = 0;
        for (int n = 0; n < lines.length; n++) {
            String line = lines[n];
            String trimmed = line.strip();
            if (out.isEmpty() && pending == null
                    && trimmed.toLowerCase(Locale.ROOT).matches("#\\s*escape\\s*=.*")) {
                throw new IllegalArgumentException("line " + (n + 1) + ": escape directive is not supported");
            }
            if (trimmed.startsWith("#") || trimmed.isEmpty()) {
                continue; // comments and blank lines vanish, also inside a continued instruction
            }
            if (pending == null) {
                pending = new StringBuilder();
                start = n + 1;
            }
            String body = line.stripTrailing();
            if (body.endsWith("\\")) {
                pending.append(body, 0, body.length() - 1);
                continue;
            }
            pending.append(body);
            out.add(toInstruction(start, pending.toString()));
            pending = null;
        }
        if (pending != null) {
            out.add(toInstruction(start, pending.toString()));
        }
        return out;
    }

    private static Instruction toInstruction(int line, String text) {
        String t = text.strip();
        int space = indexOfWhitespace(t);
        String keyword = (space < 0 ? t : t.substring(0, space)).toUpperCase(Locale.ROOT);
        String arguments = space < 0 ? "" : t.substring(space).strip();
        return new Instruction(line, keyword, arguments);
    }

    private static Stage parseFrom(Instruction i, int index, List<Instruction> body) {
        List<String> tokens = new ArrayList<>(List.of(i.arguments().split("\\s+")));
        tokens.removeIf(t -> t.startsWith("--"));
        if (tokens.size() == 1) {
            return new Stage(index, tokens.get(0), Optional.empty(), i.line(), body);
        }
        if (tokens.size() == 3 && tokens.get(1).equalsIgnoreCase("AS")) {
            return new Stage(index, tokens.get(0), Optional.of(tokens.get(2)), i.line(), body);
        }
        throw new IllegalArgumentException("line " + i.line() + ": expected FROM IMAGE [AS NAME], got FROM "
                + i.arguments());
    }

    private static Copy parseCopy(Instruction i) {
        String rest = i.arguments().strip();
        Map<String, String> flags = new LinkedHashMap<>();
        while (rest.startsWith("--")) {
            int end = indexOfWhitespace(rest);
            String flag = end < 0 ? rest : rest.substring(0, end);
            int eq = flag.indexOf('=');
            flags.put(eq < 0 ? flag.substring(2) : flag.substring(2, eq), eq < 0 ? "" : flag.substring(eq + 1));
            rest = end < 0 ? "" : rest.substring(end).strip();
        }
        if (rest.contains("<<")) {
            throw new IllegalArgumentException("line " + i.line() + ": here-documents in " + i.keyword()
                    + " are not supported");
        }
        List<String> paths = rest.startsWith("[") ? parseJsonStrings(rest, i.line())
                : rest.isEmpty() ? List.of() : List.of(rest.split("\\s+"));
        if (paths.size() < 2) {
            throw new IllegalArgumentException("line " + i.line() + ": " + i.keyword()
                    + " needs at least one source and a destination, got: " + i.arguments());
        }
        return new Copy(i, Optional.ofNullable(flags.get("from")), List.copyOf(paths.subList(0, paths.size() - 1)),
                paths.get(paths.size() - 1), flags);
    }

    /** ENV KEY=VALUE ... (values may be double-quoted) or the older ENV KEY VALUE. */
    private static Map<String, String> parseEnv(Instruction i) {
        String a = i.arguments().strip();
        Map<String, String> env = new LinkedHashMap<>();
        int firstSpace = indexOfWhitespace(a);
        String first = firstSpace < 0 ? a : a.substring(0, firstSpace);
        if (!first.contains("=")) {
            if (firstSpace < 0) {
                throw new IllegalArgumentException("line " + i.line() + ": ENV " + a + " has no value");
            }
            env.put(first, a.substring(firstSpace).strip());
            return env;
        }
        int p = 0;
        while (p < a.length()) {
            while (p < a.length() && Character.isWhitespace(a.charAt(p))) {
                p++;
            }
            int eq = a.indexOf('=', p);
            if (p >= a.length()) {
                break;
            }
            if (eq < 0) {
                throw new IllegalArgumentException("line " + i.line() + ": ENV expected KEY=VALUE at: "
                        + a.substring(p));
            }
            String key = a.substring(p, eq);
            StringBuilder value = new StringBuilder();
            p = eq + 1;
            boolean quoted = false;
            while (p < a.length() && (quoted || !Character.isWhitespace(a.charAt(p)))) {
                char c = a.charAt(p);
                if (c == '"') {
                    quoted = !quoted;
                } else if (c == '\\' && p + 1 < a.length()) {
                    value.append(a.charAt(++p));
                } else {
                    value.append(c);
                }
                p++;
            }
            if (quoted) {
                throw new IllegalArgumentException("line " + i.line() + ": unterminated quote in ENV " + key);
            }
            env.put(key, value.toString());
        }
        return env;
    }

    private static List<String> parseJsonStrings(String json, int line) {
        List<String> out = new ArrayList<>();
        String s = json.strip();
        if (!s.startsWith("[") || !s.endsWith("]")) {
            throw new IllegalArgumentException("line " + line + ": expected a JSON array of strings: " + json);
        }
        int p = 1;
        int end = s.length() - 1;
        boolean expectValue = true;
        while (true) {
            while (p < end && Character.isWhitespace(s.charAt(p))) {
                p++;
            }
            if (p >= end) {
                break;
            }
            char c = s.charAt(p);
            if (c == ',' && !expectValue) {
                expectValue = true;
                p++;
                continue;
            }
            if (c != '"' || !expectValue) {
                throw new IllegalArgumentException("line " + line + ": bad JSON array at column " + p + ": " + json);
            }
            StringBuilder v = new StringBuilder();
            p++;
            while (p < end && s.charAt(p) != '"') {
                if (s.charAt(p) == '\\' && p + 1 < end) {
                    p++;
                }
                v.append(s.charAt(p++));
            }
            if (p >= end) {
                throw new IllegalArgumentException("line " + line + ": unterminated string in " + json);
            }
            p++;
            out.add(v.toString());
            expectValue = false;
        }
        if (expectValue && !out.isEmpty()) {
            throw new IllegalArgumentException("line " + line + ": trailing comma in " + json);
        }
        return out;
    }

    /** {@code path} resolved against the absolute directory {@code dir}, without normalising {@code ..}. */
    static String resolve(String dir, String path) {
        if (path.startsWith("/")) {
            return path;
        }
        return (dir.endsWith("/") ? dir : dir + "/") + (path.startsWith("./") ? path.substring(2) : path);
    }

    private static int indexOfWhitespace(String s) {
        for (int k = 0; k < s.length(); k++) {
            if (Character.isWhitespace(s.charAt(k))) {
                return k;
            }
        }
        return -1;
    }
}
