package io.github.batchnorm4j;

import java.util.Arrays;
import java.util.Objects;

/**
 * The stateful batch-norm layer: learnable gamma/beta, running statistics, {@code num_batches_tracked}, a training
 * flag, and the backend that computes. PyTorch's {@code nn.BatchNorm*d} semantics (see {@link BatchNormOps} and the
 * README's table).
 *
 * <pre>{@code
 * try (BatchNormOps cpu = Backends.open("cpu")) {
 *     BatchNorm bn = BatchNorm.builder(64).momentum(0.1).build(cpu);
 *     Shape shape = Shape.channelsFirst(32, 64, 56, 56);
 *     float[] y = bn.forward(shape, x);            // training mode: batch statistics, running stats updated
 *     float[] dx = bn.backward(shape, x, dy);      // fills gammaGrad() and betaGrad()
 *     bn.eval();
 *     float[] yEval = bn.forward(shape, x);        // running statistics
 * }
 * }</pre>
 *
 * <p>State changes only when a call succeeds: running statistics, {@code numBatchesTracked} and the saved statistics
 * are committed after the backend returned. Parameter and statistic arrays returned by the accessors are the live
 * arrays (an optimizer updates {@link #gamma()} in place); the layer does not own the backend and never closes it.
 * Not thread-safe.
 */
public final class BatchNorm {
    private final int channels;
    private final BatchNormOptions options;
    private final BatchNormOps ops;

    private final float[] gamma;
    private final float[] beta;
    private final float[] gammaGrad;
    private final float[] betaGrad;
    private final float[] runningMean;
    private final float[] runningVar;
    private long numBatchesTracked;
    private boolean training = true;

    private final float[] saveMean;
    private final float[] saveInvstd;
    private Shape savedShape;

    private BatchNorm(int channels, BatchNormOptions options, BatchNormOps ops) {
        if (channels < 1) throw new IllegalArgumentException("numFeatures: expected >= 1, got " + channels);
        this.channels = channels;
        if (ops == null) throw new IllegalArgumentException("backend must not be null");
        this.options = Objects.requireNonNull(options, "options");
        this.ops = ops;
        if (options.affine()) {
            gamma = new float[channels];
            Arrays.fill(gamma, 1f);
            beta = new float[channels];
            gammaGrad = new float[channels];
            betaGrad = new float[channels];
        } else {
            gamma = beta = gammaGrad = betaGrad = null;
        }
        if (options.trackRunningStats()) {
            runningMean = new float[channels];
            runningVar = new float[channels];
            Arrays.fill(runningVar, 1f);
        } else {
            runningMean = runningVar = null;
        }
        saveMean = new float[channels];
        saveInvstd = new float[channels];
    }

    /** A builder for a layer over {@code numFeatures} channels with default options. */
    public static Builder builder(int numFeatures) {
        return new Builder(numFeatures);
    }

    /** Switches to training mode (batch statistics; running statistics updated). */
    public BatchNorm train() {
        training = true;
        return this;
    }

    /** Switches to eval mode (running statistics, or batch statistics when they are not tracked). */
    public BatchNorm eval() {
        training = false;
        return this;
    }

    public boolean isTraining() {
        return training;
    }

    public int channels() {
        return channels;
    }

    public BatchNormOptions options() {
        return options;
    }

    /** The backend computing this layer. */
    public BatchNormOps backend() {
        return ops;
    }

    /** Live gamma (scale) array, or null when affine is off. */
    public float[] gamma() {
        return gamma;
    }

    /** Live beta (shift) array, or null when affine is off. */
    public float[] beta() {
        return beta;
    }

    /** Gradient of the loss w.r.t. gamma from the last {@link #backward}, or null when affine is off. */
    public float[] gammaGrad() {
        return gammaGrad;
    }

    /** Gradient of the loss w.r.t. beta from the last {@link #backward}, or null when affine is off. */
    public float[] betaGrad() {
        return betaGrad;
    }

    /** Live running mean (initially 0), or null when running statistics are not tracked. */
    public float[] runningMean() {
        return runningMean;
    }

    /** Live running (unbiased) variance (initially 1), or null when not tracked. */
    public float[] runningVar() {
        return runningVar;
    }

    /** Number of training batches seen (PyTorch's {@code num_batches_tracked}). */
    public long numBatchesTracked() {
        return numBatchesTracked;
    }

    /** Sets num_batches_tracked (e.g. when loading a checkpoint); must be ≥ 0. */
    public void setNumBatchesTracked(long n) {
        if (n < 0) throw new IllegalArgumentException("numBatchesTracked: expected >= 0, got " + n);
        numBatchesTracked = n;
    }

    /** Forward into a new array; see {@link #forward(Shape, float[], float[])}. */
    public float[] forward(Shape shape, float[] x) {
        checkShape(shape);
        float[] y = new float[shape.elementCountAsInt()];
        forward(shape, x, y);
        return y;
    }

