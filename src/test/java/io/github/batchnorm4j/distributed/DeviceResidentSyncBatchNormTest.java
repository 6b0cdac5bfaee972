package io.github.batchnorm4j.distributed;

import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.gpu.Device;
import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.gpu.DeviceResidentBatchNorm;
import io.github.batchnorm4j.gpu.DeviceStream;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.testing.Reference64;
import io.github.batchnorm4j.testing.TestData;
import io.github.batchnorm4j.testing.Tolerances;
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

    /**
     * The backward merge decodes a count word past 2^24 too: rank 0's gradient record is hand-made for a piece of
     * 2^24 + 5 values (its Σdy and Σdy·xhat set to a mean per value of order 1, so Σ/M weighs in dx as in a real
     * batch), rank 1's is this device's own piece, written by gradientRecord. dx of rank 1's piece, dgamma and dbeta
     * are checked against the formula in double with M the summed count; a count whose high word were weighted
     * 2^25 would halve Σ/M (the mutant backward:16242 of the seed-7 mutation run, which the 12 emulator tests
     * reaching it let pass).
     */
    @Test
    void backwardMergeDecodesCountsPast2To24() {
        Shape shape = Shape.channelsFirst(3, 3, 4);
        int ch = shape.channels();
        int size = Math.toIntExact(shape.elementCount());
        long local = shape.reductionSize();
        long remote = (1L << 24) + 5;
        java.util.SplittableRandom rng = TestData.random(0x5eed16242L);
        float[] x = TestData.normal(rng, size, 0.5, 2.0);
        float[] dy = TestData.normal(rng, size, 0.0, 1.0);
        float[] gamma = TestData.uniform(rng, ch, 0.5, 1.5);
        float[] mean = TestData.normal(rng, ch, 0.5, 0.2);     // the statistics of the whole batch (given)
        float[] invstd = TestData.uniform(rng, ch, 0.3, 0.7);
        float[] perValueDy = TestData.uniform(rng, ch, 0.5, 1.5);
        float[] perValueDyXhat = TestData.uniform(rng, ch, -1.5, -0.5);
        int recordFloats = DeviceResidentBatchNorm.gradientRecordFloats(ch);
        float[] remoteRecord = new float[recordFloats];
        System.arraycopy(DeviceResidentBatchNorm.countWords(remote), 0, remoteRecord, 0, 2);
        for (int c = 0; c < ch; c++) {
            remoteRecord[2 + c] = (float) ((double) perValueDy[c] * remote);             // Σdy
            remoteRecord[2 + ch + c] = (float) ((double) perValueDyXhat[c] * remote);    // Σdy·xhat
        }
        assertTrue(remoteRecord[0] >= 1, "the remote count has a high word");

        double m = local + remote;
        double[] sumDy = new double[ch], sumDyXhat = new double[ch];
        for (int c = 0; c < ch; c++) {
            sumDy[c] = remoteRecord[2 + c];
            sumDyXhat[c] = remoteRecord[2 + ch + c];
            for (long j = 0; j < local; j++) {
                int i = Reference64.index(shape, c, j);
                sumDy[c] += dy[i];
                sumDyXhat[c] += dy[i] * ((double) x[i] - mean[c]) * invstd[c];
            }
        }
        double[] expectedDx = new double[size];
        for (int c = 0; c < ch; c++) {
            for (long j = 0; j < local; j++) {
                int i = Reference64.index(shape, c, j);
                double xhat = ((double) x[i] - mean[c]) * invstd[c];
                expectedDx[i] = (double) gamma[c] * invstd[c] * (dy[i] - sumDy[c] / m - xhat * sumDyXhat[c] / m);
            }
        }

        EmulatedDevice d = devices[1];
        try (DeviceBuffer b = d.allocate(8192)) {
            DeviceStream s = d.defaultStream();
            DevicePointer dx = b.at(0), xp = b.at(512), dyp = b.at(1024), gp = b.at(1536), mp = b.at(1792);
            DevicePointer ip = b.at(2048), dg = b.at(2304), db = b.at(2560), rec = b.at(4096);
            d.copyToDevice(x, 0, xp, size, s);
            d.copyToDevice(dy, 0, dyp, size, s);
            d.copyToDevice(gamma, 0, gp, ch, s);
            d.copyToDevice(mean, 0, mp, ch, s);
            d.copyToDevice(invstd, 0, ip, ch, s);
            d.copyToDevice(remoteRecord, 0, rec, recordFloats, s);
            d.copyToDevice(TestData.poisoned(size), 0, dx, size, s);
            d.copyToDevice(TestData.poisoned(ch), 0, dg, ch, s);
            d.copyToDevice(TestData.poisoned(ch), 0, db, ch, s);
            norms[1].gradientRecord(shape, xp, dyp, mp, ip, rec.plus(4L * recordFloats), s);
            norms[1].backwardWithRecords(shape, xp, dyp, gp, mp, ip, rec, 2, dx, dg, db, s);
            float[] gotDx = new float[size], gotDg = new float[ch], gotDb = new float[ch];
            d.copyToHost(dx, gotDx, 0, size, s);
            d.copyToHost(dg, gotDg, 0, ch, s);
            d.copyToHost(db, gotDb, 0, ch, s);
            Tolerances.assertGradient("dx", expectedDx, gotDx);
            Tolerances.assertGradient("dgamma", sumDyXhat, gotDg);
            Tolerances.assertGradient("dbeta", sumDy, gotDb);
        }
    }

    /**
     * A merge of two records of unequal counts without running statistics (SyncBatchNorm without
     * track_running_stats): y of this rank's piece, saveMean and saveInvstd equal batch norm over the concatenated
     * batch. The host passes its workspace as the running buffers it leaves out, and the kernel must not touch them:
     * a fresh DeviceResidentBatchNorm makes that workspace never-written memory, so the emulator refuses any read of
     * it (the mutant forward:20309 of the seed-7 mutation run, which runs the running-statistics update whatever the
     * flag says, fails here; on hardware its stores would be overwritten by the same thread's coefficients).
     */
    @Test
    void mergeWithoutRunningStatisticsMatchesTheConcatenatedBatch() {
        Shape p0 = Shape.channelsFirst(2, 5, 4), p1 = Shape.channelsFirst(3, 5, 4), whole = Shape.channelsFirst(5, 5, 4);
        int n0 = Math.toIntExact(p0.elementCount()), n1 = Math.toIntExact(p1.elementCount()), ch = 5;
        java.util.SplittableRandom rng = TestData.random(0x5eed20309L);
        float[] x = TestData.normal(rng, n0 + n1, 3.0, 2.0);   // rank 0's rows, then rank 1's (batch order)
        float[] gamma = TestData.uniform(rng, ch, 0.5, 1.5);
        float[] beta = TestData.normal(rng, ch, 0.0, 1.0);
        Reference64.Forward ref = Reference64.forwardTraining(whole, x, gamma, beta, 1e-5, null, null, 0.1);
        double[] expectedY = java.util.Arrays.copyOfRange(ref.y(), n0, n0 + n1);
        int rf = DeviceResidentBatchNorm.statisticsRecordFloats(ch);
        EmulatedDevice d = devices[2];
        try (DeviceResidentBatchNorm fresh = new DeviceResidentBatchNorm(d); DeviceBuffer b = d.allocate(8192)) {
            DeviceStream s = d.defaultStream();
            DevicePointer x0 = b.at(0), x1 = b.at(512), rec = b.at(1024), y = b.at(2048), gp = b.at(3072);
            DevicePointer bp = b.at(3328), sm = b.at(3584), si = b.at(3840);
            d.copyToDevice(x, 0, x0, n0, s);
            d.copyToDevice(x, n0, x1, n1, s);
            d.copyToDevice(gamma, 0, gp, ch, s);
            d.copyToDevice(beta, 0, bp, ch, s);
            d.copyToDevice(TestData.poisoned(n1), 0, y, n1, s);
            d.copyToDevice(TestData.poisoned(ch), 0, sm, ch, s);
            d.copyToDevice(TestData.poisoned(ch), 0, si, ch, s);
            fresh.statisticsRecord(p0, x0, rec, s);
            fresh.statisticsRecord(p1, x1, rec.plus(4L * rf), s);
            fresh.forwardWithRecords(p1, x1, rec, 2, gp, bp, 1e-5, null, null, 0.1, y, sm, si, s);
            float[] gotY = new float[n1], gotMean = new float[ch], gotInvstd = new float[ch];
            d.copyToHost(y, gotY, 0, n1, s);
            d.copyToHost(sm, gotMean, 0, ch, s);
            d.copyToHost(si, gotInvstd, 0, ch, s);
            Tolerances.assertForward("y", expectedY, gotY);
            Tolerances.assertForward("saveMean", ref.mean(), gotMean);
            Tolerances.assertForward("saveInvstd", ref.invstd(), gotInvstd);
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
