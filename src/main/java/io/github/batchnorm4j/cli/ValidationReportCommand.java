package io.github.batchnorm4j.cli;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code batchnorm4j validation-report --dir DIR}: the last step of {@code scripts/gpu-validate.sh}. Reads what the
 * earlier steps left in DIR ({@code steps.tsv}, {@code info.json}, {@code tests.log}, {@code check.jsonl},
 * {@code bench-*.jsonl}), writes {@code report.json} (one object: device, steps, tests, check, every bench row and the
 * comparison) and {@code summary.txt} (our GB/s against cuDNN's and against the device-to-device copy of the same
 * bytes), and prints the summary. Exit 0 when every step passed, 1 otherwise. Hidden from {@code --help}: it is part of
 * the script, not of the command line users type.
 */
@Command(name = "validation-report", hidden = true, mixinStandardHelpOptions = true,
        description = "Writes report.json and summary.txt from the steps scripts/gpu-validate.sh ran (internal).")
final class ValidationReportCommand implements Callable<Integer> {
    /** What the kit promises: one GPU validated in under 8 minutes. */
    static final double BUDGET_SECONDS = 480;
    private static final Pattern SUREFIRE = Pattern.compile(
            "Tests run: (\\d+), Failures: (\\d+), Errors: (\\d+), Skipped: (\\d+)(?!.*Time elapsed)");

    @Option(names = "--dir", required = true, paramLabel = "DIR", description = "The folder of the steps' output.")
    Path dir;

    @Option(names = "--seconds", defaultValue = "-1", paramLabel = "S", description = "Wall time of the whole run.")
    double seconds;

    /** One line of steps.tsv. */
    record Step(String name, int exit, double seconds, String command) {
    }

    @Override
    public Integer call() throws IOException {
        if (!Files.isDirectory(dir)) throw new IllegalArgumentException("--dir: no folder " + dir);
        List<Step> steps = readSteps();
        List<String> failures = new ArrayList<>();
        List<Json> skipped = new ArrayList<>();
        for (Step s : steps) {
            if (s.name().startsWith("skipped-")) {
                skipped.add(new Json().put("step", s.name().substring("skipped-".length())).put("reason", s.command()));
            } else if (s.exit() != 0) {
                failures.add(s.name() + ": exit " + s.exit() + (s.exit() == 124 || s.exit() == 137 ? " (timed out)" : "")
                        + " (" + s.name() + ".err, and its output)");
            }
        }
        Map<String, Object> info = readObject("info.json");
        Json tests = tests(steps);
        Json check = check(steps, failures);
        List<Map<String, Object>> bench = new ArrayList<>();
        try (Stream<Path> files = Files.list(dir)) {
            for (Path p : files.filter(f -> f.getFileName().toString().matches("bench-.*\\.jsonl")).sorted().toList()) {
                bench.addAll(readLines(p));
            }
        }
        List<Json> comparison = compare(bench);
        boolean pass = failures.isEmpty();
        List<String> warnings = new ArrayList<>();
        if (seconds > BUDGET_SECONDS) {
            warnings.add(String.format(Locale.ROOT, "the run took %.0f s, over the %.0f s budget", seconds, BUDGET_SECONDS));
        }
        Json report = new Json().put("kind", "gpu-validation").put("result", pass ? "PASS" : "FAIL")
                .put("seconds", seconds < 0 ? null : seconds).put("device", backendDetail(info, "cuda"))
                .put("info", info).put("steps", steps.stream().filter(s -> !s.name().startsWith("skipped-"))
                        .map(s -> new Json().put("name", s.name()).put("exit", s.exit()).put("seconds", s.seconds())
                                .put("command", s.command())).toList())
                .put("skipped", skipped).put("tests", tests).put("check", check).put("bench", bench)
                .put("comparison", comparison).put("failures", failures).put("warnings", warnings);
        Files.writeString(dir.resolve("report.json"), report + "\n", StandardCharsets.UTF_8);
        String summary = summary(info, tests, check, comparison, skipped, failures, warnings, pass);
        Files.writeString(dir.resolve("summary.txt"), summary, StandardCharsets.UTF_8);
        System.out.print(summary);
        return pass ? Main.OK : Main.FAILED;
    }

    private List<Step> readSteps() throws IOException {
        Path p = dir.resolve("steps.tsv");
        if (!Files.exists(p)) throw new IllegalArgumentException("--dir: " + dir + " has no steps.tsv (not a gpu-validate run)");
        List<Step> out = new ArrayList<>();
        for (String line : Files.readAllLines(p, StandardCharsets.UTF_8)) {
            if (line.isBlank()) continue;
            String[] f = line.split("\t", 4);
            if (f.length < 4) throw new IllegalArgumentException(p + ": expected name, exit, seconds, command in '" + line + "'");
            out.add(new Step(f[0], Integer.parseInt(f[1].trim()), parseOr(f[2], 0), f[3]));
        }
        return out;
    }

