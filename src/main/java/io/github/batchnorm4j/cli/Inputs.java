package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.BackendUnavailableException;
import io.github.batchnorm4j.Backends;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.BatchNormOptions;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;
import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.util.Arrays;
import io.github.batchnorm4j.Activation;

/**
 * Reading and checking the command line's inputs and writing its outputs. Every failure is an
 * {@link IllegalArgumentException} (exit 2) whose message names the option, the file, and expected vs actual.
 */
final class Inputs {

    private Inputs() {
    }

    /** Reads a tensor given by {@code option} (e.g. "--x"). */
    static NpyArray read(String option, Path file) {
        return read(option, file, 1);
    }

    /**
     * Reads a tensor given by {@code option}, after checking that {@code copies} arrays of its size fit in memory
     * (the input and the outputs of its size). Every failure, I/O included, names the option and the file.
     */
    static NpyArray read(String option, Path file, int copies) {
        if (file.toString().isEmpty()) throw new IllegalArgumentException(option + ": expected a .npy file, got an empty path");
        try {
            return Npy.read(file, copies);
        } catch (NpyFormatException e) {
            throw new NpyFormatException(option + " " + e.getMessage());
        } catch (IOException e) {
            throw new IllegalArgumentException(option + " " + file + ": cannot read it: " + describe(e), e);
        }
    }

    /** Checks an output folder option cheaply before any input is read: not empty. The rest is OutputFolder's. */
    static void checkOut(Path out) {
        if (out.toString().isEmpty()) throw new IllegalArgumentException("--out: expected a folder, got an empty path");
    }

    /**
     * Throws unless {@code bytes} more fit in the heap the JVM can still use: a size limit checked before allocating,
     * with the number that would be needed.
     *
     * @param what   the option and value the memory is for, first words of the message
     * @param detail what the bytes are, e.g. "3 float32 arrays of 1000 values"
     */
    static void requireMemory(String what, long bytes, String detail) {
        if (bytes <= freeHeap()) return;
        System.gc(); // garbage counts as used until collected: look again before refusing
        long free = freeHeap();
        if (bytes > free) {
            throw new IllegalArgumentException(what + ": needs " + mib(bytes) + " of memory (" + detail + "), but the"
                    + " JVM has " + mib(free) + " free of its " + mib(Runtime.getRuntime().maxMemory())
                    + " maximum heap (raise it, e.g. BATCHNORM4J_JAVA_OPTS=-Xmx" + Math.max(2, (bytes * 3 / 2 >> 30) + 1)
                    + "g, where the machine has the memory)");
        }
    }

    private static long freeHeap() {
        Runtime rt = Runtime.getRuntime();
        return rt.maxMemory() - (rt.totalMemory() - rt.freeMemory());
    }

    /** Bytes in MiB, rounded up, e.g. "12 MiB"; counts past the heap are also shown in GiB. */
    static String mib(long bytes) {
        long mib = (bytes + (1 << 20) - 1) >> 20;
        return mib < 10_240 ? mib + " MiB" : mib + " MiB (" + (mib >> 10) + " GiB)";
    }

    /** Opens a backend; an unknown name is an error about {@code --backend}. */
    static BatchNormOps openBackend(String name) {
        try {
            return Backends.open(name);
        } catch (BackendUnavailableException e) {
            throw e;
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(asOption("--backend", "backend", e.getMessage()), e);
        }
    }

    /** "backend: expected ..." as "--backend: expected ..." (and "shape must ..." as "--shape must ..."). */
    static String asOption(String option, String field, String message) {
        boolean named = message != null && (message.startsWith(field + ":") || message.startsWith(field + " "));
        return named ? option + message.substring(field.length()) : message;
    }

