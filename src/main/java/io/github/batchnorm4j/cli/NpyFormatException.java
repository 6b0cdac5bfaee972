package io.github.batchnorm4j.cli;

/**
 * A {@code .npy} file that this tool cannot read: not a .npy file, truncated, big-endian, Fortran order, or a dtype
 * other than float32/float64. The message names the file. The command line maps it to exit code 2 (bad input).
 */
public class NpyFormatException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    public NpyFormatException(String message) {
        super(message);
    }
}
