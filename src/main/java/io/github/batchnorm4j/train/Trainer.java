package io.github.batchnorm4j.train;

import io.github.batchnorm4j.distributed.Collective;
import io.github.batchnorm4j.distributed.CollectiveException;
import io.github.batchnorm4j.distributed.InProcessCollective;

import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

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
     * Data-parallel training over {@code backends.size()} = K devices (ranks) in this JVM, one thread each, through an
     * {@link InProcessCollective}: every rank holds a replica of the network (the same seed: the same weights), each
     * global batch of {@code cfg.batchSize()} rows is cut into K contiguous slices (rank r gets rows
     * [⌊B·r/K⌋, ⌊B·(r+1)/K⌋)), batch norm is synchronized ({@link TrainBackend#syncBatchNorm}), the loss gradient is
     * that of the global batch's mean, and the weight and bias gradients are summed across the ranks in rank order, so
     * every replica takes the step a single device takes on the whole batch (up to float rounding: sums split
     * differently). The batch order is that of {@link #train}; a final partial batch needs at least max(2, K) rows (one
     * per rank) and is dropped otherwise. Rank 0 evaluates after each epoch and reports to the listener. With one
     * backend this is {@link #train}. Float32 only.
     *
     * @param backends one per rank, each on its own device (or CPU backend); not closed here
     */
    public static RunResult trainDataParallel(List<TrainBackend> backends, Dataset.Split split, TrainConfig cfg,
                                              String label, TrainListener listener) {
        if (backends == null || backends.isEmpty()) {
            throw new IllegalArgumentException("backends: expected at least one, got " + backends);
        }
        int k = backends.size();
        if (k == 1) return train(backends.get(0), split, cfg, label, listener);
        if (cfg.dtype() != DType.FLOAT32) {
            throw new IllegalArgumentException("dtype: data-parallel training supports float32 only, got "
                    + cfg.dtype());
        }
        Dataset train = split.train();
        Dataset test = split.test();
        checkSplit(train, test);
        int n = train.rows();
        if (cfg.batchSize() < k) {
            throw new IllegalArgumentException("batchSize: expected at least one row per device (" + k + "), got "
                    + cfg.batchSize());
        }
        int full = n / cfg.batchSize();
        int rest = n % cfg.batchSize();
        int batches = full + (rest >= Math.max(2, k) ? 1 : 0);
        if (batches == 0) {
            throw new IllegalArgumentException("train: expected at least " + Math.max(2, k) + " rows, got " + n);
        }
        long start = System.nanoTime();
        List<Collective> group = InProcessCollective.group(k);
        List<EpochMetrics> history = new ArrayList<>();
        ExecutorService pool = Executors.newFixedThreadPool(k, r -> {
            Thread t = new Thread(r, "train-rank");
            t.setDaemon(true);
            return t;
        });
        try {
            List<Future<?>> ranks = new ArrayList<>();
            for (int r = 0; r < k; r++) {
                int rank = r;
                ranks.add(pool.submit(() -> {
                    try {
                        runRank(rank, backends.get(rank), group.get(rank), train, test, cfg, batches, label,
                                rank == 0 ? listener : TrainListener.NONE, history);
                    } catch (RuntimeException | Error e) {
                        group.get(rank).close();   // breaks the group: the other ranks fail now, not at a timeout
                        throw e;
                    }
                    return null;
                }));
            }
            rethrowFirst(ranks);
        } finally {
            pool.shutdownNow();
        }
        return new RunResult(label, cfg, history, (System.nanoTime() - start) / 1e9, 0, 1f);
    }

    /** One rank's loop; rank 0 (the one with a real listener) also evaluates and records the epochs. */
    private static void runRank(int rank, TrainBackend backend, Collective collective, Dataset train, Dataset test,
                                TrainConfig cfg, int batches, String label, TrainListener listener,
                                List<EpochMetrics> history) {
        int k = collective.worldSize();
        int n = train.rows();
        int f = train.features();
        try (Mlp model = new Mlp(backend, f, cfg.hidden(), train.classes(), cfg.batchNorm(), cfg.seed(), cfg.bnEps(),
                cfg.bnMomentum(), DType.FLOAT32, collective)) {
            Random order = new Random(cfg.seed() ^ 0x5DEECE66DL);   // the same order as train(): see there
            int[] index = Shuffle.identity(n);
            for (int epoch = 1; epoch <= cfg.epochs(); epoch++) {
                listener.epochStarted(label, epoch, cfg.epochs(), batches);
                Shuffle.shuffle(index, order);
                long t0 = System.nanoTime();
                double lossSum = 0;
                long correct = 0;
                int seen = 0;
                for (int b = 0; b < batches; b++) {
                    int from = b * cfg.batchSize();
                    int rows = Math.min(n, from + cfg.batchSize()) - from;
                    int lo = from + (int) ((long) rows * rank / k);
                    int hi = from + (int) ((long) rows * (rank + 1) / k);
                    float[] xb = new float[(hi - lo) * f];
                    int[] yb = new int[hi - lo];
                    train.gather(index, lo, hi, xb, yb);
                    Mlp.StepResult r = model.computeGradients(xb, yb, 1f, rows);
                    model.sgdStep(cfg.lr(), cfg.momentum(), cfg.weightDecay());
                    // The batch's loss and hits over all ranks, added in rank order (the same on every rank).
                    double[] all = new double[2 * k];
                    collective.allGather(new double[] {r.lossSum(), r.correct()}, all);
                    double batchLoss = 0;
                    for (int q = 0; q < k; q++) {
                        batchLoss += all[2 * q];
                        correct += (long) all[2 * q + 1];
                    }
                    lossSum += batchLoss;
                    seen += rows;
                    listener.batchDone(label, b + 1, batches, batchLoss / rows);
                }
                if (rank == 0) {
                    double seconds = (System.nanoTime() - t0) / 1e9;
                    Mlp.Evaluation ev = model.evaluate(test.x(), test.labels(), EVAL_CHUNK);
                    EpochMetrics m = new EpochMetrics(epoch, lossSum / seen, (double) correct / seen, ev.loss(),
                            ev.accuracy(), ev.deadFraction(), seconds);
                    history.add(m);
                    listener.epochFinished(label, m, cfg.epochs());
                }
            }
        }
    }

    private static void rethrowFirst(List<Future<?>> ranks) {
        RuntimeException first = null;
        for (Future<?> f : ranks) {
            try {
                f.get();
            } catch (ExecutionException e) {
                Throwable c = e.getCause();
                // The first rank that failed for a reason of its own, not because the group broke under it.
                boolean consequence = c instanceof CollectiveException;
                RuntimeException r = c instanceof RuntimeException re ? re : new IllegalStateException(c);
                if (first == null || (first instanceof CollectiveException && !consequence)) first = r;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while training", e);
            }
        }
        if (first != null) throw first;
    }

    private static void checkSplit(Dataset train, Dataset test) {
        if (train.features() != test.features() || train.classes() != test.classes()) {
            throw new IllegalArgumentException("split: train has " + train.features() + " features and "
                    + train.classes() + " classes, test has " + test.features() + " and " + test.classes());
        }
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
        checkSplit(train, test);
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
                    listener.batchDone(label, b + 1, batches, r.lossSum() / rows);
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
