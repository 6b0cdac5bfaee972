package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DeviceException;
import io.github.batchnorm4j.gpu.DeviceModule;
import io.github.batchnorm4j.gpu.DeviceStream;
import io.github.batchnorm4j.gpu.Dim3;
import io.github.batchnorm4j.gpu.KernelArgs;
import io.github.batchnorm4j.testing.GpuTest;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The real JCuda adapter on a real GPU: skipped (with the probe's reason) where there is none. This is the part of
 * {@link CudaDevice} that the fake cannot prove: JCuda's handling of offsets on device and host pointers, the kernel
 * parameter block, asynchronous copies from Java arrays, the dynamic-shared-memory opt-in, and real error codes.
 */
@GpuTest
class CudaDeviceGpuTest {

    private static String ptx() throws IOException {
        try (InputStream in = CudaDeviceGpuTest.class.getResourceAsStream("device_smoke.ptx")) {
            return new String(in.readAllBytes(), StandardCharsets.US_ASCII);
        }
    }

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
    void copiesWithOffsetsAndAKernelLaunchRoundTrip() throws IOException {
        Random r = new Random(3);
        float[] host = new float[1000];
        for (int i = 0; i < host.length; i++) host[i] = (float) r.nextGaussian();
        try (CudaDevice d = new CudaDevice(0); DeviceBuffer b = d.allocate(8192); DeviceStream s = d.createStream();
             DeviceModule m = d.loadModule("device_smoke.ptx", ptx())) {
            d.copyToDevice(host, 10, b.at(260), 900, s);
            d.launch(m.kernel("axpb"), Dim3.of(4), Dim3.of(256), 0, s, new KernelArgs().ptr(b.at(260)).f32(2.5f).u32(900));
            float[] out = new float[1000];
            Arrays.fill(out, Float.NaN);
            d.copyToHost(b.at(260), out, 50, 900, s);
            for (int i = 0; i < 900; i++) assertEquals(Math.fma(host[10 + i], 2.5f, 1f), out[50 + i], "element " + i);
            assertTrue(Float.isNaN(out[49]) && Float.isNaN(out[950]));
            d.memset(b.at(260), (byte) 0, 8, s);
            d.copyToHost(b.at(260), out, 0, 3, s);
            assertEquals(0f, out[0]);
            assertEquals(0f, out[1]);
            assertEquals(Math.fma(host[12], 2.5f, 1f), out[2]);
            int[] ints = {7, -8, 9};
            int[] back = new int[3];
            d.copyToDevice(ints, 0, b.at(4000), 3, s);
            d.copyDeviceToDevice(b.at(4000), b.at(5000), 12, s);
            d.copyToHost(b.at(5000), back, 0, 3, s);
            assertArrayEquals(ints, back);
        }
    }

    @Test
    void dynamicSharedMemoryAbove48KiBWorksAfterTheOptIn() throws IOException {
        try (CudaDevice d = new CudaDevice(0)) {
            int bytes = Math.min(96 * 1024, d.properties().maxSharedMemoryPerBlockOptin());
            assumeTrue(bytes > 48 * 1024, "this GPU has no opt-in beyond 48 KiB");
            int words = bytes / 4;
            try (DeviceBuffer out = d.allocate(64 * 4); DeviceModule m = d.loadModule("device_smoke.ptx", ptx())) {
                d.launch(m.kernel("shared_probe"), Dim3.of(1), Dim3.of(64), bytes, d.defaultStream(),
                        new KernelArgs().ptr(out).u32(words));
                int[] got = new int[64];
                d.copyToHost(out.pointer(), got, 0, 64, d.defaultStream());
                int[] expected = new int[64];
                Arrays.fill(expected, words);
                assertArrayEquals(expected, got);
            }
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
