package io.github.batchnorm4j.train;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Short real training runs on the embedded digits, on the CPU backend (a few seconds in all). */
class TrainingRunTest {
    /** Ten classes: chance is 0.1. A working network passes 0.9 within a few epochs; a broken one stays far below. */
    static final double WELL_ABOVE_CHANCE = 0.85;

    @Test
    void shortRunWithBatchNormLearnsTheDigits() {
        Dataset.Split split = DigitsData.loadSplit(0.2, 42);
        TrainConfig cfg = new TrainConfig(new int[] {64, 64}, true, 4, 32, 0.05f, 0.9f, 0f, 1, 1e-5, 0.1);
        try (CpuTrainBackend be = new CpuTrainBackend()) {
            RunResult r = Trainer.train(be, split, cfg, "bn", TrainListener.NONE);
            assertEquals(4, r.epochs().size());
            assertTrue(r.testAccuracy() >= WELL_ABOVE_CHANCE, "test accuracy " + r.testAccuracy());
            assertTrue(r.last().trainLoss() < r.epochs().get(0).trainLoss(), "loss must fall");
            assertEquals(2, r.last().deadFraction().length);
        }
    }

    /** The bar for {@code batchnorm4j train} with its defaults: at least 95% test accuracy on the digits. */
    @Test
    void defaultsReachNinetyFivePercent() {
        Dataset.Split split = DigitsData.loadSplit(0.2, 42);
        try (CpuTrainBackend be = new CpuTrainBackend()) {
            RunResult r = Trainer.train(be, split, TrainConfig.defaults(), "defaults", TrainListener.NONE);
            assertEquals(20, r.epochs().size());
            assertTrue(r.testAccuracy() >= 0.95, "test accuracy " + r.testAccuracy());
        }
    }

    @Test
    void sameSeedSameCurves() {
        Dataset.Split split = DigitsData.loadSplit(0.2, 42);
        TrainConfig cfg = new TrainConfig(new int[] {32}, false, 2, 50, 0.1f, 0.9f, 1e-4f, 5, 1e-5, 0.1);
        try (CpuTrainBackend be = new CpuTrainBackend()) {
            RunResult a = Trainer.train(be, split, cfg, "a", TrainListener.NONE);
            RunResult b = Trainer.train(be, split, cfg, "b", TrainListener.NONE);
            RunResult c = Trainer.train(be, split, new TrainConfig(new int[] {32}, false, 2, 50, 0.1f, 0.9f, 1e-4f, 6,
                    1e-5, 0.1), "c", TrainListener.NONE);
            assertArrayEquals(losses(a), losses(b), 0.0, "training is deterministic for a seed");
            assertTrue(losses(a)[0] != losses(c)[0], "another seed gives another run");
            assertTrue(a.testAccuracy() >= WELL_ABOVE_CHANCE, "plain network, 2 epochs: " + a.testAccuracy());
        }
    }

    private static double[] losses(RunResult r) {
        return r.epochs().stream().mapToDouble(EpochMetrics::trainLoss).toArray();
    }
}
