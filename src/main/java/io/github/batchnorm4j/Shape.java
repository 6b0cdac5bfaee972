package io.github.batchnorm4j;

import java.util.Arrays;

/**
 * The shape of a batch-norm input together with its {@link Layout}: which axis is the channel axis and how the
 * per-channel reduction walks memory. Immutable.
 *
 * <p>Terms used throughout the library (docs/design.md §1):
 * <ul>
 *   <li>{@link #channels()} C, {@link #batch()} N, {@link #spatialSize()} = S1·…·Sk (1 for plain [N, C]).</li>
 *   <li>{@link #reductionSize()} M = N·S1·…·Sk: how many values each channel's statistics are taken over.</li>
 *   <li>channels-first: {@link #outer()} = N runs of {@link #inner()} = S1·…·Sk contiguous floats per channel.</li>
 *   <li>channels-last: {@link #rows()} = M rows of C contiguous floats.</li>
 * </ul>
 * A 2-D [N, C] shape is always channels-last (a channels-first walk with inner = 1 would stride by C for nothing):
 * {@code channelsFirst(n, c)} and {@code channelsLast(n, c)} are equal. Element counts may exceed 2^31 (they are longs), up to {@link #MAX_ELEMENTS}.
 */
public final class Shape {
    /** The most elements a shape may have, 2^60: its size in bytes, even as float64, fits in a long. */
    public static final long MAX_ELEMENTS = 1L << 60;

    private final long[] dims;
    private final Layout layout;

    private Shape(Layout layout, long[] dims) {
        if (layout == null) throw new IllegalArgumentException("layout must not be null");
        if (dims == null || dims.length < 2) {
            throw new IllegalArgumentException("shape: expected at least 2 dimensions [N, C, ...], got "
                    + (dims == null ? "null" : Arrays.toString(dims)));
        }
        long count = 1;
        for (int i = 0; i < dims.length; i++) {
            if (dims[i] < 1) {
                throw new IllegalArgumentException("shape: dimension " + i + " must be >= 1, got " + dims[i]
                        + " in " + Arrays.toString(dims));
            }
            // Checked before multiplying, so that no product overflows: byte offsets (4 or 8 bytes an element) must
            // fit in a long everywhere, on the host and on the device.
            if (count > MAX_ELEMENTS / dims[i]) {
                throw new IllegalArgumentException("shape: expected at most 2^60 elements, got " + Arrays.toString(dims)
                        + " with " + product(dims) + " elements");
            }
            count *= dims[i];
        }
        if (dims[channelAxis(layout, dims.length)] > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("shape: channel count must fit in an int, got "
                    + dims[channelAxis(layout, dims.length)]);
        }
        this.layout = dims.length == 2 ? Layout.CHANNELS_LAST : layout;
        this.dims = dims.clone();
    }

    /** The exact product of positive dimensions, for messages (it may exceed a long). */
    private static java.math.BigInteger product(long[] dims) {
        java.math.BigInteger p = java.math.BigInteger.ONE;
        for (long d : dims) p = p.multiply(java.math.BigInteger.valueOf(d));
        return p;
    }

    private static int channelAxis(Layout layout, int rank) {
        return (layout == Layout.CHANNELS_LAST || rank == 2) ? rank - 1 : 1;
    }

    /** {@code [N, C, S1..Sk]}, k ≥ 0 (NCHW and friends). */
    public static Shape channelsFirst(long... dims) {
        return new Shape(Layout.CHANNELS_FIRST, dims);
    }

    /** {@code [N, S1..Sk, C]}, k ≥ 0 (NHWC and friends, and plain [N, C]). */
    public static Shape channelsLast(long... dims) {
        return new Shape(Layout.CHANNELS_LAST, dims);
    }

    /** A shape of the given layout; dims are in that layout's axis order. */
    public static Shape of(Layout layout, long... dims) {
        return new Shape(layout, dims);
    }

    /** The memory view. */
    public Layout layout() {
        return layout;
    }

    /** A copy of the dimensions in this layout's axis order. */
    public long[] dims() {
        return dims.clone();
    }

    /** Number of dimensions. */
    public int rank() {
        return dims.length;
    }

    /** C, the number of channels. */
    public int channels() {
        return (int) dims[channelAxis(layout, dims.length)];
    }

    /** N, the batch size. */
    public long batch() {
        return dims[0];
    }

    /** S1·…·Sk (1 when there are no spatial dimensions). */
    public long spatialSize() {
        return elementCount() / (batch() * channels());
    }

    /** Total number of elements N·C·S1·…·Sk. */
    public long elementCount() {
        long n = 1;
        for (long d : dims) n *= d;
        return n;
    }

    /** M = N·S1·…·Sk, the number of values per channel. */
    public long reductionSize() {
        return batch() * spatialSize();
    }

    /** channels-first: N, the number of contiguous runs per channel. Channels-last: the number of rows (= M). */
    public long outer() {
        return layout == Layout.CHANNELS_FIRST ? batch() : reductionSize();
    }

    /** channels-first: S1·…·Sk, the length of each contiguous run. Channels-last: 1. */
    public long inner() {
        return layout == Layout.CHANNELS_FIRST ? spatialSize() : 1;
    }

    /** channels-last: M rows of C floats. Channels-first: same value (M), for symmetry. */
    public long rows() {
        return reductionSize();
    }

    /** Element count as an int, for the host (float[]) API. */
    public int elementCountAsInt() {
        long n = elementCount();
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("shape " + this + " has " + n + " elements: too many for a Java array;"
                    + " use the device-resident API");
        }
        return (int) n;
    }

    /** Parses "32,64,56,56" (or "32x64x56x56") into a shape of the given layout. */
    public static Shape parse(Layout layout, String text) {
        if (text == null || text.isBlank()) throw new IllegalArgumentException("shape must not be empty");
        String[] parts = text.trim().split("[,x×]");
        long[] d = new long[parts.length];
        for (int i = 0; i < parts.length; i++) {
            try {
                d[i] = Long.parseLong(parts[i].trim());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("shape: expected integers separated by commas, got '" + parts[i].trim()
                        + "' in '" + text + "'" + (parts[i].trim().matches("\\d+") ? " (larger than 2^63 - 1)" : ""));
            }
        }
        return of(layout, d);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Shape s && s.layout == layout && Arrays.equals(s.dims, dims);
    }

    /** Stable across JVM runs (the layout's ordinal, not its identity hash): tests derive their seeds from it. */
    @Override
    public int hashCode() {
        return 31 * layout.ordinal() + Arrays.hashCode(dims);
    }

    @Override
    public String toString() {
        return Arrays.toString(dims) + " " + layout.cliName();
    }
}
