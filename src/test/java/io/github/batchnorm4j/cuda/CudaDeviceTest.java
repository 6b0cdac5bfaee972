package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.gpu.Architecture;
import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DeviceException;
import io.github.batchnorm4j.gpu.DeviceModule;
import io.github.batchnorm4j.gpu.DeviceProperties;
import io.github.batchnorm4j.gpu.DeviceEvent;
import io.github.batchnorm4j.gpu.DeviceStream;
import io.github.batchnorm4j.gpu.Dim3;
import io.github.batchnorm4j.gpu.Kernel;
import io.github.batchnorm4j.gpu.KernelArgs;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction_attribute;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUresult;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** CudaDevice above the driver seam: ownership, marshalling, error mapping, properties, the shared-memory opt-in. */
class CudaDeviceTest {
    private static final String PTX = String.join("\n",
            ".version 8.0", ".target sm_75", ".address_size 64", "",
            ".visible .entry bn_apply(", "\t.param .u64 bn_apply_param_0,", "\t.param .u64 bn_apply_param_1,",
            "\t.param .u32 bn_apply_param_2,", "\t.param .u64 bn_apply_param_3,", "\t.param .f32 bn_apply_param_4,",
            "\t.param .f64 bn_apply_param_5", ")", "{", "\tret;", "}", "",
            ".visible .entry bn_small(", "\t.param .u64 p", ")", "{", "\tret;", "}", "");

    private final FakeDriverApi fake = new FakeDriverApi();

    private CudaDevice open() {
        return new CudaDevice(fake, 0);
    }

    @Test
    void opensThePrimaryContextAndReadsProperties() {
        fake.attributes.put(16, 114); // MULTIPROCESSOR_COUNT
        fake.deviceName = "NVIDIA H100 PCIe";
        try (CudaDevice d = open()) {
            assertEquals("NVIDIA H100 PCIe", d.name());
            assertEquals(new DeviceProperties(114, 1024, 48 * 1024, 227 * 1024, 32, 90, 2048, 32, 65536, 65536,
                    228 * 1024, 1024), d.properties());
            assertEquals(Architecture.SM_90.properties(114), d.properties(), "an H100 reports the sm_90 table");
            assertEquals(1, fake.retained);
            assertEquals(1, fake.count("cuCtxSetCurrent"));
            assertEquals(1, fake.count("cuInit"));
        }
        assertEquals(1, fake.released, "close releases the primary context once");
    }

    @Test
    void constructorFailuresNameTheCallAndDoNotLeakTheContext() {
        fake.failures.put("cuCtxSetCurrent", CUresult.CUDA_ERROR_INVALID_CONTEXT);
        DeviceException e = assertThrows(DeviceException.class, this::open);
        assertTrue(e.getMessage().contains("cuCtxSetCurrent") && e.getMessage().contains("CUDA_ERROR_INVALID_CONTEXT"),
                e.getMessage());
        assertEquals(fake.retained, fake.released, "retain without release");

        FakeDriverApi noDevice = new FakeDriverApi();
        noDevice.failures.put("cuInit", CUresult.CUDA_ERROR_NO_DEVICE);
        e = assertThrows(DeviceException.class, () -> new CudaDevice(noDevice, 0));
        assertTrue(e.getMessage().contains("cuInit") && e.getMessage().contains("CUDA_ERROR_NO_DEVICE"), e.getMessage());

        e = assertThrows(DeviceException.class, () -> new CudaDevice(new FakeDriverApi(), 1));
        assertTrue(e.getMessage().contains("ordinal 1") && e.getMessage().contains("1 device"), e.getMessage());
    }

    @Test
    void copiesRoundTripWithOffsetsAndDeviceToHostIsSynchronous() {
        Random rnd = new Random(42);
        float[] src = new float[40];
        for (int i = 0; i < src.length; i++) src[i] = (float) rnd.nextGaussian() * 3 + 1;
        int[] isrc = rnd.ints(17, -1000, 1000).toArray();
        try (CudaDevice d = open(); DeviceBuffer b = d.allocate(1024); DeviceBuffer c = d.allocate(512)) {
            DeviceStream s = d.defaultStream();
            d.copyToDevice(src, 3, b.at(20), 30, s);
            d.copyToDevice(isrc, 0, b.at(800), 17, s);
            d.copyDeviceToDevice(b.at(20), c.at(4), 30 * 4, s);
            float[] out = new float[40];
            Arrays.fill(out, Float.NaN);
            long syncsBefore = fake.count("cuStreamSynchronize");
            d.copyToHost(c.at(4), out, 5, 30, s);
            assertEquals(syncsBefore + 1, fake.count("cuStreamSynchronize"), "copyToHost must synchronize its stream");
            for (int i = 0; i < 30; i++) assertEquals(src[3 + i], out[5 + i], "element " + i);
            assertTrue(Float.isNaN(out[4]) && Float.isNaN(out[35]), "nothing written outside [5, 35)");
            int[] iout = new int[17];
            d.copyToHost(b.at(800), iout, 0, 17, s);
            assertArrayEquals(isrc, iout);

            d.memset(c.at(8), (byte) 0, 8, s); // zeroes floats 1 and 2 of the copy at c+4
            d.copyToHost(c.at(4), out, 0, 4, s);
            assertEquals(src[3], out[0]);
            assertEquals(0f, out[1]);
            assertEquals(0f, out[2]);
            assertEquals(src[6], out[3]);
        }
    }

