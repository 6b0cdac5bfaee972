package io.github.batchnorm4j.gpu;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Random;

import static io.github.batchnorm4j.testing.Messages.assertMentions;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The promises of the {@link Device} seam, one suite for every implementation: the PTX emulator
 * ({@code ptx.EmulatedDeviceContractTest}), the CUDA device over the fake driver
 * ({@code cuda.FakeDriverDeviceContractTest}) and, on a GPU, over the real one ({@code cuda.CudaDeviceContractGpuTest}).
 * What one implementation alone promises (the emulator's metrics and checks, the driver calls CudaDevice makes) stays
 * in that implementation's own test.
 *
 * <p>Kernels run in the subclasses that can run them ({@link #runsKernels()}): the fake driver records launches
 * without executing them, so there those tests are skipped, with that reason.
 */
public abstract class DeviceContractTest {

    /** A new device, owned by the test. */
    protected abstract Device open();

    /** Whether {@link Device#launch} executes kernels (false for a driver that only records launches). */
    protected boolean runsKernels() {
        return true;
    }

    /** The two test kernels, axpb(p, a, n) and shared_probe(out, words): see the file's header. */
    protected static String smokePtx() {
        try (InputStream in = DeviceContractTest.class.getResourceAsStream("device_smoke.ptx")) {
            return new String(in.readAllBytes(), StandardCharsets.US_ASCII);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Test
    void propertiesDescribeAUsableDevice() {
        try (Device d = open()) {
            assertFalse(d.name().isBlank());
            DeviceProperties p = d.properties();
            assertTrue(p.multiprocessorCount() >= 1, p::toString);
            assertTrue(p.maxThreadsPerBlock() >= 1024, p::toString);
            assertEquals(48 * 1024, p.maxSharedMemoryPerBlock(), p::toString);
            assertTrue(p.maxSharedMemoryPerBlockOptin() >= 48 * 1024, p::toString);
        }
    }

    @Test
    void allocationsAreAlignedTo256BytesAndSizesAreChecked() {
        try (Device d = open(); DeviceBuffer a = d.allocate(1); DeviceBuffer b = d.allocate(300)) {
            assertTrue(a.pointer().isAligned(256) && b.pointer().isAligned(256), "as cuMemAlloc aligns");
            assertTrue(b.at(4).isAligned(4) && !b.at(4).isAligned(8));
            assertThrows(IllegalArgumentException.class, () -> d.allocate(0));
            assertThrows(IllegalArgumentException.class, () -> d.allocate(-4));
        }
    }

    @Test
    void copiesRoundTripWithOffsetsOnAnyStream() {
        Random rnd = new Random(42);
        float[] src = new float[40];
        for (int i = 0; i < src.length; i++) src[i] = (float) rnd.nextGaussian() * 3 + 1;
        int[] isrc = rnd.ints(17, -1000, 1000).toArray();
        try (Device d = open(); DeviceBuffer b = d.allocate(1024); DeviceBuffer c = d.allocate(512);
             DeviceStream own = d.createStream()) {
            for (DeviceStream s : new DeviceStream[]{d.defaultStream(), own}) {
                d.copyToDevice(src, 3, b.at(20), 30, s);
                d.copyToDevice(isrc, 0, b.at(800), 17, s);
                d.copyDeviceToDevice(b.at(20), c.at(4), 30 * 4, s);
                float[] out = new float[40];
                Arrays.fill(out, Float.NaN);
                d.copyToHost(c.at(4), out, 5, 30, s);   // complete when it returns
                for (int i = 0; i < 30; i++) assertEquals(src[3 + i], out[5 + i], "element " + i);
                assertTrue(Float.isNaN(out[4]) && Float.isNaN(out[35]), "nothing written outside [5, 35)");
                int[] iout = new int[17];
                d.copyToHost(b.at(800), iout, 0, 17, s);
                assertArrayEquals(isrc, iout);

                d.memset(c.at(8), (byte) 0, 8, s); // zeroes floats 1 and 2 of the copy at c + 4
                d.copyToHost(c.at(4), out, 0, 4, s);
                assertArrayEquals(new float[]{src[3], 0f, 0f, src[6]}, Arrays.copyOf(out, 4));
            }
            d.synchronize();
        }
    }

    /** float16/bfloat16 tensors: odd and even counts, 2-byte (not 4-byte) aligned addresses, nothing written outside. */
    @Test
    void sixteenBitCopiesRoundTripAtAnyEvenOffset() {
        Random rnd = new Random(7);
        short[] src = new short[41];
        for (int i = 0; i < src.length; i++) src[i] = (short) rnd.nextInt();
        try (Device d = open(); DeviceBuffer b = d.allocate(256)) {
            for (int[] c : new int[][]{{0, 0, 41}, {3, 2, 17}, {1, 6, 8}, {0, 130, 1}, {5, 0, 0}}) {
                int srcOffset = c[0], byteOffset = c[1], count = c[2];
                d.memset(b.pointer(), (byte) 0x5A, 256, d.defaultStream());
                d.copyToDevice(src, srcOffset, b.at(byteOffset), count, d.defaultStream());
                short[] out = new short[count + 2];
                Arrays.fill(out, (short) 0x7E00);
                d.copyToHost(b.at(byteOffset), out, 1, count, d.defaultStream());
                for (int i = 0; i < count; i++) assertEquals(src[srcOffset + i], out[1 + i], "element " + i);
                assertEquals((short) 0x7E00, out[0], "nothing written before dstOffset");
                assertEquals((short) 0x7E00, out[count + 1], "nothing written after the count");
                if (count > 0) {
                    short[] after = new short[1];
                    d.copyToHost(b.at(byteOffset + 2L * count), after, 0, 1, d.defaultStream());
                    assertEquals((short) 0x5A5A, after[0], "the device element after the copy is untouched");
                }
            }
            assertThrows(IllegalArgumentException.class,
                    () -> d.copyToDevice(src, 0, b.at(200), 40, d.defaultStream()));
            assertThrows(IllegalArgumentException.class,
                    () -> d.copyToHost(b.pointer(), new short[3], 1, 3, d.defaultStream()));
        }
    }

    @Test
    void badRangesAreRejectedNamingTheArgument() {
        try (Device d = open(); DeviceBuffer b = d.allocate(64)) {
            float[] data = new float[20];
            Arrays.fill(data, 1.5f);
            assertMentions(assertThrows(IllegalArgumentException.class,
                    () -> d.copyToDevice(data, 0, b.at(8), 15, d.defaultStream())), "dst: 60 bytes at offset 8");
            assertMentions(assertThrows(IllegalArgumentException.class,
                    () -> d.copyToDevice(data, 15, b.pointer(), 6, d.defaultStream())), "src: 6 elements from offset 15");
            assertMentions(assertThrows(IllegalArgumentException.class,
                    () -> d.copyToHost(b.pointer(), new float[4], 2, 3, d.defaultStream())), "dst: 3 elements");
            assertThrows(IllegalArgumentException.class,
                    () -> d.copyDeviceToDevice(b.at(32), b.pointer(), 40, d.defaultStream()));
            assertThrows(IllegalArgumentException.class, () -> d.memset(b.at(60), (byte) 0, 8, d.defaultStream()));
            assertThrows(IllegalArgumentException.class,
                    () -> d.copyToDevice(data, 0, b.pointer(), -1, d.defaultStream()));
        }
    }

    @Test
    void buffersCloseOnceAndAreUnusableAfterClose() {
        try (Device d = open()) {
            DeviceBuffer b = d.allocate(256);
            b.close();
            b.close(); // harmless
            assertTrue(b.isClosed());
            assertMentions(assertThrows(IllegalStateException.class,
                    () -> d.copyToDevice(new float[4], 0, b.pointer(), 4, d.defaultStream())), "closed");
            assertThrows(IllegalStateException.class, () -> d.memset(b.pointer(), (byte) 1, 4, d.defaultStream()));
        }
    }

    @Test
    void pointersAndStreamsOfAnotherDeviceAreRejected() {
        try (Device d = open(); Device other = open(); DeviceBuffer foreign = other.allocate(64);
             DeviceBuffer mine = d.allocate(64)) {
            assertThrows(IllegalArgumentException.class,
                    () -> d.copyToDevice(new float[4], 0, foreign.pointer(), 4, d.defaultStream()));
            assertThrows(IllegalArgumentException.class,
                    () -> d.copyDeviceToDevice(mine.pointer(), foreign.pointer(), 16, d.defaultStream()));
            DeviceStream otherStream = other.defaultStream();
            assertThrows(IllegalArgumentException.class,
                    () -> d.copyToDevice(new float[4], 0, mine.pointer(), 4, otherStream));
        }
    }

    @Test
    void closingTheDeviceFreesLeakedBuffersReportsThemAndForbidsFurtherUse() {
        Device d = open();
        DeviceBuffer kept = d.allocate(100);
        d.allocate(50).close();
        DeviceException e = assertThrows(DeviceException.class, d::close, "a buffer left open is reported");
        assertMentions(e.getMessage(), "100 bytes");
        assertTrue(kept.isClosed(), "close frees what was left open");
        kept.close(); // harmless
        d.close(); // idempotent
        assertThrows(IllegalStateException.class, () -> d.allocate(4));
        assertThrows(IllegalStateException.class, d::synchronize);
    }

    @Test
    void createdStreamsCloseOnceAndTheDefaultStreamOutlivesClose() {
        try (Device d = open(); DeviceBuffer b = d.allocate(16)) {
            DeviceStream s = d.createStream();
            s.synchronize();
            s.close();
            s.close(); // harmless
            assertThrows(IllegalStateException.class, s::synchronize);
            d.defaultStream().close(); // never closed by callers: a no-op
            d.defaultStream().synchronize();
            d.copyToDevice(new float[]{1, 2, 3, 4}, 0, b.pointer(), 4, d.defaultStream());
        }
    }

    @Test
    void anEventOrdersWorkOfOneStreamBeforeWorkOfAnother() {
        Random rnd = new Random(8);
        float[] src = new float[64];
        for (int i = 0; i < src.length; i++) src[i] = (float) rnd.nextGaussian();
        try (Device d = open(); DeviceBuffer b = d.allocate(256); DeviceStream a = d.createStream();
             DeviceStream c = d.createStream(); DeviceEvent e = d.createEvent()) {
            c.waitFor(e);   // never recorded: nothing to wait for
            e.synchronize();
            d.copyToDevice(src, 0, b.pointer(), 64, a);
            e.record(a);
            c.waitFor(e);
            float[] out = new float[64];
            d.copyToHost(b.pointer(), out, 0, 64, c);
            assertArrayEquals(src, out, "c waited for a's copy");
            e.record(d.defaultStream());
            e.synchronize();
            d.synchronize();
        }
    }

    @Test
    void eventsCloseOnceAndEventsOfAnotherDeviceAreRejected() {
        try (Device d = open(); Device other = open(); DeviceStream a = d.createStream()) {
            DeviceEvent foreign = other.createEvent();
            assertThrows(IllegalArgumentException.class, () -> a.waitFor(foreign));
            assertThrows(IllegalArgumentException.class, () -> a.waitFor(null));
            foreign.close();
            DeviceEvent e = d.createEvent();
            e.record(a);
            e.close();
            e.close(); // harmless
            assertThrows(IllegalStateException.class, () -> e.record(a));
            assertThrows(IllegalStateException.class, () -> a.waitFor(e));
            assertThrows(IllegalStateException.class, e::synchronize);
            a.close();
            assertTrue(a.isClosed());
            assertFalse(d.defaultStream().isClosed());
            try (DeviceEvent f = d.createEvent()) {
                assertThrows(IllegalStateException.class, () -> f.record(a), "a closed stream");
            }
        }
    }

    @Test
    void launchesAreValidatedBeforeAnythingRuns() {
        try (Device d = open(); DeviceBuffer x = d.allocate(64);
             DeviceModule m = d.loadModule("device_smoke.ptx", smokePtx())) {
            Kernel axpb = m.kernel("axpb");
            assertEquals("axpb", axpb.name());
            assertThrows(DeviceException.class, () -> m.kernel("no_such_kernel"));
            // IllegalArgumentException on CUDA, DeviceException on the emulator: both before any launch.
            assertMentions(assertThrows(RuntimeException.class, () -> d.launch(axpb, Dim3.of(1), Dim3.of(32), 0,
                    d.defaultStream(), new KernelArgs().ptr(x))), "takes 3 parameters");
            assertMentions(assertThrows(RuntimeException.class, () -> d.launch(axpb, Dim3.of(1), Dim3.of(2048), 0,
                    d.defaultStream(), new KernelArgs().ptr(x).f32(1).u32(1))), "2048 threads");
            int tooMuch = d.properties().maxSharedMemoryPerBlockOptin() + 1;
            assertThrows(RuntimeException.class, () -> d.launch(axpb, Dim3.of(1), Dim3.of(32), tooMuch,
                    d.defaultStream(), new KernelArgs().ptr(x).f32(1).u32(1)));
        }
    }

    @Test
    void kernelsRunWithPointerOffsetsAndScalarArguments() {
        assumeTrue(runsKernels(), "this device records launches without running them");
        Random r = new Random(3);
        float[] host = new float[1000];
        for (int i = 0; i < host.length; i++) host[i] = (float) r.nextGaussian();
        try (Device d = open(); DeviceBuffer b = d.allocate(8192); DeviceStream s = d.createStream();
             DeviceModule m = d.loadModule("device_smoke.ptx", smokePtx())) {
            d.copyToDevice(host, 10, b.at(260), 900, s);
            d.launch(m.kernel("axpb"), Dim3.of(4), Dim3.of(256), 0, s,
                    new KernelArgs().ptr(b.at(260)).f32(2.5f).u32(900));
            float[] out = new float[1000];
            Arrays.fill(out, Float.NaN);
            d.copyToHost(b.at(260), out, 50, 900, s);
            for (int i = 0; i < 900; i++) assertEquals(Math.fma(host[10 + i], 2.5f, 1f), out[50 + i], "element " + i);
            assertTrue(Float.isNaN(out[49]) && Float.isNaN(out[950]));
        }
    }

    @Test
    void dynamicSharedMemoryAboveTheDefaultLimitWorksAfterTheOptIn() {
        assumeTrue(runsKernels(), "this device records launches without running them");
        try (Device d = open()) {
            int bytes = Math.min(96 * 1024, d.properties().maxSharedMemoryPerBlockOptin());
            assumeTrue(bytes > 48 * 1024, "this device has no opt-in beyond 48 KiB");
            int words = bytes / 4;
            try (DeviceBuffer out = d.allocate(64 * 4);
                 DeviceModule m = d.loadModule("device_smoke.ptx", smokePtx())) {
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
}
