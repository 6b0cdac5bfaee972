package io.github.batchnorm4j.distributed;

import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.cuda.CudaDevice;
import io.github.batchnorm4j.gpu.DeviceResidentBatchNorm;
import io.github.batchnorm4j.gpu.DeviceStream;
import io.github.batchnorm4j.nccl.NcclCollective;
import io.github.batchnorm4j.nccl.NcclUniqueId;
import io.github.batchnorm4j.testing.GpuTest;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

/**
 * Data-parallel batch norm on real GPUs (skipped without one; {@code mvn -B test -Dgroups=gpu}):
 * <ul>
 *   <li>K = 2, 3, 4 ranks on GPU 0, each its own DeviceResidentBatchNorm and stream, through the in-process collective
 *       (the kernels and the merge on real hardware, one GPU suffices);</li>
 *   <li>NCCL between two GPUs when the machine has two (ncclAllGather on the streams JCuda created, in the primary
 *       contexts CudaDevice made current) — the results must be those of the in-process run, bit for bit;</li>
 *   <li>NCCL with one rank on GPU 0 (a group of one still goes through ncclCommInitRank and ncclAllGather).</li>
 * </ul>
 */
@GpuTest
class CudaSyncBatchNormGpuTest {

    private static List<SyncCase> cases() {
        List<SyncCase> out = new ArrayList<>();
        out.addAll(SyncCase.matrix(Layout.CHANNELS_FIRST, 3, 4));
        out.addAll(SyncCase.matrix(Layout.CHANNELS_LAST, 5, 3));
        out.addAll(SyncCase.matrix(Layout.CHANNELS_LAST, 8));
        return out;
    }

    /** One rank: its own batch norm and stream on {@code device}, synchronized through {@code collective}. */
    private static SyncCase.Output rank(CudaDevice device, Collective collective, SyncCase c, int r) {
        try (DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(device);
             DeviceResidentSyncBatchNorm sync = new DeviceResidentSyncBatchNorm(bn, collective);
             DeviceStream s = device.createStream();
             DeviceResidentSyncBatchNormTest.Tensors t = new DeviceResidentSyncBatchNormTest.Tensors(device, c, r)) {
            sync.forwardTraining(t.shape, t.x, t.gamma, t.beta, SyncCase.EPS, t.rm, t.rv, SyncCase.MOMENTUM, t.y, t.sm,
                    t.si, s);
            sync.backwardTraining(t.shape, t.x, t.dy, t.gamma, t.sm, t.si, t.dx, t.dg, t.db, s);
            s.synchronize();
            return t.output();
        }
    }

    @Test
    void severalRanksOnOneGpuMatchSingleDeviceBatchNorm() {
        try (CudaDevice d = new CudaDevice(0)) {
            for (SyncCase c : cases()) {
                List<Collective> group = InProcessCollective.group(c.ranks());
                List<SyncCase.Output> out = Ranks.run(c.ranks(), r -> rank(d, group.get(r), c, r));
                c.assertMatchesSingleDevice(out);
                List<Collective> again = InProcessCollective.group(c.ranks());
                c.assertSameBits(out, Ranks.run(c.ranks(), r -> rank(d, again.get(r), c, r)));
            }
        }
    }

    @Test
    void ncclBetweenTwoGpusGivesTheInProcessBits() {
        int gpus = io.github.batchnorm4j.cuda.CudaProbe.probe().available() ? deviceCount() : 0;
        Assumptions.assumeTrue(gpus >= 2, "needs two GPUs, found " + gpus);
        ncclOrSkip();
        for (SyncCase c : cases()) {
            if (c.ranks() != 2) continue;
            List<Collective> group = InProcessCollective.group(2);
            List<SyncCase.Output> reference = Ranks.run(2, r -> {
                try (CudaDevice d = new CudaDevice(r)) {
                    return rank(d, group.get(r), c, r);
                }
            });
            NcclUniqueId fresh = NcclCollective.createUniqueId();
            List<SyncCase.Output> viaNccl = Ranks.run(2, r -> {
                try (CudaDevice d = new CudaDevice(r); NcclCollective nccl = NcclCollective.create(d, r, 2, fresh)) {
                    return rank(d, nccl, c, r);
                }
            });
            c.assertMatchesSingleDevice(viaNccl);
            c.assertSameBits(reference, viaNccl);
        }
    }

    @Test
    void ncclWithOneRankGathersItsOwnRecords() {
        NcclUniqueId id = ncclOrSkip();
        SyncCase c = new SyncCase(Layout.CHANNELS_FIRST, 3, new long[] {4}, 6);
        try (CudaDevice d = new CudaDevice(0); NcclCollective nccl = NcclCollective.create(d, 0, 1, id)) {
            c.assertMatchesSingleDevice(List.of(rank(d, nccl, c, 0)));
            double[] recv = new double[3];
            nccl.allGather(new double[] {1.5, -0.0, Double.NaN}, recv);
            org.junit.jupiter.api.Assertions.assertEquals(1.5, recv[0]);
        }
    }

    private static NcclUniqueId ncclOrSkip() {
        try {
            return NcclCollective.createUniqueId();
        } catch (CollectiveException e) {
            Assumptions.abort("NCCL unavailable: " + e.getMessage());
            throw e;
        }
    }

    private static int deviceCount() {
        int[] n = new int[1];
        jcuda.driver.JCudaDriver.cuDeviceGetCount(n);
        return n[0];
    }
}