    @Test
    void badRangesAreRejectedBeforeAnyDriverCall() {
        try (CudaDevice d = open(); DeviceBuffer b = d.allocate(64)) {
            int before = fake.calls.size();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> d.copyToDevice(new float[20], 0, b.at(8), 15, d.defaultStream()));
            assertTrue(e.getMessage().contains("dst") && e.getMessage().contains("64-byte"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> d.copyToDevice(new float[10], 5, b.pointer(), 6, d.defaultStream()));
            assertTrue(e.getMessage().contains("src") && e.getMessage().contains("offset 5"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> d.allocate(0));
            assertEquals(before, fake.calls.size(), "no driver call for rejected arguments");
        }
    }

    @Test
    void buffersAreOwnedClosedOnceAndUnusableAfterClose() {
        try (CudaDevice d = open()) {
            DeviceBuffer b = d.allocate(256);
            assertEquals(1, d.liveBuffers());
            b.close();
            b.close();
            assertTrue(b.isClosed());
            assertEquals(1, fake.count("cuMemFree"), "closing twice frees once");
            assertEquals(0, d.liveBuffers());
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> d.copyToDevice(new float[4], 0, b.pointer(), 4, d.defaultStream()));
            assertTrue(e.getMessage().contains("closed"), e.getMessage());
            assertThrows(IllegalStateException.class, () -> CudaDevice.address(b.pointer()));
        }
    }