    private static double parseOr(String s, double fallback) {
        try {
            return Double.parseDouble(s.trim());
        } catch (NumberFormatException e) {
            return fallback;
        }
    }

    private Map<String, Object> readObject(String name) throws IOException {
        Path p = dir.resolve(name);
        if (!Files.exists(p) || Files.size(p) == 0) return Map.of();
        return JsonReader.parseObject(Files.readString(p, StandardCharsets.UTF_8).strip());
    }

    /** The JSON objects of a --json output, one per line (lines that are not JSON objects are kept as "text"). */
    private static List<Map<String, Object>> readLines(Path p) throws IOException {
        List<Map<String, Object>> out = new ArrayList<>();
        if (!Files.exists(p)) return out;
        for (String line : Files.readAllLines(p, StandardCharsets.UTF_8)) {
            if (line.isBlank()) continue;
            try {
                out.add(JsonReader.parseObject(line));
            } catch (IllegalArgumentException e) {
                Map<String, Object> text = new LinkedHashMap<>();
                text.put("text", line);
                out.add(text);
            }
        }
        return out;
    }

    private static Object backendDetail(Map<String, Object> info, String name) {
        if (info.get("backends") instanceof List<?> list) {
            for (Object o : list) {
                if (o instanceof Map<?, ?> m && name.equals(m.get("name"))) return m.get("detail");
            }
        }
        return null;
    }

    /** Counts from the test step's log: surefire's summary line (or the kit runner's, which prints the same). */
    private Json tests(List<Step> steps) throws IOException {
        Json t = new Json();
        Step s = steps.stream().filter(x -> x.name().equals("tests")).findFirst().orElse(null);
        if (s == null) return t.put("ran", false);
        t.put("exit", s.exit()).put("seconds", s.seconds());
        Path log = dir.resolve("tests.log");
        String text = Files.exists(log) ? Files.readString(log, StandardCharsets.UTF_8) : "";
        Matcher m = SUREFIRE.matcher(text);
        String[] last = null;
        while (m.find()) last = new String[]{m.group(1), m.group(2), m.group(3), m.group(4)};
        if (last != null) {
            t.put("run", Integer.parseInt(last[0])).put("failures", Integer.parseInt(last[1]))
                    .put("errors", Integer.parseInt(last[2])).put("skipped", Integer.parseInt(last[3]));
        }
        List<String> failed = new ArrayList<>();
        for (String line : text.split("\\R")) {
            if (line.startsWith("FAILED ") || line.startsWith("[ERROR]   ")) failed.add(line.strip());
        }
        return t.put("failed", failed);
    }

    private Json check(List<Step> steps, List<String> failures) throws IOException {
        Json c = new Json();
        Step s = steps.stream().filter(x -> x.name().equals("check")).findFirst().orElse(null);
        if (s == null) return c.put("ran", false);
        List<Map<String, Object>> rows = readLines(dir.resolve("check.jsonl"));
        Object result = rows.stream().filter(r -> "summary".equals(r.get("kind"))).map(r -> r.get("result"))
                .findFirst().orElse(null);
        List<Map<String, Object>> fails = rows.stream().filter(r -> "FAIL".equals(r.get("result"))
                || "open-failure".equals(r.get("kind"))).toList();
        for (Map<String, Object> f : fails) failures.add("check: " + new Json().put("row", f).toString());
        return c.put("exit", s.exit()).put("result", result).put("fails", fails).put("rows", rows);
    }

    private static String key(Map<String, Object> row) {
        return row.get("op") + "|" + row.get("layout") + "|" + row.get("shape");
    }

    private static Double number(Map<String, Object> row, String k) {
        return row.get(k) instanceof Number n ? n.doubleValue() : null;
    }

