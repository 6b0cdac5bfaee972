package io.github.batchnorm4j.gpu;

/** A kernel entry point of a loaded {@link DeviceModule}. */
public interface Kernel {

    /** The entry name as in the PTX ({@code .entry name}). */
    String name();

    /** The module it belongs to. */
    DeviceModule module();
}
