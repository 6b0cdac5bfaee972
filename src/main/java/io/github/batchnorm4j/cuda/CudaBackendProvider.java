package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.BackendInfo;
import io.github.batchnorm4j.BackendProvider;
import io.github.batchnorm4j.BackendUnavailableException;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.gpu.DeviceException;
import io.github.batchnorm4j.gpu.GpuBatchNormOps;

/** The {@code cuda} backend: our kernels ({@link GpuBatchNormOps}) on GPU 0 through JCuda's driver API. */
public final class CudaBackendProvider implements BackendProvider {

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
        CudaProbe.Result r = CudaProbe.probe();
        if (!r.available()) throw new BackendUnavailableException(name(), r.detail());
        CudaDevice device;
        try {
            device = new CudaDevice(0);
        } catch (DeviceException | LinkageError e) {
            throw new BackendUnavailableException(name(), "opening GPU 0 failed: " + e.getMessage(), e);
        }
        return new GpuBatchNormOps("cuda", device, true);
    }
}