    @Test
    void pointersAndStreamsOfAnotherDeviceAreRejected() {
        try (CudaDevice d = open(); CudaDevice other = new CudaDevice(new FakeDriverApi(), 0);
             DeviceBuffer foreign = other.allocate(64)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> d.copyToDevice(new float[4], 0, foreign.pointer(), 4, d.defaultStream()));
            assertTrue(e.getMessage().contains("this CudaDevice"), e.getMessage());
            try (DeviceBuffer mine = d.allocate(64)) {
                assertThrows(IllegalArgumentException.class,
                        () -> d.copyToDevice(new float[4], 0, mine.pointer(), 4, other.defaultStream()));
            }
        }
    }

    @Test
    void driverErrorsBecomeDeviceExceptionsNamingErrorAndCall() {
        try (CudaDevice d = open()) {
            fake.failures.put("cuMemAlloc", CUresult.CUDA_ERROR_OUT_OF_MEMORY);
            DeviceException e = assertThrows(DeviceException.class, () -> d.allocate(1L << 40));
            assertEquals("cuMemAlloc(bytes=1099511627776) failed: CUDA_ERROR_OUT_OF_MEMORY", e.getMessage());
            assertEquals(0, d.liveBuffers(), "a failed allocation owns nothing");
        }
    }

    @Test
    void oldDriverPtxErrorsSayWhatIsNeeded() {
        try (CudaDevice d = open()) {
            for (int code : new int[] {CUresult.CUDA_ERROR_UNSUPPORTED_PTX_VERSION, CUresult.CUDA_ERROR_INVALID_PTX}) {
                fake.failures.put("cuModuleLoadData", code);
                DeviceException e = assertThrows(DeviceException.class, () -> d.loadModule("bn.ptx", PTX));
                assertTrue(e.getMessage().contains(CUresult.stringFor(code)), e.getMessage());
                assertTrue(e.getMessage().contains("bn.ptx") && e.getMessage().contains("CUDA 12.0"), e.getMessage());
            }
            fake.failures.put("cuModuleLoadData", CUresult.CUDA_ERROR_OUT_OF_MEMORY);
            DeviceException e = assertThrows(DeviceException.class, () -> d.loadModule("bn.ptx", PTX));
            assertFalse(e.getMessage().contains("CUDA 12.0"), "the PTX hint only for PTX errors: " + e.getMessage());
        }
    }

    @Test
    void launchMarshalsEveryArgumentKindWithPointerOffsets() {
        try (CudaDevice d = open(); DeviceBuffer x = d.allocate(4096); DeviceBuffer y = d.allocate(1024);
             DeviceModule m = d.loadModule("bn.ptx", PTX)) {
            Kernel k = m.kernel("bn_apply");
            assertSame(k, m.kernel("bn_apply"), "kernels are looked up once");
            assertEquals(1, fake.count("cuModuleGetFunction"));
            KernelArgs args = new KernelArgs().ptr(x.at(260)).ptr(y).i32(-7).i64(5_000_000_000L).f32(1e-5f).f64(0.25);
            d.launch(k, Dim3.of(264, 2), Dim3.of(256), 1024, d.defaultStream(), args);

            FakeDriverApi.Launch l = fake.launches.get(0);
            assertEquals("bn_apply", l.kernel());
            assertEquals(Dim3.of(264, 2), l.grid());
            assertEquals(Dim3.of(256), l.block());
            assertEquals(1024, l.sharedBytes());
            List<LaunchParam> p = l.params();
            assertEquals(6, p.size());
            CUdeviceptr xBase = d.liveForTest().get(x);
            CUdeviceptr yBase = d.liveForTest().get(y);
            assertSame(xBase, p.get(0).base());
            assertEquals(260, p.get(0).offset());
            assertSame(yBase, p.get(1).base());
            assertEquals(0, p.get(1).offset());
            assertEquals(new LaunchParam(KernelArgs.Kind.I32, null, 0, -7), p.get(2));
            assertEquals(new LaunchParam(KernelArgs.Kind.I64, null, 0, 5_000_000_000L), p.get(3));
            assertEquals(new LaunchParam(KernelArgs.Kind.F32, null, 0, 1e-5f), p.get(4));
            assertEquals(new LaunchParam(KernelArgs.Kind.F64, null, 0, 0.25), p.get(5));
            assertTrue(fake.funcAttributes.isEmpty(), "1 KiB of shared memory needs no opt-in");
            assertNotNull(LaunchParam.toKernelParams(p), "the host parameter block builds without the native library");
        }
    }

    @Test
    void argumentsNotMatchingThePtxParameterListAreRejected() {
        try (CudaDevice d = open(); DeviceBuffer x = d.allocate(64); DeviceModule m = d.loadModule("bn.ptx", PTX)) {
            Kernel k = m.kernel("bn_apply");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> d.launch(k, Dim3.of(1),
                    Dim3.of(32), 0, d.defaultStream(), new KernelArgs().ptr(x).ptr(x).i32(1)));
            assertTrue(e.getMessage().contains("takes 6 parameters") && e.getMessage().contains("got 3"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> d.launch(k, Dim3.of(1), Dim3.of(32), 0,
                    d.defaultStream(), new KernelArgs().ptr(x).ptr(x).i64(1).ptr(x).f32(1).f64(1)));
            assertTrue(e.getMessage().contains("parameter 2 (bn_apply_param_2) is 4 bytes"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> d.launch(m.kernel("bn_small"), Dim3.of(1),
                    Dim3.of(2048), 0, d.defaultStream(), new KernelArgs().ptr(x)));
            assertTrue(e.getMessage().contains("2048 threads"), e.getMessage());
            assertEquals(0, fake.count("cuLaunchKernel"));
        }
    }

    @Test
    void dynamicSharedMemoryAbove48KiBOptsTheFunctionInOnce() {
        try (CudaDevice d = open(); DeviceBuffer x = d.allocate(64); DeviceModule m = d.loadModule("bn.ptx", PTX)) {
            Kernel k = m.kernel("bn_small");
            KernelArgs a = new KernelArgs().ptr(x);
            d.launch(k, Dim3.of(1), Dim3.of(32), 48 * 1024, d.defaultStream(), a);
            assertTrue(fake.funcAttributes.isEmpty(), "exactly 48 KiB needs no opt-in");
            d.launch(k, Dim3.of(1), Dim3.of(32), 64 * 1024, d.defaultStream(), a);
            d.launch(k, Dim3.of(1), Dim3.of(32), 60 * 1024, d.defaultStream(), a);
            assertEquals(1, fake.funcAttributes.size(), "opted in once for 64 KiB, which covers 60 KiB");
            assertArrayEquals(new int[] {CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 64 * 1024},
                    fake.funcAttributes.get(0));
            d.launch(k, Dim3.of(1), Dim3.of(32), 100 * 1024, d.defaultStream(), a);
            assertEquals(100 * 1024, fake.funcAttributes.get(1)[1]);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> d.launch(k, Dim3.of(1), Dim3.of(32), 228 * 1024, d.defaultStream(), a));
            assertTrue(e.getMessage().contains("[0, 232448]"), e.getMessage());
            assertEquals(4, fake.count("cuLaunchKernel"));
        }
    }

    @Test
    void launchFailuresNameKernelGridAndBlock() {
        try (CudaDevice d = open(); DeviceBuffer x = d.allocate(64); DeviceModule m = d.loadModule("bn.ptx", PTX)) {
            fake.failures.put("cuLaunchKernel", CUresult.CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES);
            DeviceException e = assertThrows(DeviceException.class, () -> d.launch(m.kernel("bn_small"),
                    Dim3.of(7, 3), Dim3.of(512), 0, d.defaultStream(), new KernelArgs().ptr(x)));
            assertEquals("cuLaunchKernel(kernel=bn_small, grid=(7,3,1), block=(512,1,1), sharedBytes=0) failed: "
                    + "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", e.getMessage());
            fake.failures.put("cuModuleGetFunction", CUresult.CUDA_ERROR_NOT_FOUND);
            e = assertThrows(DeviceException.class, () -> m.kernel("missing"));
            assertTrue(e.getMessage().contains("kernel=missing") && e.getMessage().contains("CUDA_ERROR_NOT_FOUND"));
        }
    }

    @Test
    void streamsAreCreatedAndDestroyedOnceAndTheDefaultStreamIsNeverDestroyed() {
        try (CudaDevice d = open()) {
            DeviceStream s = d.createStream();
            s.synchronize();
            s.close();
            s.close();
            assertEquals(1, fake.streamsDestroyed.size());
            assertSame(fake.streamsCreated.get(0), fake.streamsDestroyed.get(0));
            assertThrows(IllegalStateException.class, s::synchronize);
            d.defaultStream().close();
            d.defaultStream().synchronize();
            assertEquals(1, fake.streamsDestroyed.size());
        }
    }

    @Test
    void eventsAreCreatedWithoutTimingRecordedWaitedOnAndDestroyedOnce() {
        try (CudaDevice d = open()) {
            DeviceStream a = d.createStream();
            DeviceStream b = d.createStream();
            DeviceEvent e = d.createEvent();
            e.record(a);
            b.waitFor(e);
            e.synchronize();
            e.record(d.defaultStream());
            e.close();
            e.close();
            List<String> names = fake.eventCalls.stream().map(FakeDriverApi.EventCall::name).toList();
            assertEquals(List.of("cuEventCreate", "cuEventRecord", "cuStreamWaitEvent", "cuEventSynchronize",
                    "cuEventRecord", "cuEventDestroy"), names);
            FakeDriverApi.EventCall create = fake.eventCalls.get(0);
            assertEquals(CUevent_flags.CU_EVENT_DISABLE_TIMING, create.flags(), "ordering only: no timing");
            for (FakeDriverApi.EventCall c : fake.eventCalls) assertSame(create.event(), c.event(), c.name());
            assertSame(CudaDevice.streamHandle(a), fake.eventCalls.get(1).stream(), "recorded on a");
            assertSame(CudaDevice.streamHandle(b), fake.eventCalls.get(2).stream(), "b waits");
            assertEquals(0, fake.eventCalls.get(2).flags());
            assertSame(CudaDevice.streamHandle(d.defaultStream()), fake.eventCalls.get(4).stream());
            assertThrows(IllegalStateException.class, e::synchronize, "closed");
            assertThrows(IllegalStateException.class, () -> b.waitFor(e), "closed");
            assertThrows(IllegalArgumentException.class, () -> b.waitFor(null));
            a.close();
            assertThrows(IllegalStateException.class, () -> d.createEvent().record(a), "a closed stream");
            fake.failures.put("cuStreamWaitEvent", CUresult.CUDA_ERROR_INVALID_HANDLE);
            DeviceEvent f = d.createEvent();
            DeviceException x = assertThrows(DeviceException.class, () -> b.waitFor(f));
            assertEquals("cuStreamWaitEvent failed: CUDA_ERROR_INVALID_HANDLE", x.getMessage());
            b.close();
        }
    }

    @Test
    void closingTheDeviceFreesLeaksReportsThemAndForbidsFurtherUse() {
        CudaDevice d = open();
        DeviceBuffer kept = d.allocate(100);
        DeviceBuffer closed = d.allocate(50);
        closed.close();
        DeviceException e = assertThrows(DeviceException.class, d::close);
        assertTrue(e.getMessage().contains("1 buffer(s) still open (100 bytes)"), e.getMessage());
        assertTrue(fake.memory.isEmpty(), "every allocation freed");
        assertTrue(kept.isClosed());
        kept.close(); // harmless
        assertEquals(2, fake.count("cuMemFree"));
        assertEquals(1, fake.released);
        d.close(); // idempotent
        assertEquals(1, fake.released);
        assertThrows(IllegalStateException.class, () -> d.allocate(4));
        assertThrows(IllegalStateException.class, d::synchronize);
    }

    @Test
    void addressAppliesTheByteOffset() {
        try (CudaDevice d = open(); DeviceBuffer b = d.allocate(64)) {
            assertEquals(d.liveForTest().get(b).withByteOffset(12).toString(), CudaDevice.address(b.at(12)).toString());
            assertThrows(IllegalArgumentException.class, () -> CudaDevice.address(null));
        }
    }
}
