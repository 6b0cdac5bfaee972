package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.BackendInfo;
import io.github.batchnorm4j.BackendProvider;
import io.github.batchnorm4j.BackendUnavailableException;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.cuda.CudaBackendProvider;
import io.github.batchnorm4j.cuda.CudaDevice;
import io.github.batchnorm4j.cuda.CudaProbe;
import io.github.batchnorm4j.gpu.DeviceException;

/** The {@code cudnn} backend: cuDNN's batch norm on GPU 0, for cross-checking our kernels. */
public final class CudnnBackendProvider implements BackendProvider {

    @Override
    public String name() {
        return "cudnn";
    }

    @Override
    public BackendInfo probe() {
        CudaProbe.Result r = CudnnProbe.probe();
        return new BackendInfo(name(), r.available(), r.detail());
    }

    /** @throws BackendUnavailableException with the probe's reason or the error met while opening */
    @Override
    public BatchNormOps open() {
        CudaDevice device = CudaBackendProvider.openGpu0(name(), CudnnProbe.probe());
        try {
            return new CudnnBatchNormOps(device, true);
        } catch (DeviceException | LinkageError e) {
            device.close();
            throw new BackendUnavailableException(name(), "creating the cuDNN handle failed: " + e.getMessage(), e);
        }
    }
}
