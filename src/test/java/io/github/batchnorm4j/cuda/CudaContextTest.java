package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DeviceModule;
import io.github.batchnorm4j.gpu.DeviceStream;
import io.github.batchnorm4j.gpu.Dim3;
import io.github.batchnorm4j.gpu.Kernel;
import io.github.batchnorm4j.gpu.KernelArgs;
import org.junit.jupiter.api.Test;

import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * CudaDevice's context handling on the fake driver, which keeps the current context per thread and refuses a launch
 * outside its module's context: with two devices on one thread, and another library switching the thread's context
 * between calls, every call of a device runs in that device's primary context.
 */
class CudaContextTest {
    private static final String PTX = String.join("\n",
            ".version 8.0", ".target sm_75", ".address_size 64", "",
            ".visible .entry k(", "\t.param .u64 k_param_0", ")", "{", "\tret;", "}", "");
    private static final long FOREIGN = 0xF00D_0000L;

    private final FakeDriverApi fake = new FakeDriverApi();
    private final long ca = FakeDriverApi.primaryContext(0);
    private final long cb = FakeDriverApi.primaryContext(1);

    /** Runs {@code call} and returns the contexts the driver saw it run in. */
    private Set<Long> contextsOf(Runnable call) {
        int mark = fake.calls.size();
        call.run();
        return fake.contextsSince(mark);
    }

    @Test
    void twoDevicesOnOneThreadWithForeignSwitchesEachCallRunsInItsOwnContext() {
        fake.deviceCount = 2;
        try (CudaDevice a = new CudaDevice(fake, 0); CudaDevice b = new CudaDevice(fake, 1)) {
            assertEquals(cb, fake.currentContext(), "the last device opened is current");
            DeviceModule[] m = new DeviceModule[2];
            assertEquals(Set.of(ca), contextsOf(() -> m[0] = a.loadModule("a", PTX)));
            assertEquals(Set.of(cb), contextsOf(() -> m[1] = b.loadModule("b", PTX)));
            Kernel ka = m[0].kernel("k");
            Kernel kb = m[1].kernel("k");
            DeviceBuffer[] buf = new DeviceBuffer[2];
            assertEquals(Set.of(ca), contextsOf(() -> buf[0] = a.allocate(256)));
            assertEquals(Set.of(cb), contextsOf(() -> buf[1] = b.allocate(256)));
            // A after B on the same thread: A's context must come back.
            float[] data = {1, 2, 3, 4};
            assertEquals(Set.of(ca), contextsOf(() -> a.copyToDevice(data, 0, buf[0].pointer(), 4, a.defaultStream())));
            assertEquals(Set.of(ca), contextsOf(() -> a.launch(ka, Dim3.of(1), Dim3.of(32), 0, a.defaultStream(),
                    new KernelArgs().ptr(buf[0].pointer()))));
            // Another library switched the thread to its own context, then to A's: B must still run in B's.
            fake.foreignSetCurrent(FOREIGN);
            assertEquals(Set.of(cb), contextsOf(() -> b.launch(kb, Dim3.of(1), Dim3.of(32), 0, b.defaultStream(),
                    new KernelArgs().ptr(buf[1].pointer()))));
            fake.foreignSetCurrent(ca);
            assertEquals(Set.of(cb), contextsOf(b::synchronize));
            DeviceStream[] s = new DeviceStream[1];
            fake.foreignSetCurrent(FOREIGN);
            assertEquals(Set.of(ca), contextsOf(() -> s[0] = a.createStream()));
            assertEquals(Set.of(cb), contextsOf(() -> buf[1].close()));   // B's free while A was current
            assertEquals(Set.of(ca), contextsOf(() -> s[0].close()));
            float[] back = new float[4];
            assertEquals(Set.of(ca), contextsOf(() -> a.copyToHost(buf[0].pointer(), back, 0, 4, a.defaultStream())));
            assertArrayEquals(data, back);
            // For another library (cuBLAS, NCCL): makeCurrent leaves the device's context current.
            fake.foreignSetCurrent(FOREIGN);
            b.makeCurrent();
            assertEquals(cb, fake.currentContext());
            buf[0].close();
            m[0].close();
            m[1].close();
        }
    }

    @Test
    void aThreadThatNeverUsedADeviceGetsItsContext() throws Exception {
        try (CudaDevice a = new CudaDevice(fake, 0); DeviceBuffer buf = a.allocate(64)) {
            ExecutorService other = Executors.newSingleThreadExecutor();
            try {
                Set<Long> seen = other.submit(() -> {
                    assertEquals(0L, fake.currentContext(), "a fresh thread has no context");
                    return contextsOf(() -> a.memset(buf.pointer(), (byte) 1, 64, a.defaultStream()));
                }).get(10, TimeUnit.SECONDS);
                assertEquals(Set.of(ca), seen);
            } finally {
                other.shutdownNow();
            }
        }
    }

    /** The cost: one cuCtxGetCurrent per call, and a cuCtxSetCurrent only when the thread's context really changes. */
    @Test
    void oneContextQueryPerCallAndASwitchOnlyWhenNeeded() {
        fake.deviceCount = 2;
        try (CudaDevice a = new CudaDevice(fake, 0); CudaDevice b = new CudaDevice(fake, 1);
             DeviceBuffer x = a.allocate(64); DeviceBuffer y = b.allocate(64)) {
            a.memset(x.pointer(), (byte) 0, 64, a.defaultStream());   // B was current: this one switches
            long gets = fake.count("cuCtxGetCurrent");
            long sets = fake.count("cuCtxSetCurrent");
            for (int i = 0; i < 100; i++) a.memset(x.pointer(), (byte) 0, 64, a.defaultStream());
            assertEquals(gets + 100, fake.count("cuCtxGetCurrent"));
            assertEquals(sets, fake.count("cuCtxSetCurrent"), "A was already current: no switch");
            for (int i = 0; i < 10; i++) {
                b.memset(y.pointer(), (byte) 0, 64, b.defaultStream());
                a.memset(x.pointer(), (byte) 0, 64, a.defaultStream());
            }
            assertEquals(sets + 20, fake.count("cuCtxSetCurrent"), "one switch per change of device");
        }
    }

    @Test
    void aFailingContextQueryIsReportedWithItsCall() {
        try (CudaDevice a = new CudaDevice(fake, 0)) {
            fake.failures.put("cuCtxGetCurrent", jcuda.driver.CUresult.CUDA_ERROR_DEINITIALIZED);
            var e = assertThrows(io.github.batchnorm4j.gpu.DeviceException.class, () -> a.allocate(16));
            assertEquals(true, e.getMessage().contains("cuCtxGetCurrent")
                    && e.getMessage().contains("CUDA_ERROR_DEINITIALIZED"), e.getMessage());
            fake.failures.clear();
        }
    }

    @Test
    void streamsKnowTheirDevice() {
        try (CudaDevice a = new CudaDevice(fake, 0)) {
            assertEquals(a, CudaDevice.of(a.defaultStream()));
            assertThrows(IllegalArgumentException.class, () -> CudaDevice.of(null));
        }
    }
}
