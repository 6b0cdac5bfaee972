package io.github.batchnorm4j.distributed;

import io.github.batchnorm4j.Backends;
import io.github.batchnorm4j.BatchNorm;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.SplitBatchNormOps;
import io.github.batchnorm4j.cuda.CudaDevice;
import io.github.batchnorm4j.gpu.Device;
import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.gpu.DeviceResidentBatchNorm;
import io.github.batchnorm4j.gpu.DeviceStream;
import io.github.batchnorm4j.nccl.NcclCollective;
import io.github.batchnorm4j.nccl.NcclRendezvous;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.testing.Reference64;
import io.github.batchnorm4j.testing.TestData;
import io.github.batchnorm4j.testing.Tolerances;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The examples of docs/distributed.md, compiled (all three) and run (the two that need no GPU). The code between the
 * BEGIN/END DOC markers must be the page's block of the same name, line for line (indentation aside).
 */
class DistributedExamplesTest {
    private static final Path PAGE = Path.of("docs/distributed.md");
    private static final Path SELF = Path.of("src/test/java/io/github/batchnorm4j/distributed/DistributedExamplesTest.java");

    @Test
    void layerExampleNormalizesEachSliceWithTheWholeBatch() throws Exception {
        Shape whole = Shape.channelsFirst(8, 16, 8, 8);
        float[] x = TestData.perChannelNormal(TestData.random(9), whole);
        float[] dyAll = TestData.normal(TestData.random(10), x.length, 0, 1);
        int half = x.length / 2;
        float[][] xSlices = {Arrays.copyOfRange(x, 0, half), Arrays.copyOfRange(x, half, x.length)};
        float[][] dySlices = {Arrays.copyOfRange(dyAll, 0, half), Arrays.copyOfRange(dyAll, half, x.length)};
        // BEGIN DOC sync-layer
        List<Collective> group = InProcessCollective.group(2);
        ExecutorService threads = Executors.newFixedThreadPool(2);       // one thread per rank
        List<Future<float[]>> ys = new ArrayList<>();
        for (int rank = 0; rank < 2; rank++) {
            int r = rank;
            ys.add(threads.submit(() -> {
                try (BatchNormOps cpu = Backends.open("cpu")) {
                    BatchNorm bn = SyncBatchNorm.create(BatchNorm.builder(16).momentum(0.1),
                            (SplitBatchNormOps) cpu, group.get(r));
                    Shape slice = Shape.channelsFirst(4, 16, 8, 8);      // this rank's 4 of the batch's 8 samples
                    float[] y = bn.forward(slice, xSlices[r]);           // normalized with all 8 samples' statistics
                    float[] dx = bn.backward(slice, xSlices[r], dySlices[r]);
                    return y;
                }
            }));
        }
        // END DOC sync-layer
        float[] y = new float[x.length];
        System.arraycopy(ys.get(0).get(30, TimeUnit.SECONDS), 0, y, 0, half);
        System.arraycopy(ys.get(1).get(30, TimeUnit.SECONDS), 0, y, half, half);
        threads.shutdown();
        Tolerances.assertForward("y", Reference64.forwardTraining(whole, x, null, null, 1e-5, null, null, 0).y(), y);
    }

    @Test
    void deviceExampleRunsOnOneRank() {
        SyncCase c = new SyncCase(Layout.CHANNELS_FIRST, 3, new long[] {4}, 5);
        Collective collective = InProcessCollective.group(1).get(0);
        Shape shape = c.rankShape(0);
        List<SyncCase.Output> out = new ArrayList<>();
        try (EmulatedDevice d = new EmulatedDevice();
             DeviceResidentSyncBatchNormTest.Tensors t = new DeviceResidentSyncBatchNormTest.Tensors(d, c, 0)) {
            runDeviceExample(d, collective, shape, t.x, t.dy, t.gamma, t.beta, t.rm, t.rv, t.y, t.sm, t.si, t.dx, t.dg,
                    t.db);
            out.add(t.output());
        }
        c.assertMatchesSingleDevice(out);
    }

    /** The page's device example. */
    private static void runDeviceExample(Device device, Collective collective, Shape shape, DevicePointer x,
                                         DevicePointer dy, DevicePointer gamma, DevicePointer beta,
                                         DevicePointer runningMean, DevicePointer runningVar, DevicePointer y,
                                         DevicePointer saveMean, DevicePointer saveInvstd, DevicePointer dx,
                                         DevicePointer dgamma, DevicePointer dbeta) {
        // BEGIN DOC sync-device
        try (DeviceResidentBatchNorm local = new DeviceResidentBatchNorm(device);   // device: rank r's, e.g. new CudaDevice(r)
             DeviceResidentSyncBatchNorm bn = new DeviceResidentSyncBatchNorm(local, collective)) {
            DeviceStream stream = device.defaultStream();
            bn.forwardTraining(shape, x, gamma, beta, 1e-5, runningMean, runningVar, 0.1, y, saveMean, saveInvstd, stream);
            bn.backwardTraining(shape, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta, stream);
        }
        // END DOC sync-device
    }

    /** Compiled only: it needs GPUs, NCCL and a launcher (CudaSyncBatchNormGpuTest runs NCCL on a GPU machine). */
    @SuppressWarnings("unused")
    private static void ncclExample() {
        // BEGIN DOC nccl
        NcclRendezvous.Settings rendezvous = NcclRendezvous.fromEnvironment();
        try (CudaDevice device = new CudaDevice(rendezvous.localRank());
             NcclCollective collective = NcclRendezvous.join(device, rendezvous);   // returns when every rank has joined
             DeviceResidentBatchNorm local = new DeviceResidentBatchNorm(device);
             DeviceResidentSyncBatchNorm bn = new DeviceResidentSyncBatchNorm(local, collective)) {
            // the training loop: bn.forwardTraining(...), bn.backwardTraining(...) on this process's slice
        }
        // END DOC nccl
    }

    @Test
    void thePageShowsExactlyThisCode() throws Exception {
        List<String> page = Files.readAllLines(PAGE);
        List<String> self = Files.readAllLines(SELF);
        for (String name : List.of("sync-layer", "sync-device", "nccl")) {
            int marker = page.indexOf("<!-- example: " + name + " -->");
            assertTrue(marker >= 0, "docs/distributed.md shows no example " + name);
            assertEquals("```java", page.get(marker + 1));
            List<String> shown = new ArrayList<>();
            for (int i = marker + 2; !page.get(i).equals("```"); i++) shown.add(page.get(i).strip());
            List<String> tested = new ArrayList<>();
            int from = self.indexOf(self.stream().filter(l -> l.strip().equals("// BEGIN DOC " + name)).findFirst()
                    .orElseThrow());
            for (int i = from + 1; !self.get(i).strip().equals("// END DOC " + name); i++) tested.add(self.get(i).strip());
            assertEquals(shown, tested, "docs/distributed.md example '" + name + "' and this test differ");
        }
    }
}
