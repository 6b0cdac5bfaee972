package io.github.batchnorm4j.gpu;

/** A kernel entry point of a loaded {@link DeviceModule}. */
public interface Kernel {

    /** The entry name as in the PTX ({@code .entry name}). */
    String name();

    /** The module it belongs to. */
    DeviceModule module();

    /**
     * Registers, static shared memory, stack and block-size limit of this kernel as compiled for its device
     * ({@code cuFuncGetAttribute} on a GPU, ptxas for the emulator's architecture).
     *
     * @throws DeviceException when they cannot be read (on the emulator: the compiler rejects the kernel)
     */
    KernelResources resources();
}
