package io.github.batchnorm4j.train;

import io.github.batchnorm4j.BackendProvider;
import io.github.batchnorm4j.BackendUnavailableException;
import io.github.batchnorm4j.Backends;
import io.github.batchnorm4j.cuda.CudaDevice;
import io.github.batchnorm4j.gpu.Device;
import io.github.batchnorm4j.gpu.DeviceBackendProvider;
import io.github.batchnorm4j.gpu.DeviceException;

/**
 * Opens a {@link TrainBackend} for a backend of the library's one registry ({@link Backends}): the same names, probes
 * and {@code auto} rule as every other command.
 * <ul>
 *   <li>{@code cpu}: {@link CpuTrainBackend};</li>
 *   <li>a backend that runs our kernels on a device ({@link DeviceBackendProvider}: {@code cuda}, {@code emulator}):
 *       {@link DeviceTrainBackend} on a device of its own (on a CUDA device cuBLAS GEMMs when libcublas loads, else
 *       our PTX GEMM). The emulator is exact but slow, for checking, and never chosen automatically;</li>
 *   <li>{@code auto}: {@code cuda} when available, else {@code cpu}.</li>
 * </ul>
 * Other backends ({@code cudnn}) compute batch norm only and cannot train.
 */
public final class TrainBackends {
    private TrainBackends() {
    }

    /** The backend {@code auto} resolves to now, with the reason. */
    public static String describeAuto() {
        return Backends.describeAuto();
    }

    /**
     * @throws IllegalArgumentException    for an unknown name, or a backend that cannot train
     * @throws BackendUnavailableException for a device backend that cannot be used here, with the reason
     */
    public static TrainBackend open(String name) {
        return open(name, 0);
    }

    /**
     * The backend on device {@code ordinal} (GPU k for cuda, a fresh emulated device, a CPU backend of its own), for
     * rank {@code ordinal} of data-parallel training.
     *
     * @throws IllegalArgumentException    for an unknown name, or a backend that cannot train
     * @throws BackendUnavailableException for a device that cannot be used here (e.g. fewer GPUs), with the reason
     */
    public static TrainBackend open(String name, int ordinal) {
        String resolved = Backends.resolve(name);
        if (resolved.equals("cpu")) return new CpuTrainBackend();
        BackendProvider provider = Backends.provider(resolved);
        if (!(provider instanceof DeviceBackendProvider deviceProvider)) {
            throw new IllegalArgumentException("backend: expected auto, cpu or a device backend (cuda, emulator) for "
                    + "training, got '" + name + "'");
        }
        Device device = deviceProvider.openDevice(ordinal);
        DeviceGemm gemm;
        try {
            gemm = device instanceof CudaDevice cuda ? cublasOrNull(cuda) : null;
        } catch (RuntimeException | LinkageError e) {
            device.close();
            throw e;
        }
        return new DeviceTrainBackend(device, resolved, gemm, true);
    }

    /** cuBLAS on {@code device}, or null (our PTX GEMM: slower, same results) where libcublas does not load. */
    private static DeviceGemm cublasOrNull(CudaDevice device) {
        try {
            device.makeCurrent();   // the handle belongs to the context current when it is created
            return new CublasGemm();
        } catch (DeviceException | LinkageError e) {
            System.err.println("note: cuBLAS unavailable (" + e.getMessage() + "); using the PTX GEMM");
            return null;
        }
    }
}
