package io.github.batchnorm4j.train;

import io.github.batchnorm4j.DType;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * The training loop: mini-batch SGD with momentum over a seeded shuffle, one evaluation on the test set per epoch.
 *
 * <p>Determinism: the initial weights come from {@code seed}, the batch order from a generator derived from the same
 * seed, so runs with and without batch norm (or at different learning rates) see identical batches in identical
 * order. A final partial batch is kept unless it has a single row (batch norm needs two values per channel).
 */
public final class Trainer {
    /** Rows per forward pass when evaluating. */
    /** Rows per forward pass of the evaluation. */
    public static final int EVAL_CHUNK = 1000;

    private Trainer() {
    }

    /**
     * Trains a fresh {@link Mlp} on {@code split.train()} and evaluates it on {@code split.test()} after each epoch.
     *
     * @param label names the run in listener callbacks and metrics
     */
    public static RunResult train(TrainBackend backend, Dataset.Split split, TrainConfig cfg, String label,
                                  TrainListener listener) {
        Dataset train = split.train();
        Dataset test = split.test();
        if (train.features() != test.features() || train.classes() != test.classes()) {
            throw new IllegalArgumentException("split: train has " + train.features() + " features and "
                    + train.classes() + " classes, test has " + test.features() + " and " + test.classes());
        }
        long start = System.nanoTime();
        int n = train.rows();
        int full = n / cfg.batchSize();
        int rest = n % cfg.batchSize();
        int batches = full + (rest >= 2 ? 1 : 0);
        if (batches == 0) {
            throw new IllegalArgumentException("train: expected at least 2 rows, got " + n);
        }
        List<EpochMetrics> history = new ArrayList<>();
        // float16 needs loss scaling (its range ends at 65504 and its subnormals at 6e-8); bfloat16 and float32 do not
        GradScaler scaler = cfg.dtype() == DType.FLOAT16 ? new GradScaler() : null;
        try (Mlp model = new Mlp(backend, train.features(), cfg.hidden(), train.classes(), cfg.batchNorm(), cfg.seed(),
                cfg.bnEps(), cfg.bnMomentum(), cfg.dtype())) {
            // A stream of its own (not the init generator) so that the order does not depend on the model's size.
            Random order = new Random(cfg.seed() ^ 0x5DEECE66DL);
            int[] index = Shuffle.identity(n);
            int f = train.features();
            for (int epoch = 1; epoch <= cfg.epochs(); epoch++) {
                listener.epochStarted(label, epoch, cfg.epochs(), batches);
                Shuffle.shuffle(index, order);
                long t0 = System.nanoTime();
                double lossSum = 0;
                long correct = 0;
                int seen = 0;
                for (int b = 0; b < batches; b++) {
                    int from = b * cfg.batchSize();
                    int to = Math.min(n, from + cfg.batchSize());
                    int rows = to - from;
                    float[] xb = new float[rows * f];
                    int[] yb = new int[rows];
                    train.gather(index, from, to, xb, yb);
                    Mlp.StepResult r;
                    if (scaler == null) {
                        r = model.trainStep(xb, yb, cfg.lr(), cfg.momentum(), cfg.weightDecay());
                    } else {
                        r = model.computeGradients(xb, yb, scaler.scale());
                        if (scaler.unscaleAndUpdate(backend, model.gradients())) {
                            model.sgdStep(cfg.lr(), cfg.momentum(), cfg.weightDecay());
                        }
                    }
                    lossSum += r.lossSum();
                    correct += r.correct();
                    seen += rows;
                    listener.batchDone(label, b + 1, batches);
                }
                double seconds = (System.nanoTime() - t0) / 1e9;
                Mlp.Evaluation ev = model.evaluate(test.x(), test.labels(), EVAL_CHUNK);
                EpochMetrics m = new EpochMetrics(epoch, lossSum / seen, (double) correct / seen, ev.loss(),
                        ev.accuracy(), ev.deadFraction(), seconds);
                history.add(m);
                listener.epochFinished(label, m, cfg.epochs());
            }
        }
        return new RunResult(label, cfg, history, (System.nanoTime() - start) / 1e9,
                scaler == null ? 0 : scaler.skippedSteps(), scaler == null ? 1f : scaler.scale());
    }
}