    /** One line per (op, layout, shape) of our kernels: GB/s, % of copy, and cuDNN's on the same shape. */
    static List<Json> compare(List<Map<String, Object>> bench) {
        Map<String, Map<String, Object>> cudnn = new LinkedHashMap<>();
        Map<String, Double> copies = new LinkedHashMap<>();
        for (Map<String, Object> r : bench) {
            if ("copy".equals(r.get("op"))) {
                Double g = number(r, "gbps");
                Double b = number(r, "bytes");
                if (g != null && b != null) copies.put(r.get("backend") + "|" + b.longValue(), g);
            } else if ("cudnn".equals(r.get("backend")) && r.get("op") != null) {
                cudnn.put(key(r), r);
            }
        }
        List<Json> out = new ArrayList<>();
        for (Map<String, Object> r : bench) {
            if (!"cuda".equals(r.get("backend")) || r.get("op") == null || "copy".equals(r.get("op"))) continue;
            Double ours = number(r, "gbps");
            Double bytes = number(r, "bytes");
            Double copy = bytes == null ? null : copies.get("cuda|" + bytes.longValue());
            Map<String, Object> theirs = cudnn.get(key(r));
            Double cudnnGbps = theirs == null ? null : number(theirs, "gbps");
            Double cudnnCopy = theirs == null || bytes == null ? null : copies.get("cudnn|" + bytes.longValue());
            out.add(new Json().put("op", r.get("op")).put("layout", r.get("layout")).put("shape", r.get("shape"))
                    .put("bytes", bytes == null ? null : bytes.longValue()).put("ours_gbps", ours)
                    .put("copy_gbps", copy).put("ours_pct_of_copy", ratio(ours, copy, 100))
                    .put("cudnn_gbps", cudnnGbps).put("cudnn_pct_of_copy", ratio(cudnnGbps, cudnnCopy, 100))
                    .put("ours_over_cudnn", ratio(ours, cudnnGbps, 1)));
        }
        return out;
    }

    private static Double ratio(Double a, Double b, double scale) {
        return a == null || b == null || b == 0 ? null : scale * a / b;
    }

    private String summary(Map<String, Object> info, Json tests, Json check, List<Json> comparison, List<Json> skipped,
                           List<String> failures, List<String> warnings, boolean pass) {
        StringBuilder sb = new StringBuilder();
        sb.append("GPU validation: ").append(backendDetail(info, "cuda")).append('\n');
        sb.append("batchnorm4j ").append(info.get("library_version")).append(", ")
                .append(seconds < 0 ? "" : String.format(Locale.ROOT, "%.0f s, ", seconds)).append("report: ")
                .append(dir.resolve("report.json")).append('\n');
        for (Json s : skipped) sb.append("skipped: ").append(s).append('\n');
        Map<String, Object> t = JsonReader.parseObject(tests.toString());
        sb.append("tests: ").append(t.containsKey("exit") ? "exit " + fmt(t.get("exit")) + ", " + fmt(t.get("run"))
                + " run, " + fmt(t.get("failures")) + " failures, " + fmt(t.get("errors")) + " errors, "
                + fmt(t.get("skipped")) + " skipped (tests.log)" : "not run").append('\n');
        Map<String, Object> ck = JsonReader.parseObject(check.toString());
        sb.append("check: ").append(ck.containsKey("exit") ? ck.get("result") + " (exit " + fmt(ck.get("exit")) + ", "
                + ((List<?>) ck.get("fails")).size() + " failing rows of " + ((List<?>) ck.get("rows")).size()
                + ", check.jsonl)" : "not run").append('\n');
        sb.append("\nbench: S-based GB/s (3 S forward-train, 2 S forward-eval, 5 S backward) and % of the device copy"
                + " of S bytes\n");
        sb.append(String.format(Locale.ROOT, "%-14s %-15s %-14s %18s %18s %11s%n", "op", "layout", "shape",
                "ours GB/s (%copy)", "cuDNN GB/s (%copy)", "ours/cuDNN"));
        for (Json c : comparison) {
            Map<String, Object> m = JsonReader.parseObject(c.toString());
            sb.append(String.format(Locale.ROOT, "%-14s %-15s %-14s %18s %18s %11s%n", m.get("op"), m.get("layout"),
                    m.get("shape"), gbps(m, "ours_gbps", "ours_pct_of_copy"), gbps(m, "cudnn_gbps", "cudnn_pct_of_copy"),
                    m.get("ours_over_cudnn") instanceof Number n ? String.format(Locale.ROOT, "%.2f", n.doubleValue()) : "-"));
        }
        sb.append('\n');
        for (String f : failures) sb.append("FAIL ").append(f).append('\n');
        for (String w : warnings) sb.append("warning: ").append(w).append('\n');
        sb.append("result: ").append(pass ? "PASS" : "FAIL").append('\n');
        return sb.toString();
    }

    /** A JSON number as people write it (14, not 14.0), or "?" when absent. */
    private static String fmt(Object o) {
        if (!(o instanceof Number n)) return "?";
        double d = n.doubleValue();
        return d == Math.rint(d) ? Long.toString((long) d) : Double.toString(d);
    }

    private static String gbps(Map<String, Object> m, String g, String pct) {
        if (!(m.get(g) instanceof Number n)) return "-";
        return m.get(pct) instanceof Number p ? String.format(Locale.ROOT, "%.1f (%.0f%%)", n.doubleValue(), p.doubleValue())
                : String.format(Locale.ROOT, "%.1f", n.doubleValue());
    }
}
