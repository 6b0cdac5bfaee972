package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.BackendInfo;
import io.github.batchnorm4j.BackendUnavailableException;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.gpu.DeviceBackendProvider;
import io.github.batchnorm4j.gpu.DeviceException;
import io.github.batchnorm4j.gpu.HostArrayBatchNormOps;

/** The {@code cuda} backend: our kernels ({@link HostArrayBatchNormOps}) on GPU 0 through JCuda's driver API. */
public final class CudaBackendProvider implements DeviceBackendProvider {

    @Override
    public String name() {
        return "cuda";
    }

    @Override
    public BackendInfo probe() {
        CudaProbe.Result r = CudaProbe.probe();
        return new BackendInfo(name(), r.available(), r.detail());
    }

    /**
     * @throws BackendUnavailableException with the probe's reason, or the driver error met while opening the device
     */
    @Override
    public BatchNormOps open() {
        return new HostArrayBatchNormOps("cuda", openDevice(), true);
    }

    /** GPU 0, when the probe finds it usable. */
    @Override
    public CudaDevice openDevice() {
        return openGpu0(name(), CudaProbe.probe());
    }

    /** GPU {@code ordinal}, when the probe finds CUDA usable and the machine has that many GPUs. */
    @Override
    public CudaDevice openDevice(int ordinal) {
        CudaProbe.Result probe = CudaProbe.probe();
        if (!probe.available()) throw new BackendUnavailableException(name(), probe.detail());
        try {
            return new CudaDevice(ordinal);
        } catch (DeviceException | LinkageError e) {
            throw new BackendUnavailableException(name(), "opening GPU " + ordinal + " failed: " + e.getMessage(), e);
        }
    }

    /**
     * Opens GPU 0 for the backend {@code backend} (cuda and cudnn share this); the caller owns the device.
     *
     * @param probe that backend's probe of this machine
     * @throws BackendUnavailableException with the probe's reason, or the driver error met while opening the device
     */
    public static CudaDevice openGpu0(String backend, CudaProbe.Result probe) {
        if (!probe.available()) throw new BackendUnavailableException(backend, probe.detail());
        try {
            return new CudaDevice(0);
        } catch (DeviceException | LinkageError e) {
            throw new BackendUnavailableException(backend, "opening GPU 0 failed: " + e.getMessage(), e);
        }
    }
}
