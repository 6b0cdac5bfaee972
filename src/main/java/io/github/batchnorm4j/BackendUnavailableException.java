package io.github.batchnorm4j;

/**
 * Thrown when a backend was asked for by name and cannot be used here; the message says exactly why
 * (no driver, no device, library missing, ...). The command line maps it to exit code 3.
 */
public class BackendUnavailableException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final String backend;

    public BackendUnavailableException(String backend, String reason) {
        super("backend '" + backend + "' is unavailable: " + reason);
        this.backend = backend;
    }

    public BackendUnavailableException(String backend, String reason, Throwable cause) {
        super("backend '" + backend + "' is unavailable: " + reason, cause);
        this.backend = backend;
    }

    /** The backend's name. */
    public String backend() {
        return backend;
    }
}
