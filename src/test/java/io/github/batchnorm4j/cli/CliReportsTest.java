package io.github.batchnorm4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** bench, info and check through the launcher: the keys and lines users and scripts rely on. */
class CliReportsTest {
    @TempDir
    Path dir;

    private static String field(String json, String key) {
        Matcher m = Pattern.compile("\"" + key + "\":(\"[^\"]*\"|[^,}]*)").matcher(json);
        return m.find() ? m.group(1) : null;
    }

    @Test
    void benchJsonHasOneObjectPerLineWithTheDocumentedKeys() throws Exception {
        Launcher.Result r = Launcher.run(dir, "bench", "--backend", "cpu", "--shape", "4,3,5,6", "--repeat", "2",
                "--warmup", "0.05", "--json");
        assertEquals(0, r.exitCode(), r::toString);
        List<String> lines = new ArrayList<>();
        for (String l : r.stdout().split("\\R")) {
            if (!l.isBlank()) lines.add(l);
        }
        // copy + 6 ops × 2 layouts
        assertEquals(13, lines.size(), r::toString);
        String copy = lines.get(0);
        assertEquals("\"copy\"", field(copy, "op"), copy);
        double copyGbps = Double.parseDouble(field(copy, "gbps"));
        assertTrue(copyGbps > 0, copy);
        List<String> seen = new ArrayList<>();
        for (String l : lines.subList(1, lines.size())) {
            assertTrue(l.startsWith("{") && l.endsWith("}"), l);
            for (String key : new String[] {"backend", "op", "layout", "shape", "bytes", "median_ms", "gbps"}) {
                assertTrue(field(l, key) != null, () -> "missing " + key + " in " + l);
            }
            assertEquals("\"cpu\"", field(l, "backend"), l);
            assertEquals("1440", field(l, "bytes"), "S = 360 floats: " + l);
            double ms = Double.parseDouble(field(l, "median_ms"));
            double gbps = Double.parseDouble(field(l, "gbps"));
            double units = BenchCommand.trafficUnits(field(l, "op").replace("\"", ""));
            assertEquals(units, Double.parseDouble(field(l, "budget")), 0, l);
            assertEquals(units * 1440 / (ms * 1e-3) / 1e9, gbps, 1e-4 * gbps, "S-based GB/s: " + l);
            assertEquals(100 * gbps / copyGbps, Double.parseDouble(field(l, "pct_of_copy")), 1e-3 * 100 * gbps / copyGbps,
                    l);
            seen.add(field(l, "op") + " " + field(l, "layout") + " " + field(l, "shape"));
        }
        List<String> expected = new ArrayList<>();
        for (String layoutAndShape : new String[] {"\"channels-first\" \"4,3,5,6\"", "\"channels-last\" \"4,5,6,3\""}) {
            for (String op : BenchCommand.ALL_OPS) expected.add("\"" + op + "\" " + layoutAndShape);
        }
        assertEquals(expected, seen);
    }

    @Test
    void benchChargesThePersistentTrafficOnlyWhereThereIsAPersistentPath() throws Exception {
        // The CPU backend has no persistent path: its header must charge the two-pass traffic alone; the emulator
        // (a device backend, bench's default --path auto) names both, and --path two-pass only the two-pass one.
        String[] common = {"--shape", "4,3,5,6", "--repeat", "1", "--warmup", "0", "--op", "forward-train"};
        for (String[] run : new String[][] {{"cpu"}, {"emulator"}, {"emulator", "--path", "two-pass"}}) {
            List<String> args = new ArrayList<>(List.of("bench", "--backend"));
            args.addAll(List.of(run));
            args.addAll(List.of(common));
            Launcher.Result r = Launcher.run(dir, args.toArray(new String[0]));
            assertEquals(0, r.exitCode(), r::toString);
            String header = r.stdout().lines().filter(l -> l.startsWith("GB/s = traffic charged")).findFirst()
                    .orElseThrow(() -> new AssertionError("no traffic header in " + r));
            boolean persistent = run.length == 1 && run[0].equals("emulator");
            assertEquals(persistent, header.contains("2 S on the persistent path"), header);
            assertEquals(persistent, header.contains("3 S on the persistent path"), header);
            assertTrue(header.contains("forward-train 3 S (x read twice, y written"), header);
        }
    }

    @Test
    void infoListsBackendsAutoAndVersions() throws Exception {
        Launcher.Result text = Launcher.run(dir, "info");
        assertEquals(0, text.exitCode(), text::toString);
        assertTrue(text.stdout().contains("auto -> "), text::toString);
        assertTrue(text.stdout().matches("(?s).*\\bcpu\\s+available\\b.*"), text::toString);
        assertTrue(text.stdout().contains("java     " + Runtime.version()), text::toString);

        Launcher.Result json = Launcher.run(dir, "info", "--json");
        assertEquals(0, json.exitCode(), json::toString);
        String line = json.stdout().strip();
        assertTrue(line.startsWith("{") && line.endsWith("}") && !line.contains("\n"), line);
        assertTrue(line.contains("{\"name\":\"cpu\",\"available\":true,"), line);
        for (String key : new String[] {"library_version", "java", "os", "auto", "auto_reason", "backends"}) {
            assertTrue(field(line, key) != null, () -> "missing " + key + " in " + line);
        }
    }

    @Test
    void checkPassesOnTheCpuBackend() throws Exception {
        Launcher.Result r = Launcher.run(dir, "check", "--backends", "cpu", "--seed", "7");
        assertEquals(0, r.exitCode(), r::toString);
        long rows = r.stdout().lines().filter(l -> l.startsWith("cpu ")).count();
        long pass = r.stdout().lines().filter(l -> l.startsWith("cpu ") && l.contains(" PASS ")).count();
        assertEquals(CrossCheck.shapes().size() * (long) CrossCheck.OPS.size(), rows, r::toString);
        assertEquals(rows, pass, r::toString);
        assertTrue(r.stdout().contains("check: PASS"), r::toString);
    }
}
