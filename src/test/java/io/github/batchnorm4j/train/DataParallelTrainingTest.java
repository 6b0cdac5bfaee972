package io.github.batchnorm4j.train;

import io.github.batchnorm4j.gpu.HostArrayBatchNormOps;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Data-parallel training ({@link Trainer#trainDataParallel}) against one device with the same global batch: the same
 * loss curve (every step's mean loss) within 1e-5 relative, the same train and test accuracy, the same test loss, on
 * CPU ranks (K = 2 and 3; 400 rows, two epochs) and on emulated devices (K = 2; 272 rows, one epoch). A small slice
 * of the digits keeps the emulator affordable;
 * the full run is in docs/distributed.md.
 */
class DataParallelTrainingTest {
    static final double LOSS_RTOL = 1e-5;

    /** The first {@code rows} training rows and 200 test rows of the stratified digits split. */
    static Dataset.Split smallDigits(int rows) {
        Dataset.Split s = DigitsData.loadSplit(0.2, 42);
        return new Dataset.Split(head(s.train(), rows), head(s.test(), 200));
    }

    private static Dataset head(Dataset d, int rows) {
        return new Dataset(d.name(), Arrays.copyOf(d.x(), rows * d.features()), Arrays.copyOf(d.labels(), rows),
                d.features(), d.classes());
    }

    /** Records every step's loss. */
    static final class Curve implements TrainListener {
        final List<Double> losses = new ArrayList<>();

        @Override
        public synchronized void batchDone(String run, int done, int batches, double loss) {
            losses.add(loss);
        }
    }

    static void assertSameRun(RunResult one, Curve oneCurve, RunResult many, Curve manyCurve, String what) {
        assertEquals(oneCurve.losses.size(), manyCurve.losses.size(), what + ": steps");
        double worst = 0;
        for (int i = 0; i < oneCurve.losses.size(); i++) {
            double a = oneCurve.losses.get(i), b = manyCurve.losses.get(i);
            worst = Math.max(worst, Math.abs(a - b) / Math.abs(a));
            assertTrue(Math.abs(a - b) <= LOSS_RTOL * Math.abs(a), what + ": step " + i + " loss " + b + " vs " + a
                    + " on one device");
        }
        System.out.printf("[data-parallel] %s: %d steps, largest relative step-loss difference %.2e, test accuracy"
                + " %.4f vs %.4f%n", what, oneCurve.losses.size(), worst, many.testAccuracy(), one.testAccuracy());
        for (int e = 0; e < one.epochs().size(); e++) {
            EpochMetrics p = one.epochs().get(e), q = many.epochs().get(e);
            assertEquals(p.trainAccuracy(), q.trainAccuracy(), what + ": train accuracy");
            assertEquals(p.testAccuracy(), q.testAccuracy(), what + ": test accuracy");
            assertEquals(p.trainLoss(), q.trainLoss(), LOSS_RTOL * p.trainLoss(), what + ": train loss");
            assertEquals(p.testLoss(), q.testLoss(), LOSS_RTOL * p.testLoss(), what + ": test loss");
        }
    }

    private static RunResult run(List<TrainBackend> backends, TrainConfig cfg, Curve curve) {
        return run(backends, cfg, curve, 400);
    }

    private static RunResult run(List<TrainBackend> backends, TrainConfig cfg, Curve curve, int rows) {
        try {
            return Trainer.trainDataParallel(backends, smallDigits(rows), cfg, "dp", curve);
        } finally {
            for (TrainBackend b : backends) b.close();
        }
    }

    private static List<TrainBackend> cpus(int k) {
        List<TrainBackend> out = new ArrayList<>();
        for (int i = 0; i < k; i++) out.add(new CpuTrainBackend());
        return out;
    }

    @Test
    void cpuRanksTrainLikeOneCpu() {
        TrainConfig cfg = new TrainConfig(new int[] {32, 32}, true, 2, 64, 0.05f, 0.9f, 1e-4f, 42, 1e-5, 0.1);
        Curve c1 = new Curve();
        RunResult one = run(cpus(1), cfg, c1);
        assertEquals(2 * 7, c1.losses.size());
        for (int k : new int[] {2, 3}) {
            Curve ck = new Curve();
            assertSameRun(one, c1, run(cpus(k), cfg, ck), ck, k + " CPU ranks");
        }
    }

    @Test
    void emulatedDevicesTrainLikeOneDevice() {
        TrainConfig cfg = new TrainConfig(new int[] {16}, true, 1, 64, 0.05f, 0.9f, 0f, 42, 1e-5, 0.1);
        Curve c1 = new Curve();
        RunResult one = run(List.of(emulator()), cfg, c1, 272);
        Curve c2 = new Curve();
        RunResult two = run(List.of(emulator(), emulator()), cfg, c2, 272);   // 4·64 + 16: a partial batch too
        assertSameRun(one, c1, two, c2, "2 emulated devices");
        assertTrue(one.testAccuracy() > 0.3, "it learns: " + one.testAccuracy());
    }

    private static TrainBackend emulator() {
        return new DeviceTrainBackend(new EmulatedDevice(), "emulator", null, true);
    }

    @Test
    void aPartialBatchWithFewerRowsThanDevicesIsDroppedAndBadSettingsAreRefused() {
        // 400 = 6·64 + 16 rows: with 3 ranks the final 16 rows stay; with batch 66 (6·66 + 4) and 5 ranks they go.
        TrainConfig cfg = new TrainConfig(new int[] {8}, true, 1, 66, 0.05f, 0.9f, 0f, 1, 1e-5, 0.1);
        Curve c = new Curve();
        run(cpus(5), cfg, c);
        assertEquals(6, c.losses.size());
        TrainConfig tiny = new TrainConfig(new int[] {8}, true, 1, 2, 0.05f, 0.9f, 0f, 1, 1e-5, 0.1);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> run(cpus(3), tiny, c));
        assertEquals("batchSize: expected at least one row per device (3), got 2", e.getMessage());
    }
}