    /**
     * Forward pass into {@code y}. Training mode normalizes with batch statistics, saves mean/invstd for
     * {@link #backward}, and (when tracked) updates running statistics and numBatchesTracked. Eval mode uses the
     * running statistics, or batch statistics when they are not tracked.
     */
    public void forward(Shape shape, float[] x, float[] y) {
        checkShape(shape);
        checkNotOwn("y", y);
        if (training || runningMean == null) {
            float[] newMean = null;
            float[] newVar = null;
            double m = 0;
            if (training && runningMean != null) {
                newMean = runningMean.clone();
                newVar = runningVar.clone();
                m = options.momentumFactor(numBatchesTracked + 1);
            }
            float[] sm = new float[channels];
            float[] si = new float[channels];
            ops.forwardTraining(shape, x, gamma, beta, options.eps(), newMean, newVar, m, y, sm, si);
            // Commit only after the backend succeeded. The batch statistics are saved in eval mode without running
            // statistics too: that forward normalized with them, so its backward must use them (as PyTorch does).
            System.arraycopy(sm, 0, saveMean, 0, channels);
            System.arraycopy(si, 0, saveInvstd, 0, channels);
            savedShape = shape;
            if (newMean != null) {
                System.arraycopy(newMean, 0, runningMean, 0, channels);
                System.arraycopy(newVar, 0, runningVar, 0, channels);
                numBatchesTracked++;
            }
        } else {
            ops.forwardInference(shape, x, gamma, beta, runningMean, runningVar, options.eps(), y);
        }
    }

    /** Backward into a new dx array; see {@link #backward(Shape, float[], float[], float[])}. */
    public float[] backward(Shape shape, float[] x, float[] dy) {
        checkShape(shape);
        float[] dx = new float[shape.elementCountAsInt()];
        backward(shape, x, dy, dx);
        return dx;
    }

    /**
     * Backward pass: writes dx and (affine) overwrites {@link #gammaGrad()} and {@link #betaGrad()}. In training mode
     * (and in eval mode without running statistics) it reuses the batch statistics saved by the last forward, which
     * must have had the same shape and x. In eval mode with running statistics it uses the frozen statistics.
     */
    public void backward(Shape shape, float[] x, float[] dy, float[] dx) {
        checkShape(shape);
        checkNotOwn("dx", dx);
        float[] dg = gammaGrad == null ? null : new float[channels];
        float[] db = betaGrad == null ? null : new float[channels];
        if (training || runningMean == null) {
            if (savedShape == null) {
                throw new IllegalStateException("backward in training mode needs a training forward first");
            }
            if (!savedShape.equals(shape)) {
                throw new IllegalArgumentException("shape: expected the shape of the last training forward "
                        + savedShape + ", got " + shape);
            }
            ops.backwardTraining(shape, x, dy, gamma, saveMean, saveInvstd, dx, dg, db);
        } else {
            ops.backwardInference(shape, x, dy, gamma, runningMean, runningVar, options.eps(), dx, dg, db);
        }
        if (dg != null) System.arraycopy(dg, 0, gammaGrad, 0, channels);
        if (db != null) System.arraycopy(db, 0, betaGrad, 0, channels);
    }

    /** A copy of the mean saved by the last training forward. */
    public float[] savedMean() {
        return saveMean.clone();
    }

    /** A copy of the inverse standard deviation saved by the last training forward. */
    public float[] savedInvstd() {
        return saveInvstd.clone();
    }

    /**
     * An output must not be one of this layer's live arrays: the layer rewrites them after the backend wrote the
     * output (running statistics, gradients), and the output would overwrite a parameter.
     */
    private void checkNotOwn(String name, float[] out) {
        if (out == null) return;
        String[] names = {"gamma()", "beta()", "gammaGrad()", "betaGrad()", "runningMean()", "runningVar()"};
        float[][] own = {gamma, beta, gammaGrad, betaGrad, runningMean, runningVar};
        for (int i = 0; i < own.length; i++) {
            if (out == own[i]) {
                throw new IllegalArgumentException(name + " must not be this layer's " + names[i]
                        + " array: the layer keeps its own state there; pass an array of your own");
            }
        }
    }

    private void checkShape(Shape shape) {
        if (shape == null) throw new IllegalArgumentException("shape must not be null");
        if (shape.channels() != channels) {
            throw new IllegalArgumentException("shape: expected " + channels + " channels, got " + shape.channels()
                    + " in " + shape);
        }
    }

    /** Builder of {@link BatchNorm}; options default as in {@link BatchNormOptions}. */
    public static final class Builder {
        private final int channels;
        private final BatchNormOptions.Builder options = BatchNormOptions.builder();

        private Builder(int channels) {
            this.channels = channels;
        }

        public Builder eps(double eps) {
            options.eps(eps);
            return this;
        }

        public Builder momentum(double m) {
            options.momentum(m);
            return this;
        }

        public Builder kerasMomentum(double decay) {
            options.kerasMomentum(decay);
            return this;
        }

        public Builder cumulativeMomentum() {
            options.cumulativeMomentum();
            return this;
        }

        public Builder affine(boolean affine) {
            options.affine(affine);
            return this;
        }

        public Builder trackRunningStats(boolean track) {
            options.trackRunningStats(track);
            return this;
        }

        /** Builds a layer computing on {@code backend} (not owned by the layer). */
        public BatchNorm build(BatchNormOps backend) {
            return new BatchNorm(channels, options.build(), backend);
        }
    }
}
