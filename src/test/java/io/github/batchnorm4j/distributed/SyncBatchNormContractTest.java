package io.github.batchnorm4j.distributed;

import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.SplitBatchNormOps;
import io.github.batchnorm4j.testing.TestData;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.stream.Stream;

/**
 * The contract of {@link SyncBatchNormOps} for any {@link SplitBatchNormOps} backend: over K = 2, 3, 4 ranks (one
 * thread and one backend each, an {@link InProcessCollective}), with equal and unequal slices, in both layouts, the
 * ranks' y, dx, dgamma, dbeta, saved and running statistics are single-device batch norm over the whole batch (the
 * float64 reference, today's tolerances); everything shared is bitwise the same on every rank, and a second run
 * (threads starting in the reverse order) writes the same bits.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class SyncBatchNormContractTest {

    private final SplitBatchNormOps[] backends = new SplitBatchNormOps[4];

    /** Opens the backend of rank r (a device of its own where the backend has one); kept for the whole class. */
    protected abstract SplitBatchNormOps open(int rank);

    private synchronized SplitBatchNormOps backend(int rank) {
        if (backends[rank] == null) backends[rank] = open(rank);
        return backends[rank];
    }

    @AfterAll
    void closeBackends() {
        for (SplitBatchNormOps b : backends) if (b != null) b.close();
    }

    /** The cases to run; a slow backend runs fewer. */
    protected List<SyncCase> cases() {
        List<SyncCase> all = new ArrayList<>();
        all.addAll(SyncCase.matrix(Layout.CHANNELS_FIRST, 3, 3, 2));
        all.addAll(SyncCase.matrix(Layout.CHANNELS_LAST, 5, 2, 3));
        all.addAll(SyncCase.matrix(Layout.CHANNELS_LAST, 4));   // [N, C]: the one-sample slices have M = 1
        return all;
    }

    Stream<SyncCase> caseStream() {
        return cases().stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("caseStream")
    void matchesSingleDeviceBatchNormAndIsDeterministic(SyncCase c) {
        List<SyncCase.Output> first = run(c, false);
        c.assertMatchesSingleDevice(first);
        c.assertSameBits(first, run(c, true));
    }

    /** Forward then backward on every rank; {@code reversed} starts the ranks' threads in the opposite order. */
    List<SyncCase.Output> run(SyncCase c, boolean reversed) {
        int k = c.ranks();
        List<Collective> group = InProcessCollective.group(k);
        List<SyncCase.Output> out = new ArrayList<>(Ranks.run(k, q -> {
            int r = reversed ? k - 1 - q : q;
            {
                SplitBatchNormOps local = backend(r);
                SyncBatchNormOps sync = new SyncBatchNormOps(local, group.get(r));
                Shape shape = c.rankShape(r);
                float[] x = c.slice(c.x, r);
                float[] dy = c.slice(c.dy, r);
                float[] y = TestData.poisoned(x.length);
                float[] sm = TestData.poisoned(c.channels);
                float[] si = TestData.poisoned(c.channels);
                float[] rm = c.runningMean.clone();
                float[] rv = c.runningVar.clone();
                sync.forwardTraining(shape, x, c.gamma, c.beta, SyncCase.EPS, rm, rv, SyncCase.MOMENTUM, y, sm, si);
                float[] dx = TestData.poisoned(x.length);
                float[] dg = TestData.poisoned(c.channels);
                float[] db = TestData.poisoned(c.channels);
                sync.backwardTraining(shape, x, dy, c.gamma, sm, si, dx, dg, db);
                return new SyncCase.Output(y, sm, si, rm, rv, dx, dg, db);
            }
        }));
        if (reversed) Collections.reverse(out);   // index q ran rank k − 1 − q
        return out;
    }
}
