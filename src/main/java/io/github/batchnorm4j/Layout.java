package io.github.batchnorm4j;

import java.util.Locale;

/**
 * The two memory views every supported tensor layout reduces to.
 *
 * <ul>
 *   <li>{@link #CHANNELS_FIRST}: {@code [N, C, S1..Sk]} (NCL, NCHW, NCDHW). Channel {@code c} of sample {@code n} is a
 *       contiguous run of {@code inner = S1·…·Sk} floats at offset {@code (n·C + c)·inner}.</li>
 *   <li>{@link #CHANNELS_LAST}: {@code [N, S1..Sk, C]} (NLC, NHWC, NDHWC) and plain {@code [N, C]}. Rows of {@code C}
 *       contiguous floats; {@code rows = N·S1·…·Sk}.</li>
 * </ul>
 */
public enum Layout {
    CHANNELS_FIRST("channels-first"),
    CHANNELS_LAST("channels-last");

    private final String cliName;

    Layout(String cliName) {
        this.cliName = cliName;
    }

    /** The command-line spelling: "channels-first" or "channels-last". */
    public String cliName() {
        return cliName;
    }

    /**
     * Parses a layout name: {@code channels-first}, {@code channels-last}, or a named layout (NCL, NCHW, NCDHW, NLC,
     * NHWC, NDHWC, NC), case-insensitive. {@link #requiredRank(String)} tells the rank a named layout implies.
     *
     * @throws IllegalArgumentException naming the accepted values
     */
    public static Layout parse(String name) {
        if (name == null) throw new IllegalArgumentException("layout must not be null");
        switch (name.toLowerCase(Locale.ROOT)) {
            case "channels-first": case "channels_first": case "ncl": case "nchw": case "ncdhw":
                return CHANNELS_FIRST;
            case "channels-last": case "channels_last": case "nlc": case "nhwc": case "ndhwc": case "nc":
                return CHANNELS_LAST;
            default:
                throw new IllegalArgumentException("layout: expected channels-first, channels-last, NCL, NCHW, NCDHW, "
                        + "NLC, NHWC, NDHWC or NC, got '" + name + "'");
        }
    }

    /** The rank a named layout implies (NCHW → 4), or -1 for "channels-first"/"channels-last" (any rank ≥ 2). */
    public static int requiredRank(String name) {
        String n = name.toLowerCase(Locale.ROOT);
        if (n.startsWith("channels")) return -1;
        return n.length();
    }
}
