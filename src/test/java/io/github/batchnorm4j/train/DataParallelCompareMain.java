package io.github.batchnorm4j.train;

import java.util.ArrayList;
import java.util.List;

/**
 * Measures data-parallel training against one device with the same global batch on the full digits split and the
 * {@code train} defaults (256-256 hidden, batch 64, lr 0.05): every step's mean loss (the loss curve), the epoch
 * metrics, and the largest relative differences. Not a unit test (the emulator takes minutes); run it and quote:
 * <pre>
 * mvn -B -q test-compile dependency:build-classpath -Dmdep.outputFile=cp.txt
 * java -cp target/classes:target/test-classes:$(cat cp.txt) io.github.batchnorm4j.train.DataParallelCompareMain emulator 2 1
 * </pre>
 * Arguments: backend (cpu, emulator, cuda), devices K, epochs.
 */
public final class DataParallelCompareMain {
    private DataParallelCompareMain() {
    }

    public static void main(String[] args) {
        String backend = args.length > 0 ? args[0] : "emulator";
        int k = args.length > 1 ? Integer.parseInt(args[1]) : 2;
        int epochs = args.length > 2 ? Integer.parseInt(args[2]) : 1;
        Dataset.Split split = DigitsData.loadSplit(0.2, 42);
        TrainConfig cfg = TrainConfig.defaults().withEpochs(epochs);
        DataParallelTrainingTest.Curve c1 = new DataParallelTrainingTest.Curve();
        DataParallelTrainingTest.Curve ck = new DataParallelTrainingTest.Curve();
        long t0 = System.nanoTime();
        RunResult one = run(backend, 1, split, cfg, c1);
        long t1 = System.nanoTime();
        RunResult many = run(backend, k, split, cfg, ck);
        long t2 = System.nanoTime();
        double worst = 0;
        int worstAt = -1;
        for (int i = 0; i < c1.losses.size(); i++) {
            double d = Math.abs(c1.losses.get(i) - ck.losses.get(i)) / Math.abs(c1.losses.get(i));
            if (d > worst) {
                worst = d;
                worstAt = i;
            }
        }
        System.out.printf("backend %s, %d epoch(s), %d steps each; 1 device %.1f s, %d devices %.1f s%n", backend,
                epochs, c1.losses.size(), (t1 - t0) / 1e9, k, (t2 - t1) / 1e9);
        System.out.printf("largest relative step-loss difference %.3e (step %d: %.9f vs %.9f)%n", worst, worstAt,
                worstAt < 0 ? 0 : c1.losses.get(worstAt), worstAt < 0 ? 0 : ck.losses.get(worstAt));
        for (int e = 0; e < one.epochs().size(); e++) {
            EpochMetrics p = one.epochs().get(e), q = many.epochs().get(e);
            System.out.printf("epoch %d: train loss %.9f vs %.9f (rel %.2e), test loss %.9f vs %.9f (rel %.2e),"
                            + " train acc %.6f vs %.6f, test acc %.6f vs %.6f%n", e + 1, p.trainLoss(), q.trainLoss(),
                    Math.abs(p.trainLoss() - q.trainLoss()) / p.trainLoss(), p.testLoss(), q.testLoss(),
                    Math.abs(p.testLoss() - q.testLoss()) / p.testLoss(), p.trainAccuracy(), q.trainAccuracy(),
                    p.testAccuracy(), q.testAccuracy());
        }
    }

    private static RunResult run(String backend, int k, Dataset.Split split, TrainConfig cfg,
                                 DataParallelTrainingTest.Curve curve) {
        List<TrainBackend> backends = new ArrayList<>();
        try {
            for (int r = 0; r < k; r++) backends.add(TrainBackends.open(backend, r));
            return Trainer.trainDataParallel(backends, split, cfg, backend + "x" + k, curve);
        } finally {
            for (TrainBackend b : backends) b.close();
        }
    }
}
