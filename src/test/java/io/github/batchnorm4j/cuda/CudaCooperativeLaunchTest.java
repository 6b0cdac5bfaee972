package io.github.batchnorm4j.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DeviceException;
import io.github.batchnorm4j.gpu.DeviceModule;
import io.github.batchnorm4j.gpu.Dim3;
import io.github.batchnorm4j.gpu.Kernel;
import io.github.batchnorm4j.gpu.KernelArgs;
import jcuda.driver.CUdevice_attribute;
import org.junit.jupiter.api.Test;

/**
 * Cooperative launches on a GPU go to {@code cuLaunchCooperativeKernel} (the thin JCuda call, checked against the fake
 * driver): the marshalled parameters and geometry reach it, the driver's COOPERATIVE_LAUNCH_TOO_LARGE becomes a
 * DeviceException naming the kernel and grid, and a device without the attribute refuses before calling the driver.
 */
class CudaCooperativeLaunchTest {
    private static final String PTX = String.join("\n", ".version 8.0", ".target sm_75", ".address_size 64", "",
            ".visible .entry bn_coop(", "\t.param .u64 p,", "\t.param .u32 n", ")", "{", "\tret;", "}", "");

    private final FakeDriverApi fake = new FakeDriverApi();

    @Test
    void aCooperativeLaunchGoesToCuLaunchCooperativeKernel() {
        fake.occupancyAnswer = 2;   // 2 blocks per SM x 132 SMs = 264 co-resident blocks
        try (CudaDevice d = new CudaDevice(fake, 0); DeviceModule m = d.loadModule("coop.ptx", PTX);
             DeviceBuffer b = d.allocate(64)) {
            assertTrue(d.supportsCooperativeLaunch());
            Kernel k = m.kernel("bn_coop");
            d.launchCooperative(k, Dim3.of(264), Dim3.of(256), 0, d.defaultStream(),
                    new KernelArgs().ptr(b.pointer()).i32(7));
            assertEquals(1, fake.cooperativeLaunches.size());
            assertEquals(0, fake.launches.size(), "not an ordinary launch");
            FakeDriverApi.Launch l = fake.cooperativeLaunches.get(0);
            assertEquals("bn_coop", l.kernel());
            assertEquals(Dim3.of(264), l.grid());
            assertEquals(Dim3.of(256), l.block());
            assertEquals(2, l.params().size());

            DeviceException e = assertThrows(DeviceException.class, () -> d.launchCooperative(k, Dim3.of(265),
                    Dim3.of(256), 0, d.defaultStream(), new KernelArgs().ptr(b.pointer()).i32(7)));
            assertTrue(e.getMessage().contains("CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE"), e.getMessage());
            assertTrue(e.getMessage().contains("cuLaunchCooperativeKernel(kernel=bn_coop, grid=(265,1,1)"),
                    e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> d.launchCooperative(k, Dim3.of(1), Dim3.of(256), 0,
                    d.defaultStream(), new KernelArgs().ptr(b.pointer())), "the signature is checked first");
        }
    }

    @Test
    void aDeviceWithoutCooperativeLaunchSaysSo() {
        fake.attributes.put(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH, 0);
        try (CudaDevice d = new CudaDevice(fake, 0); DeviceModule m = d.loadModule("coop.ptx", PTX);
             DeviceBuffer b = d.allocate(64)) {
            assertFalse(d.supportsCooperativeLaunch());
            UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class,
                    () -> d.launchCooperative(m.kernel("bn_coop"), Dim3.of(1), Dim3.of(32), 0, d.defaultStream(),
                            new KernelArgs().ptr(b.pointer()).i32(1)));
            assertTrue(e.getMessage().contains("COOPERATIVE_LAUNCH is 0"), e.getMessage());
            assertTrue(fake.cooperativeLaunches.isEmpty());
        }
    }
}
