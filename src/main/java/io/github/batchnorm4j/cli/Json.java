package io.github.batchnorm4j.cli;

import java.math.BigDecimal;
import java.math.MathContext;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The one JSON writer of the command line: {@code --json} lines of bench, check and info (compact, {@link #Json()}),
 * and the train summary line and {@code metrics.json} (spaced, {@link #spaced()}, as people read them). Keys keep
 * insertion order. Values may be strings, numbers, booleans, null, {@code double[]}, lists and nested objects of
 * these. Numbers: see {@link #number(double)}; non-finite numbers become null (JSON has no NaN).
 */
public final class Json {
    private final Map<String, Object> fields = new LinkedHashMap<>();
    private final boolean spaced;

    /** A compact object: {@code {"a":1,"b":[2,3]}}. */
    public Json() {
        this(false);
    }

    private Json(boolean spaced) {
        this.spaced = spaced;
    }

    /** An object written with a space after every ':' and ',': {@code {"a": 1, "b": [2, 3]}}. */
    public static Json spaced() {
        return new Json(true);
    }

    /** Adds a field (replacing one of the same key). */
    public Json put(String key, Object value) {
        fields.put(key, value);
        return this;
    }

    /** The object as one line of JSON (nested objects in this object's style). */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        write(sb, fields);
        return sb.toString();
    }

    /**
     * A JSON number: a whole number below 1e15 exactly, any other finite value to six significant digits (more would
     * be noise for timings and errors; a float such as 0.05f is written 0.05), NaN and infinities as null.
     */
    public static String number(double v) {
        if (!Double.isFinite(v)) return "null";
        if (v == Math.rint(v) && Math.abs(v) < 1e15) return Long.toString((long) v);
        // BigDecimal's text (e.g. 1.5E-7) is valid JSON.
        return new BigDecimal(v).round(new MathContext(6)).stripTrailingZeros().toString();
    }

    private void write(StringBuilder sb, Object v) {
        String comma = spaced ? ", " : ",";
        if (v == null) {
            sb.append("null");
        } else if (v instanceof Json j) {
            write(sb, j.fields);
        } else if (v instanceof Map<?, ?> m) {
            sb.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : m.entrySet()) {
                if (!first) sb.append(comma);
                first = false;
                string(sb, String.valueOf(e.getKey()));
                sb.append(spaced ? ": " : ":");
                write(sb, e.getValue());
            }
            sb.append('}');
        } else if (v instanceof List<?> list) {
            sb.append('[');
            for (int i = 0; i < list.size(); i++) {
                if (i > 0) sb.append(comma);
                write(sb, list.get(i));
            }
            sb.append(']');
        } else if (v instanceof double[] a) {
            sb.append('[');
            for (int i = 0; i < a.length; i++) sb.append(i > 0 ? comma : "").append(number(a[i]));
            sb.append(']');
        } else if (v instanceof Double || v instanceof Float) {
            sb.append(number(((Number) v).doubleValue()));
        } else if (v instanceof Number || v instanceof Boolean) {
            sb.append(v);
        } else {
            string(sb, v.toString());
        }
    }

    private static void string(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (c < 0x20) sb.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
                    else sb.append(c);
                }
            }
        }
        sb.append('"');
    }
}
