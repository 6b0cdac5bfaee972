package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.gpu.Device;
import io.github.batchnorm4j.gpu.DeviceContractTest;
import io.github.batchnorm4j.testing.GpuTest;

/** The Device contract on GPU 0 through JCuda's driver API; skipped, with the probe's reason, without a GPU. */
@GpuTest
class CudaDeviceContractGpuTest extends DeviceContractTest {
    @Override
    protected Device open() {
        return new CudaDevice(0);
    }
}
