package io.github.batchnorm4j.distributed;

import io.github.batchnorm4j.BatchNorm;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.ChannelStatistics;
import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.cpu.CpuBatchNormOps;
import io.github.batchnorm4j.testing.Reference64;
import io.github.batchnorm4j.testing.TestData;
import io.github.batchnorm4j.testing.Tolerances;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The synchronized layer and SyncBatchNormOps' own rules (validation, M = 1, eval mode) on CPU ranks. */
class SyncBatchNormTest {

    /** Two training steps of the layer on 3 ranks with unequal slices, then eval: as one BatchNorm over the batch. */
    @Test
    void layerTrainsLikeOneLayerOverTheWholeBatch() {
        SyncCase c = new SyncCase(Layout.CHANNELS_FIRST, 4, new long[] {5}, 2, 5, 1);
        int k = c.ranks();
        record State(float[] rm, float[] rv, long tracked, float[] gammaGrad, float[] betaGrad, float[] yEval) {
        }
        List<Collective> group = InProcessCollective.group(k);
        List<State> states = Ranks.run(k, r -> {
            try (CpuBatchNormOps cpu = new CpuBatchNormOps(1)) {
                BatchNorm bn = SyncBatchNorm.create(BatchNorm.builder(c.channels).cumulativeMomentum(), cpu,
                        group.get(r));
                Shape s = c.rankShape(r);
                for (int step = 0; step < 2; step++) {
                    bn.forward(s, c.slice(c.x, r));
                    bn.backward(s, c.slice(c.x, r), c.slice(c.dy, r));
                }
                bn.eval();
                return new State(bn.runningMean().clone(), bn.runningVar().clone(), bn.numBatchesTracked(),
                        bn.gammaGrad().clone(), bn.betaGrad().clone(), bn.forward(s, c.slice(c.x, r)));
            }
        });
        try (CpuBatchNormOps cpu = new CpuBatchNormOps(1)) {
            BatchNorm one = BatchNorm.builder(c.channels).cumulativeMomentum().build(cpu);
            for (int step = 0; step < 2; step++) {
                one.forward(c.whole, c.x);
                one.backward(c.whole, c.x, c.dy);
            }
            State s0 = states.get(0);
            assertEquals(2, s0.tracked());
            Tolerances.assertForward("runningMean", Reference64.wide(one.runningMean()), s0.rm());
            Tolerances.assertForward("runningVar", Reference64.wide(one.runningVar()), s0.rv());
            Tolerances.assertClose("gammaGrad", Reference64.wide(one.gammaGrad()), Reference64.wide(s0.gammaGrad()),
                    Tolerances.GRADIENT_RTOL);
            Tolerances.assertClose("betaGrad", Reference64.wide(one.betaGrad()), Reference64.wide(s0.betaGrad()),
                    Tolerances.GRADIENT_RTOL);
            one.eval();
            float[] yEval = one.forward(c.whole, c.x);
            float[] joined = SyncCase.concat(states.stream().map(State::yEval).toList());
            Tolerances.assertForward("y (eval)", Reference64.wide(yEval), joined);
        }
        for (State s : states) {
            assertArrayEquals(states.get(0).rm(), s.rm());
            assertArrayEquals(states.get(0).rv(), s.rv());
            assertArrayEquals(states.get(0).gammaGrad(), s.gammaGrad());
            assertEquals(2, s.tracked());
        }
    }

    @Test
    void statisticsAreTheWholeBatchsOnEveryRank() {
        SyncCase c = new SyncCase(Layout.CHANNELS_LAST, 3, new long[] {2}, 3, 1, 4);
        List<Collective> group = InProcessCollective.group(3);
        List<ChannelStatistics> got = Ranks.run(3, r -> {
            try (CpuBatchNormOps cpu = new CpuBatchNormOps(1)) {
                return new SyncBatchNormOps(cpu, group.get(r)).statistics(c.rankShape(r), c.slice(c.x, r));
            }
        });
        double[] mean = Reference64.mean(c.whole, c.x);
        double[] m2 = Reference64.m2(c.whole, c.x, mean);
        for (ChannelStatistics s : got) {
            assertEquals(c.whole.reductionSize(), s.count());
            assertArrayEquals(got.get(0).means(), s.means(), 0.0);
            assertArrayEquals(got.get(0).m2s(), s.m2s(), 0.0);
        }
        Tolerances.assertClose("mean", mean, got.get(0).means(), 1e-12);
        Tolerances.assertClose("m2", m2, got.get(0).m2s(), 1e-12);
    }

    @Test
    void oneValuePerChannelIsRefusedOnlyWhenTheWholeBatchHasOne() {
        Shape one = Shape.channelsLast(1, 3);
        float[] x = {1, 2, 3};
        try (CpuBatchNormOps cpu = new CpuBatchNormOps(1)) {
            BatchNormOps sync = new SyncBatchNormOps(cpu, InProcessCollective.group(1).get(0));
            float[] y = TestData.poisoned(3);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> sync.forwardTraining(one,
                    x, null, null, 1e-5, null, null, 0.1, y, new float[3], new float[3]));
            assertEquals("statistics over all 1 ranks: expected more than 1 value per channel when training, got 1",
                    e.getMessage());
            assertTrue(Float.isNaN(y[0]), "nothing written");
        }
        // Two ranks of one sample each: M = 2 over the batch, allowed (covered numerically by the contract suite).
        List<Collective> group = InProcessCollective.group(2);
        List<float[]> ys = Ranks.run(2, r -> {
            try (CpuBatchNormOps cpu = new CpuBatchNormOps(1)) {
                float[] y = new float[3];
                new SyncBatchNormOps(cpu, group.get(r)).forwardTraining(one, new float[] {r, 2 * r, 3 * r}, null, null,
                        1e-5, null, null, 0, y, new float[3], new float[3]);
                return y;
            }
        });
        assertArrayEquals(new float[] {-1, -1, -1}, ys.get(0), 1e-4f);   // ±1/sqrt(1 + eps/var), var ≥ 0.25
        assertArrayEquals(new float[] {1, 1, 1}, ys.get(1), 1e-4f);
    }

    @Test
    void badArgumentsAreRefusedBeforeTheExchangeAndDifferentChannelCountsFailEveryRank() {
        List<Collective> group = InProcessCollective.group(2);
        List<String> out = Ranks.run(2, r -> {
            try (CpuBatchNormOps cpu = new CpuBatchNormOps(1)) {
                SyncBatchNormOps sync = new SyncBatchNormOps(cpu, group.get(r));
                Shape s = Shape.channelsLast(2, 2 + r);
                float[] x = TestData.normal(TestData.random(r), s.elementCountAsInt(), 0, 1);
                IllegalArgumentException bad = assertThrows(IllegalArgumentException.class, () -> sync.forwardTraining(
                        s, x, null, null, 1e-5, null, null, 0, new float[1], new float[2 + r], new float[2 + r]));
                assertTrue(bad.getMessage().startsWith("y: expected"), bad.getMessage());
                IllegalArgumentException inPlace = assertThrows(IllegalArgumentException.class,
                        () -> sync.backwardTraining(s, x, x, null, new float[2 + r], new float[2 + r], x, null, null));
                assertTrue(inPlace.getMessage().startsWith("dx must not be the same array as x"), inPlace.getMessage());
                // Neither call reached the collective: this one does, with C = 2 on rank 0 and 3 on rank 1.
                return assertThrows(CollectiveException.class, () -> sync.statistics(s, x)).getMessage();
            }
        });
        assertTrue(out.get(0).contains("rank 0: 5 doubles, rank 1: 7 doubles"), out.get(0));
    }
}
