package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.gpu.Device;
import io.github.batchnorm4j.gpu.DeviceContractTest;

/**
 * The Device contract on {@link CudaDevice} over the fake driver ({@link FakeDriverApi}: memory is host arrays, so
 * copies round-trip; launches are recorded, not run).
 */
class FakeDriverDeviceContractTest extends DeviceContractTest {
    @Override
    protected Device open() {
        return new CudaDevice(new FakeDriverApi(), 0);
    }

    @Override
    protected boolean runsKernels() {
        return false;
    }
}
