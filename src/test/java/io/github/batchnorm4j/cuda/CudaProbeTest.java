package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.BackendInfo;
import io.github.batchnorm4j.BackendUnavailableException;
import jcuda.driver.CUresult;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

/** Every reason CUDA may be unavailable, through a fake driver; and the probe of this very machine. */
class CudaProbeTest {

    @Test
    void missingDriverLibraryIsExplainedNotThrown() {
        UnsatisfiedLinkError e = new UnsatisfiedLinkError("Error while loading native library "
                + "\"JCudaDriver-12.6.0-linux-x86_64\"\n...\njava.lang.UnsatisfiedLinkError: "
                + "/tmp/libJCudaDriver-12.6.0-linux-x86_64.so: libcuda.so.1: cannot open shared object file");
        CudaProbe.Result r = CudaProbe.probe(() -> {
            throw e;
        });
        assertFalse(r.available());
        assertTrue(r.detail().startsWith("no NVIDIA driver: libcuda.so.1"), r.detail());
        assertFalse(r.detail().contains("\n"), "one line");

        r = CudaProbe.probe(() -> {
            throw new NoClassDefFoundError("Could not initialize class jcuda.driver.JCudaDriver");
        });
        assertFalse(r.available());
        assertTrue(r.detail().contains("failed to load earlier") && r.detail().contains("jcuda.driver.JCudaDriver"),
                r.detail());
    }

    @Test
    void cuInitErrors() {
        FakeDriverApi f = new FakeDriverApi();
        f.failures.put("cuInit", CUresult.CUDA_ERROR_NO_DEVICE);
        CudaProbe.Result r = CudaProbe.probe(() -> f);
        assertFalse(r.available());
        assertTrue(r.detail().startsWith("no CUDA device") && r.detail().contains("CUDA_ERROR_NO_DEVICE"), r.detail());

        FakeDriverApi g = new FakeDriverApi();
        g.failures.put("cuInit", CUresult.CUDA_ERROR_OPERATING_SYSTEM);
        assertEquals("cuInit failed: CUDA_ERROR_OPERATING_SYSTEM", CudaProbe.probe(() -> g).detail());
    }

    @Test
    void driverOlderThanCuda12IsTooOldForPtx80() {
        FakeDriverApi f = new FakeDriverApi();
        f.driverVersion = 11080;
        CudaProbe.Result r = CudaProbe.probe(() -> f);
        assertFalse(r.available());
        assertEquals("NVIDIA driver too old: it supports CUDA 11.8, but batchnorm4j's PTX (ISA 8.0) needs a CUDA 12.0 "
                + "or newer driver", r.detail());
        f.driverVersion = 12000;
        assertTrue(CudaProbe.probe(() -> f).available(), "12.0 itself is enough");
    }

    @Test
    void noDeviceAndTooOldDevice() {
        FakeDriverApi f = new FakeDriverApi();
        f.deviceCount = 0;
        assertEquals("no CUDA device: the NVIDIA driver (CUDA 12.4) reports 0 devices",
                CudaProbe.probe(() -> f).detail());
        FakeDriverApi g = new FakeDriverApi();
        g.deviceName = "Tesla P100";
        g.attributes.put(75, 6);
        g.attributes.put(76, 0);
        CudaProbe.Result r = CudaProbe.probe(() -> g);
        assertFalse(r.available());
        assertTrue(r.detail().contains("Tesla P100 has compute capability 6.0"), r.detail());
    }

    @Test
    void availableDeviceIsDescribed() {
        FakeDriverApi f = new FakeDriverApi();
        f.deviceName = "NVIDIA H100 80GB HBM3";
        f.deviceCount = 2;
        CudaProbe.Result r = CudaProbe.probe(() -> f);
        assertTrue(r.available());
        assertEquals("NVIDIA H100 80GB HBM3 (compute capability 9.0, 132 SMs), driver CUDA 12.4, 2 devices", r.detail());
        assertEquals(0, f.retained, "probing creates no context");
    }

    /** The real probe here: prints the reason; on a machine without a GPU it must be unavailable and say why. */
    @Test
    void probeOfThisMachine() {
        CudaProbe.Result r = CudaProbe.probe();
        System.out.println("[CudaProbe on this machine] available=" + r.available() + ": " + r.detail());
        assertFalse(r.detail().isBlank());
        assertFalse(r.detail().contains("\n"), "one line: " + r.detail());
        assertEquals(r, CudaProbe.probe(), "cached");
        CudaBackendProvider p = new CudaBackendProvider();
        BackendInfo info = p.probe();
        assertEquals(new BackendInfo("cuda", r.available(), r.detail()), info);
        assumeFalse(r.available(), "a GPU is present: the unavailable path is not exercised here");
        BackendUnavailableException e = assertThrows(BackendUnavailableException.class, p::open);
        assertEquals("backend 'cuda' is unavailable: " + r.detail(), e.getMessage());
    }
}
