package io.github.batchnorm4j.cli;

import java.util.Arrays;

/**
 * An array read from (or to be written to) a {@code .npy} file: its dimensions in C order and its values as float32.
 *
 * @param dims        the shape, outermost first (empty for a 0-d scalar)
 * @param data        the values in C (row-major) order; {@code data.length} is the product of {@code dims}
 * @param sourceDtype the dtype the file stored ("&lt;f2", "&lt;f4" or "&lt;f8"; float16 values widened exactly,
 *                    float64 values were rounded to float32)
 */
public record NpyArray(long[] dims, float[] data, String sourceDtype) {

    /** Number of elements (the product of the dimensions; 1 for a scalar). */
    public long elementCount() {
        long n = 1;
        for (long d : dims) n *= d;
        return n;
    }

    /** The dimensions as "2,3,4" (the spelling of the command line's {@code --shape}). */
    public String dimsText() {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < dims.length; i++) {
            if (i > 0) sb.append(',');
            sb.append(dims[i]);
        }
        return sb.toString();
    }

    @Override
    public String toString() {
        return "NpyArray" + Arrays.toString(dims) + " from " + sourceDtype;
    }
}
