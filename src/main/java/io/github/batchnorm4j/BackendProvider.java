package io.github.batchnorm4j;

/** A way to probe for and open one backend. {@link Backends} holds the known providers. */
public interface BackendProvider {

    /** The backend's name as used on the command line. */
    String name();

    /** Checks availability without side effects that outlive the call (cheap, may load native libraries). */
    BackendInfo probe();

    /**
     * Opens the backend.
     *
     * @throws BackendUnavailableException with the reason when it cannot be used here
     */
    BatchNormOps open();
}
