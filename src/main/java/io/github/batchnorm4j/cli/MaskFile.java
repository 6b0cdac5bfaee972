package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.ReluMask;
import java.io.IOException;
import java.nio.file.Path;

/**
 * The ReLU mask as a {@code .npy} file ({@code forward --activation relu} writes {@code mask.npy};
 * {@code backward --mask} reads it). Written as uint8 ({@code '|u1'}), the mask's 32-bit words as little-endian bytes,
 * which is exactly NumPy's {@code np.packbits(m, bitorder='little')} of the flat boolean mask padded with zero bytes
 * to a multiple of 4: {@code np.unpackbits(np.load('mask.npy'), bitorder='little')[:x.size].reshape(x.shape)}.
 *
 * <p>Read: that format with between ceil(n/8) bytes (np.packbits' own output) and 4·ceil(n/32), padding bits 0; or a
 * boolean array ({@code '|b1'}) of the tensor's element count in any shape (e.g. {@code np.save('m.npy', v > 0)}).
 */
final class MaskFile {
    private MaskFile() {
    }

    /** The mask's words as bytes (little-endian), ready for {@link Npy#writeBytes}. */
    static byte[] bytes(int[] mask) {
        byte[] b = new byte[4 * mask.length];
        for (int w = 0; w < mask.length; w++) {
            for (int k = 0; k < 4; k++) b[4 * w + k] = (byte) (mask[w] >>> (8 * k));
        }
        return b;
    }

    /** Writes {@code mask} (see the class comment). */
    static void write(Path file, int[] mask) throws IOException {
        Npy.writeBytes(file, bytes(mask));
    }

    /**
     * Reads a mask over {@code elements} elements.
     *
     * @throws IllegalArgumentException naming the option when the file does not hold a mask of that many elements
     */
    static int[] read(String option, Path file, long elements) {
        Npy.ByteArray a;
        try {
            a = Npy.readBytes(file);
        } catch (NpyFormatException e) {
            throw new IllegalArgumentException(option + ": " + e.getMessage(), e);
        } catch (IOException e) {
            throw new IllegalArgumentException(option + " " + file + ": " + Inputs.describe(e), e);
        }
        int[] mask = new int[ReluMask.wordsAsInt(elements)];
        byte[] d = a.data();
        if (a.descr().equals("|b1")) {
            if (d.length != elements) {
                throw new IllegalArgumentException(option + " " + file + ": expected a boolean mask of " + elements
                        + " elements (x's), got " + d.length);
            }
            for (int i = 0; i < d.length; i++) {
                if (d[i] != 0) mask[i >>> 5] |= 1 << (i & 31);
            }
            return mask;
        }
        long min = (elements + 7) / 8;
        long max = 4L * mask.length;
        if (a.dims().length != 1 || d.length < min || d.length > max) {
            throw new IllegalArgumentException(option + " " + file + ": expected a packed mask of " + min
                    + (max > min ? " to " + max : "") + " bytes (uint8, one bit per element of x's " + elements
                    + "), got shape " + java.util.Arrays.toString(a.dims()));
        }
        for (int i = 0; i < d.length; i++) mask[i >>> 2] |= (d[i] & 0xff) << (8 * (i & 3));
        if (hasBitsPast(mask, elements)) {
            throw new IllegalArgumentException(option + " " + file + ": bits set past the last of x's " + elements
                    + " elements: not a mask of this x");
        }
        return mask;
    }

    private static boolean hasBitsPast(int[] mask, long elements) {
        int rest = (int) (elements & 31);
        return rest != 0 && mask[mask.length - 1] >>> rest != 0;
    }
}
