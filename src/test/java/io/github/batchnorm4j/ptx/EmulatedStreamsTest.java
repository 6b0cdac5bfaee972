package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DeviceEvent;
import io.github.batchnorm4j.gpu.DeviceException;
import io.github.batchnorm4j.gpu.DeviceModule;
import io.github.batchnorm4j.gpu.DeviceStream;
import io.github.batchnorm4j.gpu.Dim3;
import io.github.batchnorm4j.gpu.KernelArgs;
import org.junit.jupiter.api.Test;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static io.github.batchnorm4j.testing.Messages.assertMentions;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The emulator's streams ({@link StreamScheduler}): independent queues run in a seeded interleaving, ordered by events,
 * host synchronization and the default stream; a buffer region touched by two streams with nothing ordering the two
 * (a write and any other access) is reported naming both streams, both operations and the region; a failed operation
 * makes its stream (and streams waiting on it) fail.
 */
class EmulatedStreamsTest {
    /** add1(src, dst, n): dst[i] = src[i] + 1 for i < n (one thread per element). */
    private static final String PTX = """
            .version 8.0
            .target sm_75
            .address_size 64
            .visible .entry add1(
            	.param .u64 p_src,
            	.param .u64 p_dst,
            	.param .u32 p_n
            )
            {
            	.reg .b64 %rd<6>;
            	.reg .b32 %r<6>;
            	.reg .f32 %f<3>;
            	.reg .pred %p<2>;
            	ld.param.u64 %rd1, [p_src];
            	ld.param.u64 %rd2, [p_dst];
            	ld.param.u32 %r1, [p_n];
            	mov.u32 %r2, %ctaid.x;
            	mov.u32 %r3, %ntid.x;
            	mov.u32 %r4, %tid.x;
            	mad.lo.s32 %r5, %r2, %r3, %r4;
            	setp.ge.u32 %p1, %r5, %r1;
            	@%p1 bra $L_end;
            	mul.wide.u32 %rd3, %r5, 4;
            	add.s64 %rd4, %rd1, %rd3;
            	add.s64 %rd5, %rd2, %rd3;
            	ld.global.f32 %f1, [%rd4];
            	add.f32 %f2, %f1, 0f3F800000;
            	st.global.f32 [%rd5], %f2;
            $L_end:
            	ret;
            }
            """;
    private static final int N = 100;

    private static void add1(EmulatedDevice d, DeviceModule m, DeviceBuffer src, DeviceBuffer dst, DeviceStream s) {
        d.launch(m.kernel("add1"), Dim3.of(2), Dim3.of(64), 0, s, new KernelArgs().ptr(src).ptr(dst).u32(N));
    }

    private static float[] ramp(float start) {
        float[] x = new float[N];
        for (int i = 0; i < N; i++) x[i] = start + 0.5f * i;
        return x;
    }

    private static float[] read(EmulatedDevice d, DeviceBuffer b, DeviceStream s) {
        float[] out = new float[N];
        d.copyToHost(b.pointer(), out, 0, N, s);
        return out;
    }

    /** The kernel order of a run: stream a adds into a1..a4 in a chain, stream b into b1..b4, unsynchronized. */
    private static List<String> chains(long seed) {
        try (EmulatedDevice d = new EmulatedDevice(EmulatorOptions.defaults().withBlockOrderSeed(seed));
             DeviceModule m = d.loadModule("streams.ptx", PTX); DeviceStream a = d.createStream();
             DeviceStream b = d.createStream(); DeviceBuffer x = d.allocate(4L * N); DeviceBuffer y = d.allocate(4L * N);
             DeviceBuffer x2 = d.allocate(4L * N); DeviceBuffer y2 = d.allocate(4L * N)) {
            d.copyToDevice(ramp(0), 0, x.pointer(), N, a);
            d.copyToDevice(ramp(100), 0, y.pointer(), N, b);
            for (int k = 0; k < 4; k++) {
                add1(d, m, k % 2 == 0 ? x : x2, k % 2 == 0 ? x2 : x, a);
                add1(d, m, k % 2 == 0 ? y : y2, k % 2 == 0 ? y2 : y, b);
            }
            d.synchronize();
            float[] ex = ramp(4), ey = ramp(104);
            assertArrayEquals(ex, read(d, x, a), "stream a's chain, in its order");
            assertArrayEquals(ey, read(d, y, b), "stream b's chain, in its order");
            return d.launchHistory().stream().map(r -> r.stream()).toList();
        }
    }

    @Test
    void streamsAreQueuesRunInASeededInterleavingEachInItsOwnOrder() {
        Set<List<String>> seen = new HashSet<>();
        for (long seed = 1; seed <= 6; seed++) {
            List<String> order = chains(seed);
            assertEquals(order, chains(seed), "the same seed gives the same interleaving");
            assertEquals(8, order.size());
            seen.add(order);
        }
        assertTrue(seen.size() >= 3, "six seeds gave only " + seen.size() + " interleavings: " + seen);
    }

    /** Stream a writes dst with a kernel; stream b then copies dst to the host, ordered by {@code order}. */
    private static float[] producerConsumer(EmulatorOptions opt, String order) {
        try (EmulatedDevice d = new EmulatedDevice(opt); DeviceModule m = d.loadModule("streams.ptx", PTX);
             DeviceStream a = d.createStream(); DeviceStream b = d.createStream(); DeviceEvent e = d.createEvent();
             DeviceBuffer src = d.allocate(4L * N); DeviceBuffer dst = d.allocate(4L * N)) {
            d.memset(dst.pointer(), (byte) 0, 4L * N, d.defaultStream());
            d.copyToDevice(ramp(1), 0, src.pointer(), N, a);
            add1(d, m, src, dst, a);
            switch (order) {
                case "event" -> {
                    e.record(a);
                    b.waitFor(e);
                }
                case "host" -> a.synchronize();
                case "event-sync" -> {
                    e.record(a);
                    e.synchronize();
                }
                case "default" -> d.memset(src.pointer(), (byte) 0, 4, d.defaultStream());   // unrelated bytes
                default -> {
                }
            }
            return read(d, dst, b);
        }
    }

