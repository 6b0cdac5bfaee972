package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.gpu.DeviceException;
import io.github.batchnorm4j.testing.GpuTest;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The real JCuda adapter on a real GPU: skipped (with the probe's reason) where there is none. Offsets on device and
 * host pointers, the kernel parameter block, asynchronous copies from Java arrays and the dynamic-shared-memory opt-in
 * are proven by the Device contract on the real device ({@link CudaDeviceContractGpuTest}); here what only the real
 * driver shows: the probed device's properties and real error codes.
 */
@GpuTest
class CudaDeviceGpuTest {

    @Test
    void propertiesAreThoseOfTheProbedDevice() {
        try (CudaDevice d = new CudaDevice(0)) {
            System.out.println("[GPU] " + d.name() + " " + d.properties());
            assertTrue(CudaProbe.probe().detail().startsWith(d.name()));
            assertTrue(d.properties().multiprocessorCount() >= 1);
            assertTrue(d.properties().maxSharedMemoryPerBlockOptin() >= 48 * 1024);
        }
    }

    @Test
    void realDriverErrorsAreNamed() {
        try (CudaDevice d = new CudaDevice(0)) {
            DeviceException e = assertThrows(DeviceException.class, () -> d.allocate(1L << 50));
            assertTrue(e.getMessage().contains("CUDA_ERROR_OUT_OF_MEMORY"), e.getMessage());
            e = assertThrows(DeviceException.class, () -> d.loadModule("broken.ptx", ".version 8.0\n.target sm_75\nbogus;"));
            assertTrue(e.getMessage().contains("cuModuleLoadData(module=broken.ptx)"), e.getMessage());
        }
    }
}
