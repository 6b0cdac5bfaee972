package io.github.batchnorm4j.distributed;

import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.gpu.Device;
import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.gpu.DeviceResidentBatchNorm;
import io.github.batchnorm4j.gpu.DeviceStream;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.testing.TestData;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link DeviceResidentSyncBatchNorm} on K = 2, 3, 4 emulated devices (one thread each, the in-process collective's
 * device all-gather): the kernels write each rank's record, merge the gathered records in rank order and normalize;
 * the results are single-device batch norm over the whole batch within today's tolerances, shared results are
 * bitwise the same on every rank, and a second run writes the same bits. The shapes reach the vectorized and the
 * scalar kernels, both layouts, and slices of a single value per channel.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class DeviceResidentSyncBatchNormTest {
    /** One emulated device and batch norm per rank, for the whole class (loading the PTX is most of a small case). */
    private final EmulatedDevice[] devices = new EmulatedDevice[4];
    private final DeviceResidentBatchNorm[] norms = new DeviceResidentBatchNorm[4];

    @BeforeAll
    void openDevices() {
        for (int r = 0; r < 4; r++) {
            devices[r] = new EmulatedDevice();
            norms[r] = new DeviceResidentBatchNorm(devices[r]);
        }
    }

    @AfterAll
    void closeDevices() {
        for (int r = 0; r < 4; r++) {
            norms[r].close();
            devices[r].close();
        }
    }

    Stream<SyncCase> cases() {
        List<SyncCase> out = new ArrayList<>();
        out.addAll(SyncCase.matrix(Layout.CHANNELS_FIRST, 3, 4));     // inner = 4: the float4 kernels
        out.addAll(SyncCase.matrix(Layout.CHANNELS_LAST, 5, 3));      // C = 5: scalar channels-last
        out.addAll(SyncCase.matrix(Layout.CHANNELS_LAST, 8));         // [N, 8]: float4 rows, one-sample slices
        return out.stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void matchesSingleDeviceBatchNormAndIsDeterministic(SyncCase c) {
        List<SyncCase.Output> first = run(c, false);
        c.assertMatchesSingleDevice(first);
        c.assertSameBits(first, run(c, true));
    }

    List<SyncCase.Output> run(SyncCase c, boolean reversed) {
        int k = c.ranks();
        List<Collective> group = InProcessCollective.group(k);
        List<SyncCase.Output> out = new ArrayList<>(Ranks.run(k, q -> {
            int r = reversed ? k - 1 - q : q;
            EmulatedDevice d = devices[r];
            try (DeviceResidentSyncBatchNorm sync = new DeviceResidentSyncBatchNorm(norms[r], group.get(r));
                 Tensors t = new Tensors(d, c, r)) {
                DeviceStream s = d.defaultStream();
                sync.forwardTraining(t.shape, t.x, t.gamma, t.beta, SyncCase.EPS, t.rm, t.rv, SyncCase.MOMENTUM, t.y,
                        t.sm, t.si, s);
                sync.backwardTraining(t.shape, t.x, t.dy, t.gamma, t.sm, t.si, t.dx, t.dg, t.db, s);
                return t.output();
            }
        }));
        if (reversed) Collections.reverse(out);
        return out;
    }

    @Test
    void aWholeBatchOfOneValueIsRefusedBeforeAnythingIsWritten() {
        SyncCase c = new SyncCase(Layout.CHANNELS_LAST, 3, new long[0], 1);
        List<Collective> group = InProcessCollective.group(1);
        EmulatedDevice d = devices[0];
        try (DeviceResidentSyncBatchNorm sync = new DeviceResidentSyncBatchNorm(norms[0], group.get(0));
             Tensors t = new Tensors(d, c, 0)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> sync.forwardTraining(
                    t.shape, t.x, t.gamma, t.beta, SyncCase.EPS, t.rm, t.rv, SyncCase.MOMENTUM, t.y, t.sm, t.si, null));
            assertEquals("statistics over all 1 ranks: expected more than 1 value per channel when training, got 1",
                    e.getMessage());
            SyncCase.Output o = t.output();
            assertTrue(Float.isNaN(o.y()[0]) && Float.isNaN(o.saveMean()[0]), "nothing written");
            assertEquals(c.runningMean[0], o.runningMean()[0]);
        }
    }

    /**
     * The merge kernel decodes counts past 2^24 (where a float count would round) and merges records of different
     * centers: two hand-made records of one channel, checked against Chan's formula in double.
     */
    @Test
    void mergeKernelDecodesLargeCountsAndRecentersTheRecords() {
        long n0 = (1L << 24) + 3;
        long n1 = 5;
        float c0 = 1000.5f, d0 = 0.25f, q0 = 4.0e6f;   // record 0: center, mean − center, M2
        float c1 = 1001.0f, d1 = -0.125f, q1 = 3.5f;
        float[] records = new float[10];
        System.arraycopy(DeviceResidentBatchNorm.countWords(n0), 0, records, 0, 2);
        records[2] = c0;
        records[3] = d0;
        records[4] = q0;
        System.arraycopy(DeviceResidentBatchNorm.countWords(n1), 0, records, 5, 2);
        records[7] = c1;
        records[8] = d1;
        records[9] = q1;
        assertEquals(n0, DeviceResidentBatchNorm.countOf(records[0], records[1]));
        double m0 = (double) c0 + d0, m1 = (double) c1 + d1, n = n0 + n1;
        double mean = m0 + (m1 - m0) * n1 / n;
        double m2 = q0 + q1 + (m1 - m0) * (m1 - m0) * n0 * n1 / n;
        EmulatedDevice d = devices[0];
        Shape shape = Shape.channelsLast(2, 1);
        try (DeviceBuffer b = d.allocate(4096)) {
            DeviceStream s = d.defaultStream();
            DevicePointer rec = b.at(0), x = b.at(256), y = b.at(512), rm = b.at(768), rv = b.at(1024);
            DevicePointer sm = b.at(1280), si = b.at(1536);
            d.copyToDevice(records, 0, rec, 10, s);
            d.copyToDevice(new float[] {1000f, 1002f}, 0, x, 2, s);
            d.copyToDevice(new float[] {0f}, 0, rm, 1, s);
            d.copyToDevice(new float[] {0f}, 0, rv, 1, s);
            norms[0].forwardWithRecords(shape, x, rec, 2, null, null, 1e-5, rm, rv, 1.0, y, sm, si, s);
            float[] got = new float[4];
            d.copyToHost(sm, got, 0, 1, s);
            d.copyToHost(si, got, 1, 1, s);
            d.copyToHost(rm, got, 2, 1, s);
            d.copyToHost(rv, got, 3, 1, s);
            assertEquals(mean, got[0], 1e-7 * mean, "mean");
            assertEquals(1 / Math.sqrt(m2 / n + 1e-5), got[1], 1e-6 * got[1], "invstd");
            assertEquals(mean, got[2], 1e-7 * mean, "running mean (momentum 1)");
            assertEquals(m2 / (n - 1), got[3], 1e-6 * got[3], "running var uses the merged count − 1");
        }
    }

    @Test
    void argumentsAreCheckedBeforeTheExchange() {
        SyncCase c = new SyncCase(Layout.CHANNELS_LAST, 3, new long[0], 4);
        // A group of two with only rank 0 present: a call that reached the exchange would fail after the timeout
        // with a CollectiveException instead of the argument's own message.
        List<Collective> group = InProcessCollective.group(2, java.time.Duration.ofSeconds(5));
        EmulatedDevice d = devices[0];
        try (DeviceResidentSyncBatchNorm sync = new DeviceResidentSyncBatchNorm(norms[0], group.get(0));
             Tensors t = new Tensors(d, c, 0)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> sync.forwardTraining(
                    t.shape, t.x, t.gamma, t.beta, -1, t.rm, t.rv, SyncCase.MOMENTUM, t.y, t.sm, t.si, null));
            assertTrue(e.getMessage().startsWith("eps"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> sync.backwardTraining(t.shape, t.x, t.dy, t.gamma,
                    null, t.si, t.dx, t.dg, t.db, null));
            assertEquals("saveMean must not be null", e.getMessage());
        }
    }

    /** Rank r's tensors on its device, uploaded from the case; outputs poisoned. */
    static final class Tensors implements AutoCloseable {
        final Device d;
        final Shape shape;
        final DeviceBuffer buf;
        final DevicePointer x, dy, y, dx, gamma, beta, rm, rv, sm, si, dg, db;
        private final int n;
        private final int ch;

        Tensors(Device d, SyncCase c, int r) {
            this.d = d;
            shape = c.rankShape(r);
            n = shape.elementCountAsInt();
            ch = c.channels;
            long tensorBytes = align(4L * n);
            long channelBytes = align(4L * ch);
            buf = d.allocate(4 * tensorBytes + 8 * channelBytes);
            x = buf.at(0);
            dy = buf.at(tensorBytes);
            y = buf.at(2 * tensorBytes);
            dx = buf.at(3 * tensorBytes);
            DevicePointer[] per = new DevicePointer[8];
            for (int i = 0; i < 8; i++) per[i] = buf.at(4 * tensorBytes + i * channelBytes);
            gamma = per[0];
            beta = per[1];
            rm = per[2];
            rv = per[3];
            sm = per[4];
            si = per[5];
            dg = per[6];
            db = per[7];
            DeviceStream s = d.defaultStream();
            d.copyToDevice(c.slice(c.x, r), 0, x, n, s);
            d.copyToDevice(c.slice(c.dy, r), 0, dy, n, s);
            d.copyToDevice(TestData.poisoned(n), 0, y, n, s);
            d.copyToDevice(TestData.poisoned(n), 0, dx, n, s);
            d.copyToDevice(c.gamma, 0, gamma, ch, s);
            d.copyToDevice(c.beta, 0, beta, ch, s);
            d.copyToDevice(c.runningMean, 0, rm, ch, s);
            d.copyToDevice(c.runningVar, 0, rv, ch, s);
            for (DevicePointer p : new DevicePointer[] {sm, si, dg, db}) d.copyToDevice(TestData.poisoned(ch), 0, p, ch, s);
        }

        private static long align(long bytes) {
            return (bytes + 255) & ~255L;
        }

        SyncCase.Output output() {
            DeviceStream s = d.defaultStream();
            return new SyncCase.Output(get(y, n, s), get(sm, ch, s), get(si, ch, s), get(rm, ch, s), get(rv, ch, s),
                    get(dx, n, s), get(dg, ch, s), get(db, ch, s));
        }

        private float[] get(DevicePointer p, int count, DeviceStream s) {
            float[] out = new float[count];
            d.copyToHost(p, out, 0, count, s);
            return out;
        }

        @Override
        public void close() {
            buf.close();
        }
    }
}
