package io.github.batchnorm4j.train;

import java.math.BigDecimal;
import java.math.MathContext;
import java.util.Locale;

/**
 * A minimal JSON object writer for the metrics files and the command's last line (no JSON library in the runtime
 * dependencies). Keys keep insertion order; non-finite numbers become {@code null} (JSON has no NaN).
 */
public final class JsonText {
    private final StringBuilder sb = new StringBuilder("{");
    private boolean first = true;

    /** Adds a string member. */
    public JsonText put(String key, String value) {
        return raw(key, value == null ? "null" : quote(value));
    }

    /** Adds a number member; NaN and infinities become null. */
    public JsonText put(String key, double value) {
        return raw(key, number(value));
    }

    public JsonText put(String key, long value) {
        return raw(key, Long.toString(value));
    }

    public JsonText put(String key, boolean value) {
        return raw(key, Boolean.toString(value));
    }

    /** Adds a member whose value is already JSON text (an object or array). */
    public JsonText raw(String key, String json) {
        if (!first) sb.append(", ");
        first = false;
        sb.append(quote(key)).append(": ").append(json);
        return this;
    }

    /** The object's text, on one line. */
    @Override
    public String toString() {
        return sb + "}";
    }

    /** A JSON number, or null for NaN/Inf; doubles keep up to 6 significant decimals for readability. */
    public static String number(double v) {
        if (!Double.isFinite(v)) return "null";
        if (v == Math.rint(v) && Math.abs(v) < 1e15) return Long.toString((long) v);
        // 6 significant digits, trailing zeros dropped; BigDecimal's text (e.g. 1.5E-7) is valid JSON.
        return new BigDecimal(v).round(new MathContext(6)).stripTrailingZeros().toString();
    }

    /** A JSON array of numbers. */
    public static String array(double[] v) {
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < v.length; i++) b.append(i == 0 ? "" : ", ").append(number(v[i]));
        return b.append(']').toString();
    }

    /** A JSON array of already-encoded values. */
    public static String arrayOf(Iterable<String> json) {
        StringBuilder b = new StringBuilder("[");
        boolean f = true;
        for (String s : json) {
            b.append(f ? "" : ", ").append(s);
            f = false;
        }
        return b.append(']').toString();
    }

    /** A quoted JSON string with the required escapes. */
    public static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) b.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
                    else b.append(c);
                }
            }
        }
        return b.append('"').toString();
    }
}