    @Test
    void eventsHostSynchronizationAndTheDefaultStreamOrderTwoStreams() {
        for (String order : List.of("event", "host", "event-sync", "default")) {
            for (long seed = 1; seed <= 8; seed++) {
                float[] got = producerConsumer(EmulatorOptions.defaults().withBlockOrderSeed(seed), order);
                assertArrayEquals(ramp(2), got, order + ", seed " + seed);
            }
        }
    }

    @Test
    void aRegionTouchedByTwoUnorderedStreamsIsReportedNamingStreamsOperationsAndRegion() {
        for (long seed = 1; seed <= 8; seed++) {
            long s = seed;
            DeviceException e = assertThrows(DeviceException.class,
                    () -> producerConsumer(EmulatorOptions.defaults().withBlockOrderSeed(s), "none"), "seed " + seed);
            assertMentions(e.getMessage(), "streams race on buffer #2 (400 bytes) bytes [0, 400)",
                    "launch of add1 (grid (2,1,1), block (64,1,1)) on stream #1", "copyToHost of 100 floats on stream #2",
                    "with nothing ordering the two");
        }
        // the check is what reports it: off, the program runs (and may read stale or fresh values)
        assertDoesNotThrow(() -> producerConsumer(EmulatorOptions.defaults().withOrderCheck(false), "none"));
    }

    @Test
    void readsFromTwoStreamsDoNotRace() {
        try (EmulatedDevice d = new EmulatedDevice(); DeviceModule m = d.loadModule("streams.ptx", PTX);
             DeviceStream a = d.createStream(); DeviceStream b = d.createStream();
             DeviceBuffer src = d.allocate(4L * N); DeviceBuffer ya = d.allocate(4L * N);
             DeviceBuffer yb = d.allocate(4L * N)) {
            d.copyToDevice(ramp(3), 0, src.pointer(), N, d.defaultStream());
            add1(d, m, src, ya, a);
            add1(d, m, src, yb, b);
            assertArrayEquals(ramp(4), read(d, ya, a));
            assertArrayEquals(ramp(4), read(d, yb, b));
        }
    }

    @Test
    void aCopyStagesItsHostArrayWhenQueued() {
        try (EmulatedDevice d = new EmulatedDevice(); DeviceStream a = d.createStream();
             DeviceBuffer b = d.allocate(4L * N)) {
            float[] host = ramp(7);
            d.copyToDevice(host, 0, b.pointer(), N, a);
            host[0] = -1;   // after the call returned: the copy must not see it
            assertArrayEquals(ramp(7), read(d, b, a));
        }
    }

    @Test
    void aFailedOperationFailsItsStreamAndTheStreamsWaitingForIt() {
        try (EmulatedDevice d = new EmulatedDevice(); DeviceModule m = d.loadModule("streams.ptx", PTX);
             DeviceStream a = d.createStream(); DeviceStream b = d.createStream(); DeviceStream c = d.createStream();
             DeviceEvent e = d.createEvent(); DeviceBuffer small = d.allocate(16); DeviceBuffer big = d.allocate(4L * N)) {
            d.copyToDevice(ramp(0), 0, big.pointer(), N, d.defaultStream());
            add1(d, m, big, small, a);   // writes 100 floats into 16 bytes: out of bounds when it runs
            e.record(a);
            b.waitFor(e);
            d.copyToDevice(ramp(1), 0, big.pointer(), 4, c);   // unrelated work on c
            DeviceException first = assertThrows(DeviceException.class, a::synchronize);
            assertMentions(first.getMessage(), "launch of add1 (grid (2,1,1), block (64,1,1)) on stream #1 failed",
                    "out-of-bounds global write");
            DeviceException later = assertThrows(DeviceException.class, () -> add1(d, m, big, big, a));
            assertMentions(later.getMessage(), "stream #1 failed earlier and cannot be used", "out-of-bounds");
            DeviceException waiting = assertThrows(DeviceException.class, b::synchronize);
            assertMentions(waiting.getMessage(), "stream #2 waits for an event recorded after a failed operation of"
                    + " stream #1");
            assertThrows(DeviceException.class, e::synchronize);
            c.synchronize();   // unaffected
            assertEquals(1f, read(d, big, c)[0]);
            d.synchronize();   // everything failed has been reported
        }
    }

    @Test
    void eventsAreCheckedAndAWaitOnANeverRecordedEventIsANoOp() {
        try (EmulatedDevice d = new EmulatedDevice(); EmulatedDevice other = new EmulatedDevice();
             DeviceStream a = d.createStream(); DeviceEvent e = d.createEvent(); DeviceEvent foreign = other.createEvent()) {
            a.waitFor(e);
            e.synchronize();
            assertThrows(IllegalArgumentException.class, () -> a.waitFor(foreign));
            assertThrows(IllegalArgumentException.class, () -> a.waitFor(null));
            e.close();
            e.close();
            assertThrows(IllegalStateException.class, () -> e.record(a));
            assertThrows(IllegalStateException.class, () -> a.waitFor(e));
            a.close();
            assertTrue(a.isClosed());
            assertThrows(IllegalStateException.class, () -> d.createEvent().record(a));
        }
    }
}
