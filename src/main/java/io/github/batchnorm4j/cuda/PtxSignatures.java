package io.github.batchnorm4j.cuda;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads the parameter list of every {@code .entry} in a PTX text, so that a launch can check its arguments' count and
 * sizes before the driver copies them blindly (a wrong size on a real GPU is silent garbage, not an error).
 */
final class PtxSignatures {
    private PtxSignatures() {
    }

    /** One entry point: its parameters' names and sizes in bytes, in declaration order. */
    record Entry(String name, List<String> paramNames, List<Integer> paramBytes) {
    }

    private static final Pattern ENTRY = Pattern.compile("\\.entry\\s+([A-Za-z_$][\\w$]*)\\s*\\(([^)]*)\\)");
    private static final Pattern PARAM = Pattern.compile(
            "\\.param\\s+(?:\\.align\\s+\\d+\\s+)?\\.([a-z]\\d+)\\s+([A-Za-z_$][\\w$]*)(?:\\s*\\[(\\d+)\\])?");

    /** Entry name → signature, for every {@code .entry} found. */
    static Map<String, Entry> parse(String ptx) {
        Map<String, Entry> out = new HashMap<>();
        Matcher m = ENTRY.matcher(ptx);
        while (m.find()) {
            List<String> names = new ArrayList<>();
            List<Integer> bytes = new ArrayList<>();
            Matcher p = PARAM.matcher(m.group(2));
            while (p.find()) {
                int width = Integer.parseInt(p.group(1).substring(1)) / 8;
                int count = p.group(3) == null ? 1 : Integer.parseInt(p.group(3));
                names.add(p.group(2));
                bytes.add(width * count);
            }
            out.put(m.group(1), new Entry(m.group(1), Collections.unmodifiableList(names),
                    Collections.unmodifiableList(bytes)));
        }
        return out;
    }
}
