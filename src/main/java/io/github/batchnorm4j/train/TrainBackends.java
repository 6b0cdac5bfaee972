package io.github.batchnorm4j.train;

import io.github.batchnorm4j.BackendUnavailableException;

import io.github.batchnorm4j.cuda.CudaDevice;
import io.github.batchnorm4j.cuda.CudaProbe;
import io.github.batchnorm4j.gpu.DeviceException;
import io.github.batchnorm4j.ptx.EmulatedDevice;

import java.util.Locale;

/**
 * Opens a {@link TrainBackend} by name:
 * <ul>
 *   <li>{@code cpu}: {@link CpuTrainBackend};</li>
 *   <li>{@code cuda}: {@link DeviceTrainBackend} on GPU 0 through JCuda (cuBLAS GEMMs when libcublas loads, else our
 *       PTX GEMM), when the probe finds a driver and a device;</li>
 *   <li>{@code emulator}: the same GPU path on the PTX emulator: exact but slow, for checking, never chosen
 *       automatically;</li>
 *   <li>{@code auto}: {@code cuda} when available, else {@code cpu}.</li>
 * </ul>
 */
public final class TrainBackends {
    private TrainBackends() {
    }

    /** The backend {@code auto} resolves to now, with the reason. */
    public static String describeAuto() {
        CudaProbe.Result r = probeCuda();
        return r.available() ? "auto -> cuda (" + r.detail() + ")" : "auto -> cpu (cuda unavailable: " + r.detail() + ")";
    }

    /**
     * @throws IllegalArgumentException    for an unknown name
     * @throws BackendUnavailableException for {@code cuda} where it cannot be used, with the reason
     */
    public static TrainBackend open(String name) {
        if (name == null) throw new IllegalArgumentException("backend must not be null");
        switch (name.toLowerCase(Locale.ROOT)) {
            case "auto":
                return probeCuda().available() ? openCuda() : new CpuTrainBackend();
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
                return openCuda();
            default:
                throw new IllegalArgumentException("backend: expected auto, cpu, emulator or cuda, got '" + name + "'");
        }
    }

    private static CudaProbe.Result probeCuda() {
        try {
            return CudaProbe.probe();
        } catch (RuntimeException | LinkageError e) {
            return new CudaProbe.Result(false, "probe failed: " + e);
        }
    }

    private static TrainBackend openCuda() {
        CudaProbe.Result r = probeCuda();
        if (!r.available()) throw new BackendUnavailableException("cuda", r.detail());
        CudaDevice device;
        try {
            device = new CudaDevice(0);
        } catch (DeviceException | LinkageError e) {
            throw new BackendUnavailableException("cuda", "opening GPU 0 failed: " + e.getMessage(), e);
        }
        try {
            DeviceGemm gemm;
            try {
                gemm = new CublasGemm();
            } catch (DeviceException | LinkageError e) {
                // No libcublas: our PTX GEMM is slower but gives the same results.
                System.err.println("note: cuBLAS unavailable (" + e.getMessage() + "); using the PTX GEMM");
                gemm = null;
            }
            return new OwningDeviceBackend(new DeviceTrainBackend(device, "cuda", gemm), device);
        } catch (RuntimeException e) {
            device.close();
            throw e;
        }
    }
}