    /**
     * The shape of x in the given layout. Named layouts (NCL, NCHW, NCDHW, NLC, NHWC, NDHWC, NC) require their rank;
     * channels-first and channels-last accept any rank ≥ 2 (a 2-D x is [N, C] either way).
     */
    static Shape shapeOf(NpyArray x, Path file, String layoutName) {
        Layout layout;
        try {
            layout = Layout.parse(layoutName);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(asOption("--layout", "layout", e.getMessage()), e);
        }
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

    /**
     * A per-channel vector, or null when the option was not given: C values in a 1-D array (C,), or with extra axes of
     * size 1 ((1, C), (C, 1), (1, C, 1, 1): the shapes NumPy code keeps parameters in to broadcast them over x). Any
     * other shape holding C values, (2, 3) for C = 6, is refused: it is a matrix, most likely the wrong file.
     * PyTorch's F.batch_norm checks only the count; its modules keep 1-D parameters, as this tool writes them.
     */
    static float[] perChannel(String option, Path file, Shape shape) {
        if (file == null) return null;
        NpyArray a = read(option, file);
        if (a.elementCount() != shape.channels()) {
            throw new IllegalArgumentException(option + " " + file + ": expected " + shape.channels()
                    + " values (one per channel of x " + shape + "), got shape (" + a.dimsText() + ")");
        }
        int longAxes = 0;
        for (long d : a.dims()) if (d != 1) longAxes++;
        if (longAxes > 1) {
            throw new IllegalArgumentException(option + " " + file + ": expected a vector of " + shape.channels()
                    + " values, shape (" + shape.channels() + ",) or with axes of size 1 such as (1, "
                    + shape.channels() + ", 1, 1), got shape (" + a.dimsText() + ")");
        }
        return a.data();
    }

    /** A tensor that must have x's dimensions (dy). */
    static float[] likeX(String option, Path file, NpyArray x) {
        NpyArray a = read(option, file);
        if (!Arrays.equals(a.dims(), x.dims())) {
            throw new IllegalArgumentException(option + " " + file + ": expected the shape of x (" + x.dimsText()
                    + "), got (" + a.dimsText() + ")");
        }
        return a.data();
    }

    /** --activation: none or relu, "--activation: expected none or relu, got X" otherwise. */
    static Activation activation(String text) {
        try {
            return Activation.parse(text);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--activation: expected none or relu, got " + text);
        }
    }

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

    /**
     * An I/O failure as a sentence: the file and the operating system's reason ("no such file or folder",
     * "permission denied", "No space left on device"), never the exception's class name.
     */
    static String describe(IOException e) {
        String file = e instanceof FileSystemException f && f.getFile() != null ? f.getFile() : null;
        String reason = reason(e);
        if (e instanceof FileSystemException f && f.getOtherFile() != null) file = file + " -> " + f.getOtherFile();
        return file == null ? reason : file + ": " + reason;
    }

    /** The operating system's reason of an I/O failure, without the file (see {@link #describe}). */
    static String reason(IOException e) {
        String reason;
        if (e instanceof NoSuchFileException) reason = "no such file or folder";
        else if (e instanceof AccessDeniedException) reason = "permission denied";
        else if (e instanceof NotDirectoryException) reason = "not a folder";
        else if (e instanceof FileAlreadyExistsException) reason = "already exists";
        else if (e instanceof DirectoryNotEmptyException) reason = "folder not empty";
        else if (e instanceof FileSystemException f) reason = f.getReason() != null ? f.getReason() : "failed";
        else reason = e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
        return reason;
    }

    /**
     * The storage type a command computes in: {@code --dtype} when given, else float16 for a {@code '<f2'} x and
     * float32 otherwise.
     */
    static DType dtype(DType option, NpyArray x) {
        return option != null ? option : "<f2".equals(x.sourceDtype()) ? DType.FLOAT16 : DType.FLOAT32;
    }

    /** " in float16" for a 16-bit storage type, "" for float32: the summary lines' note. */
    static String inDtype(DType t) {
        return t.is16Bit() ? " in " + t : "";
    }

    /** [C] as dims. */
    static long[] vector(int channels) {
        return new long[] {channels};
    }
}
