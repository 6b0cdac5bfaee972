package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.BatchNormOptions;
import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Reading and checking the command line's inputs and writing its outputs. Every failure is an
 * {@link IllegalArgumentException} (exit 2) whose message names the option, the file, and expected vs actual.
 */
final class Inputs {

    private Inputs() {
    }

    /** Reads a tensor given by {@code option} (e.g. "--x"). */
    static NpyArray read(String option, Path file) throws IOException {
        try {
            return Npy.read(file);
        } catch (NpyFormatException e) {
            throw new NpyFormatException(option + " " + e.getMessage());
        }
    }

    /**
     * The shape of x in the given layout. Named layouts (NCL, NCHW, NCDHW, NLC, NHWC, NDHWC, NC) require their rank;
     * channels-first and channels-last accept any rank ≥ 2 (a 2-D x is [N, C] either way).
     */
    static Shape shapeOf(NpyArray x, Path file, String layoutName) {
        Layout layout = Layout.parse(layoutName);
        int rank = x.dims().length;
        int required = Layout.requiredRank(layoutName);
        if (required > 0 && rank != required) {
            throw new IllegalArgumentException("--layout " + layoutName + " expects a " + required + "-D x, got "
                    + rank + "-D shape (" + x.dimsText() + ") from " + file);
        }
        if (rank < 2) {
            throw new IllegalArgumentException("--x " + file + ": expected at least 2 dimensions [N, C, ...], got "
                    + rank + "-D shape (" + x.dimsText() + ")");
        }
        try {
            return Shape.of(layout, x.dims());
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--x " + file + ": " + e.getMessage());
        }
    }

    /** A per-channel vector (C values, any shape holding exactly C), or null when the option was not given. */
    static float[] perChannel(String option, Path file, Shape shape) throws IOException {
        if (file == null) return null;
        NpyArray a = read(option, file);
        if (a.elementCount() != shape.channels()) {
            throw new IllegalArgumentException(option + " " + file + ": expected " + shape.channels()
                    + " values (one per channel of x " + shape + "), got shape (" + a.dimsText() + ")");
        }
        return a.data();
    }

    /** A tensor that must have x's dimensions (dy). */
    static float[] likeX(String option, Path file, NpyArray x) throws IOException {
        NpyArray a = read(option, file);
        if (!Arrays.equals(a.dims(), x.dims())) {
            throw new IllegalArgumentException(option + " " + file + ": expected the shape of x (" + x.dimsText()
                    + "), got (" + a.dimsText() + ")");
        }
        return a.data();
    }

    /** Checks --eps: finite and &gt; 0. */
    /** Training needs more than one value per channel (PyTorch's rule); {@code x} is the tensor's shape. */
    static void checkTrainable(Shape x) {
        if (x.reductionSize() < 2) {
            throw new IllegalArgumentException("expected more than 1 value per channel when training, got x " + x
                    + " (M = " + x.reductionSize() + ")");
        }
    }

    static void checkEps(double eps) {
        try {
            BatchNormOptions.checkEps(eps);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--eps: expected a finite value > 0, got " + eps);
        }
    }

    /**
     * Parses --momentum: a number in [0, 1] (PyTorch's sense, the weight of the new batch) or "cumulative".
     *
     * @return the momentum, or null for cumulative
     */
    static Double momentum(String text) {
        if (text.equalsIgnoreCase("cumulative")) return null;
        double m;
        try {
            m = Double.parseDouble(text);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--momentum: expected a number in [0, 1] or 'cumulative', got '"
                    + text + "'");
        }
        if (!(m >= 0 && m <= 1)) {
            throw new IllegalArgumentException("--momentum: expected a number in [0, 1] or 'cumulative', got " + text);
        }
        return m;
    }

    /** Creates the output directory (and parents) when missing. */
    static Path outDir(Path dir) throws IOException {
        if (Files.exists(dir) && !Files.isDirectory(dir)) {
            throw new IllegalArgumentException("--out " + dir + ": exists and is not a directory");
        }
        Files.createDirectories(dir);
        return dir;
    }

    /** Writes a float32 .npy into the output directory. */
    static void write(Path dir, String name, long[] dims, float[] data) throws IOException {
        Npy.write(dir.resolve(name), dims, data);
    }

    /** [C] as dims. */
    static long[] vector(int channels) {
        return new long[] {channels};
    }
}
