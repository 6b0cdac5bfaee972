package io.github.batchnorm4j.gpu;

/**
 * A failed device operation: a driver error, a failed launch, or (on the emulator) a detected memory, race or barrier
 * error. The message names the call and, for launches, the kernel, grid and block.
 */
public class DeviceException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public DeviceException(String message) {
        super(message);
    }

    public DeviceException(String message, Throwable cause) {
        super(message, cause);
    }
}
