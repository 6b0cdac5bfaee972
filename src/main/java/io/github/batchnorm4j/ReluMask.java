package io.github.batchnorm4j;

/**
 * The ReLU mask of the fused batch-norm operations ({@link BatchNormOps#forwardTrainingRelu} and the others): one bit
 * per element of the tensor, in the tensor's memory order. Bit {@code i % 32} of word {@code i / 32} is element i's
 * bit (little-endian bit order within a word), 1 where the pre-activation v = bn(x) (+ z) passed the ReLU:
 * {@code !(v <= 0)}, that is v &gt; 0 or v is NaN (PyTorch's {@code threshold_backward} lets the gradient of a NaN
 * through as well). The bits past the last element of the last word are 0.
 *
 * <p>Why a bit mask: the backward of y = relu(v) needs only the sign of v, and keeping one bit instead of y cuts the
 * bytes backward reads for it from S (y) to S/32 (float32) or S/16 (16-bit storage). On a GPU each warp writes one
 * word per 32 consecutive elements with a ballot. As bytes, the words are NumPy's {@code np.packbits(m, bitorder='little')}
 * of the flat boolean mask (padded with zero bytes to a multiple of 4).
 */
public final class ReluMask {
    private ReluMask() {
    }

    /** Words of a mask over {@code elements} elements: ceil(elements / 32). */
    public static long words(long elements) {
        if (elements < 0) throw new IllegalArgumentException("elements: expected >= 0, got " + elements);
        return (elements + 31) >>> 5;
    }

    /** {@link #words(long)} as an int, for a host array; throws when it does not fit one. */
    public static int wordsAsInt(long elements) {
        long w = words(elements);
        if (w > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("elements: a mask of " + elements + " elements needs " + w
                    + " words, more than a Java array holds");
        }
        return (int) w;
    }

    /** A new all-zero mask for a shape's elements (a host array of {@link #words} ints). */
    public static int[] allocate(Shape shape) {
        if (shape == null) throw new IllegalArgumentException("shape must not be null");
        return new int[wordsAsInt(shape.elementCount())];
    }

    /** Element i's bit: whether its pre-activation passed the ReLU. */
    public static boolean get(int[] mask, long i) {
        return (mask[(int) (i >>> 5)] >>> (int) (i & 31) & 1) != 0;
    }

    /** The mask's rule: whether the pre-activation v passes the ReLU, {@code !(v <= 0)} (NaN passes, −0 does not). */
    public static boolean passes(float v) {
        return !(v <= 0f);
    }

    /** The ReLU of the fused operations: v where the mask bit is 1 (NaN stays NaN), else +0. */
    public static float relu(float v) {
        return passes(v) ? v : 0f;
    }

    /** The number of elements whose bit is 1 among the first {@code elements}. */
    public static long count(int[] mask, long elements) {
        long n = 0;
        long full = elements >>> 5;
        for (int w = 0; w < full; w++) n += Integer.bitCount(mask[w]);
        int rest = (int) (elements & 31);
        if (rest != 0) n += Integer.bitCount(mask[(int) full] & ((1 << rest) - 1));
        return n;
    }

    /**
     * The fused epilogue on host arrays: v = pre[i] (+ z[i]) rounded to float, {@code out[i] = relu(v)}, and the mask
     * bits of elements [from, to). {@code from} must be a multiple of 32 and {@code to} a multiple of 32 or the
     * element count, so that each word is written whole by one caller (pieces may run in parallel). {@code out} may
     * be {@code pre}; {@code mask} may be null (not wanted).
     *
     * @param z null for no residual
     */
    public static void apply(float[] pre, float[] z, float[] out, int[] mask, int from, int to) {
        if ((from & 31) != 0) throw new IllegalArgumentException("from: expected a multiple of 32, got " + from);
        if (to < from || to > pre.length || (to & 31) != 0 && to != pre.length) {
            throw new IllegalArgumentException("to: expected a multiple of 32 or " + pre.length + " in [" + from
                    + ", " + pre.length + "], got " + to);
        }
        for (int w0 = from; w0 < to; w0 += 32) {
            int end = Math.min(w0 + 32, to);
            int bits = 0;
            for (int i = w0; i < end; i++) {
                float v = z == null ? pre[i] : pre[i] + z[i];
                boolean pass = passes(v);
                out[i] = pass ? v : 0f;
                if (pass) bits |= 1 << (i - w0);
            }
            if (mask != null) mask[w0 >>> 5] = bits;
        }
    }

    /**
     * The gradient through the ReLU on host arrays: {@code g[i] = bit(i) ? dy[i] : 0} for elements [from, to).
     * {@code g} may be {@code dy}.
     */
    public static void gate(float[] dy, int[] mask, float[] g, int from, int to) {
        for (int i = from; i < to; i++) g[i] = (mask[i >>> 5] >>> (i & 31) & 1) != 0 ? dy[i] : 0f;
    }
}
