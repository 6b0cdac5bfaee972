package io.github.batchnorm4j.train;

import io.github.batchnorm4j.BackendUnavailableException;

import io.github.batchnorm4j.ptx.EmulatedDevice;

import java.util.Locale;

/**
 * Opens a {@link TrainBackend} by name: {@code cpu}; {@code emulator}, the GPU training path
 * ({@link DeviceTrainBackend}: our PTX kernels and the device-resident batch norm) on the PTX emulator, exact but
 * slow (for checking, never chosen automatically); or {@code auto}. The GPU training backend on a real device
 * ({@code cuda}) needs the JCuda {@code Device} of the cuda package, which this build does not wire in yet, so
 * {@code auto} resolves to {@code cpu} and {@code cuda} is reported unavailable.
 */
public final class TrainBackends {
    private TrainBackends() {
    }

    /** The backend {@code auto} resolves to, with the reason. */
    public static String describeAuto() {
        return "auto -> cpu (the GPU training path is not wired to a CUDA device in this build)";
    }

    /**
     * @throws IllegalArgumentException    for an unknown name
     * @throws BackendUnavailableException for {@code cuda}, with the reason
     */
    public static TrainBackend open(String name) {
        if (name == null) throw new IllegalArgumentException("backend must not be null");
        switch (name.toLowerCase(Locale.ROOT)) {
            case "auto":
            case "cpu":
                return new CpuTrainBackend();
            case "emulator": {
                EmulatedDevice device = new EmulatedDevice();
                try {
                    return new OwningDeviceBackend(new DeviceTrainBackend(device, "emulator"), device);
                } catch (RuntimeException e) {
                    device.close();
                    throw e;
                }
            }
            case "cuda":
                throw new BackendUnavailableException("cuda", "the GPU training backend is not wired to a CUDA"
                        + " device in this build yet; use --backend cpu (or auto), or emulator to run the GPU path on"
                        + " the PTX emulator");
            default:
                throw new IllegalArgumentException("backend: expected auto, cpu, emulator or cuda, got '" + name + "'");
        }
    }
}
