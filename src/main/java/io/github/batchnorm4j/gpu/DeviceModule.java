package io.github.batchnorm4j.gpu;

/** A loaded PTX module. Closing it unloads it; its kernels must not be launched afterwards. */
public interface DeviceModule extends AutoCloseable {

    /** The name given at load time. */
    String name();

    /**
     * Looks up an {@code extern "C"} entry point.
     *
     * @throws DeviceException if the module has no such entry
     */
    Kernel kernel(String entryName);

    @Override
    void close();
}
