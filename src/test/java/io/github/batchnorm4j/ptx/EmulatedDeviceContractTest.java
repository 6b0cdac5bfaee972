package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.gpu.Device;
import io.github.batchnorm4j.gpu.DeviceContractTest;

/** The Device contract on the PTX emulator, every check on. */
class EmulatedDeviceContractTest extends DeviceContractTest {
    @Override
    protected Device open() {
        return new EmulatedDevice();
    }
}
