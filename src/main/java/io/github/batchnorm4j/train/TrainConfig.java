package io.github.batchnorm4j.train;

import io.github.batchnorm4j.DType;
import java.util.Arrays;

/**
 * Hyper-parameters of one training run.
 *
 * @param hidden      hidden layer widths
 * @param batchNorm   batch norm before every hidden ReLU
 * @param epochs      passes over the training set (≥ 1)
 * @param batchSize   rows per SGD step (≥ 2: batch norm needs two values per channel)
 * @param lr          learning rate (&gt; 0)
 * @param momentum    SGD momentum in [0, 1)
 * @param weightDecay L2 weight decay (≥ 0), applied to every parameter as PyTorch's SGD does
 * @param seed        seeds the initial weights and the batch order
 * @param bnEps       batch-norm epsilon
 * @param bnMomentum  batch-norm running-statistics momentum (weight of the new batch)
 * @param dtype       the storage type of the activations and their gradients between layers: float32, or float16 /
 *                    bfloat16 for mixed precision (float32 master weights and per-channel tensors, float32
 *                    arithmetic, dynamic loss scaling for float16; see {@link Mlp} and {@link GradScaler})
 */
public record TrainConfig(int[] hidden, boolean batchNorm, int epochs, int batchSize, float lr, float momentum,
                          float weightDecay, long seed, double bnEps, double bnMomentum, DType dtype) {
    /** The defaults of {@code batchnorm4j train}: 256-256 hidden, batch norm, 20 epochs, batch 64, lr 0.05, m 0.9. */
    public static TrainConfig defaults() {
        return new TrainConfig(new int[] {256, 256}, true, 20, 64, 0.05f, 0.9f, 0f, 42L, 1e-5, 0.1);
    }

    /** A float32 configuration (activations in float32). */
    public TrainConfig(int[] hidden, boolean batchNorm, int epochs, int batchSize, float lr, float momentum,
                       float weightDecay, long seed, double bnEps, double bnMomentum) {
        this(hidden, batchNorm, epochs, batchSize, lr, momentum, weightDecay, seed, bnEps, bnMomentum, DType.FLOAT32);
    }

    /** Validates every field; the message names the field with expected and actual value. */
    public TrainConfig {
        if (hidden == null) throw new IllegalArgumentException("hidden must not be null");
        hidden = hidden.clone();
        for (int h : hidden) {
            if (h < 1) throw new IllegalArgumentException("hidden: expected widths >= 1, got " + Arrays.toString(hidden));
        }
        if (epochs < 1) throw new IllegalArgumentException("epochs: expected >= 1, got " + epochs);
        if (batchSize < 2) throw new IllegalArgumentException("batchSize: expected >= 2, got " + batchSize);
        if (!(lr > 0) || Float.isInfinite(lr)) throw new IllegalArgumentException("lr: expected a finite value > 0, got " + lr);
        if (!(momentum >= 0 && momentum < 1)) throw new IllegalArgumentException("momentum: expected [0, 1), got " + momentum);
        if (!(weightDecay >= 0) || Float.isInfinite(weightDecay)) {
            throw new IllegalArgumentException("weightDecay: expected a finite value >= 0, got " + weightDecay);
        }
        if (dtype == null) throw new IllegalArgumentException("dtype must not be null");
    }

    @Override
    public int[] hidden() {
        return hidden.clone();
    }

    public TrainConfig withBatchNorm(boolean bn) {
        return new TrainConfig(hidden, bn, epochs, batchSize, lr, momentum, weightDecay, seed, bnEps, bnMomentum,
                dtype);
    }

    public TrainConfig withLr(float newLr) {
        return new TrainConfig(hidden, batchNorm, epochs, batchSize, newLr, momentum, weightDecay, seed, bnEps,
                bnMomentum, dtype);
    }

    public TrainConfig withEpochs(int n) {
        return new TrainConfig(hidden, batchNorm, n, batchSize, lr, momentum, weightDecay, seed, bnEps, bnMomentum,
                dtype);
    }

    /** The same run with activations stored in {@code t}. */
    public TrainConfig withDtype(DType t) {
        return new TrainConfig(hidden, batchNorm, epochs, batchSize, lr, momentum, weightDecay, seed, bnEps,
                bnMomentum, t);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TrainConfig c && Arrays.equals(c.hidden, hidden) && c.batchNorm == batchNorm
                && c.epochs == epochs && c.batchSize == batchSize && c.lr == lr && c.momentum == momentum
                && c.weightDecay == weightDecay && c.seed == seed && c.bnEps == bnEps && c.bnMomentum == bnMomentum
                && c.dtype == dtype;
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(hidden) * 31 + Long.hashCode(seed) + Float.hashCode(lr);
    }

    @Override
    public String toString() {
        return "TrainConfig{hidden=" + Arrays.toString(hidden) + ", batchNorm=" + batchNorm + ", epochs=" + epochs
                + ", batchSize=" + batchSize + ", lr=" + lr + ", momentum=" + momentum + ", weightDecay=" + weightDecay
                + ", seed=" + seed + ", dtype=" + dtype + "}";
    }
}
