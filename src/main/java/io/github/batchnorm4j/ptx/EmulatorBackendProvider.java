package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.BackendInfo;
import io.github.batchnorm4j.BackendProvider;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.gpu.GpuBatchNormOps;

/**
 * The {@code emulator} backend: our CUDA kernels ({@link GpuBatchNormOps}) on an {@link EmulatedDevice} with every
 * check on. Always available (pure Java); never chosen by {@code auto} because it is slow. Register it in
 * {@link io.github.batchnorm4j.Backends} with {@code register(new EmulatorBackendProvider())}.
 */
public final class EmulatorBackendProvider implements BackendProvider {
    private final EmulatorOptions options;

    /** With {@link EmulatorOptions#defaults()}. */
    public EmulatorBackendProvider() {
        this(EmulatorOptions.defaults());
    }

    public EmulatorBackendProvider(EmulatorOptions options) {
        this.options = options;
    }

    @Override
    public String name() {
        return "emulator";
    }

    @Override
    public BackendInfo probe() {
        return new BackendInfo("emulator", true, "PTX emulator, " + options.multiprocessorCount() + " SMs emulated, "
                + (options.memoryCheck() && options.initCheck() && options.raceCheck() ? "all checks on" : "checks reduced")
                + ", single core");
    }

    @Override
    public BatchNormOps open() {
        return new GpuBatchNormOps("emulator", new EmulatedDevice(options), true);
    }
}
