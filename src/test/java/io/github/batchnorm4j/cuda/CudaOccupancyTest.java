package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.gpu.DeviceException;
import io.github.batchnorm4j.gpu.DeviceModule;
import io.github.batchnorm4j.gpu.Kernel;
import io.github.batchnorm4j.gpu.KernelResources;
import jcuda.driver.CUfunction_attribute;
import jcuda.driver.CUresult;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Occupancy on a GPU goes to the driver: {@code cuOccupancyMaxActiveBlocksPerMultiprocessor} for resident blocks and
 * {@code cuFuncGetAttribute} for a kernel's registers, checked here against the fake driver.
 */
class CudaOccupancyTest {
    private static final String PTX = String.join("\n", ".version 8.0", ".target sm_75", ".address_size 64", "",
            ".visible .entry bn_small(", "\t.param .u64 p", ")", "{", "\tret;", "}", "");

    private final FakeDriverApi fake = new FakeDriverApi();

    @Test
    void residentBlocksComeFromTheDriver() {
        fake.occupancyAnswer = 5;
        try (CudaDevice d = new CudaDevice(fake, 0); DeviceModule m = d.loadModule("small.ptx", PTX)) {
            Kernel k = m.kernel("bn_small");
            assertEquals(5, d.maxActiveBlocksPerMultiprocessor(k, 256, 0));
            assertEquals(5, d.maxActiveBlocksPerMultiprocessor(k, 512, 4096));
            assertEquals(List.of("bn_small 256 0", "bn_small 512 4096"), fake.occupancyQueries);
            fake.failures.put("cuOccupancyMaxActiveBlocksPerMultiprocessor", CUresult.CUDA_ERROR_INVALID_VALUE);
            DeviceException e = assertThrows(DeviceException.class, () -> d.maxActiveBlocksPerMultiprocessor(k, 256, 0));
            assertTrue(e.getMessage().contains("CUDA_ERROR_INVALID_VALUE"), e.getMessage());
            assertTrue(e.getMessage().contains("cuOccupancyMaxActiveBlocksPerMultiprocessor(kernel=bn_small, blockSize=256"),
                    e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> d.maxActiveBlocksPerMultiprocessor(k, 0, 0));
        }
    }

    @Test
    void kernelResourcesComeFromFunctionAttributes() {
        fake.functionAttributes.put(CUfunction_attribute.CU_FUNC_ATTRIBUTE_NUM_REGS, 46);
        fake.functionAttributes.put(CUfunction_attribute.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, 392);
        fake.functionAttributes.put(CUfunction_attribute.CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, 0);
        fake.functionAttributes.put(CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, 256);
        fake.deviceName = "NVIDIA H100 80GB HBM3";
        try (CudaDevice d = new CudaDevice(fake, 0); DeviceModule m = d.loadModule("small.ptx", PTX)) {
            KernelResources r = m.kernel("bn_small").resources();
            assertEquals(new KernelResources(46, 392, 0, 256, "cuFuncGetAttribute on NVIDIA H100 80GB HBM3"), r);
            fake.functionAttributes.remove(CUfunction_attribute.CU_FUNC_ATTRIBUTE_NUM_REGS);
            DeviceException e = assertThrows(DeviceException.class, () -> m.kernel("bn_small").resources());
            assertTrue(e.getMessage().contains("CU_FUNC_ATTRIBUTE_NUM_REGS, kernel=bn_small"), e.getMessage());
        }
    }
}
