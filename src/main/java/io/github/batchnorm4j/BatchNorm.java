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

    private final Activation activation;
    private int[] mask = new int[0];    // ReLU: the mask of the last forward, for backward
    private int[] spareMask = new int[0];
    private Shape maskShape;            // the shape of that forward (null: none yet)
    private boolean maskTraining;       // whether that forward used batch statistics

    private BatchNorm(int channels, BatchNormOptions options, BatchNormOps ops, Activation activation) {
        if (channels < 1) throw new IllegalArgumentException("numFeatures: expected >= 1, got " + channels);
        this.channels = channels;
        if (ops == null) throw new IllegalArgumentException("backend must not be null");
        if (activation == null) throw new IllegalArgumentException("activation must not be null");
        this.activation = activation;
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

    /** What follows the batch norm in this layer's calls: {@link Activation#NONE} or {@link Activation#RELU}. */
    public Activation activation() {
        return activation;
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
        forward(shape, x, null, y);
    }

    /**
     * Forward pass with a residual (ReLU layers only): y = relu(bn(x) + z), the fused batch norm + add + ReLU of
     * ResNet blocks; {@code z} null is {@link #forward(Shape, float[], float[])}. The ReLU mask of this call is kept
     * for {@link #backward(Shape, float[], float[], float[], float[])}.
     *
     * @throws IllegalStateException when z is given to a layer without activation
     */
    public void forward(Shape shape, float[] x, float[] z, float[] y) {
        checkShape(shape);
        checkNotOwn("y", y);
        if (z != null && activation != Activation.RELU) {
            throw new IllegalStateException("a residual z needs a ReLU layer (builder().activation(Activation.RELU)):"
                    + " this layer has activation " + activation);
        }
        int[] m = activation == Activation.RELU ? maskFor(shape) : null;
        boolean batchStatistics = training || runningMean == null;
        if (batchStatistics) {
            float[] newMean = null;
            float[] newVar = null;
            double mom = 0;
            if (training && runningMean != null) {
                newMean = runningMean.clone();
                newVar = runningVar.clone();
                mom = options.momentumFactor(numBatchesTracked + 1);
            }
            float[] sm = new float[channels];
            float[] si = new float[channels];
            if (m != null) {
                ops.forwardTrainingRelu(shape, x, z, gamma, beta, options.eps(), newMean, newVar, mom, y, m, sm, si);
            } else {
                ops.forwardTraining(shape, x, gamma, beta, options.eps(), newMean, newVar, mom, y, sm, si);
            }
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
        } else if (m != null) {
            ops.forwardInferenceRelu(shape, x, z, gamma, beta, runningMean, runningVar, options.eps(), y, m);
        } else {
            ops.forwardInference(shape, x, gamma, beta, runningMean, runningVar, options.eps(), y);
        }
        if (m != null) {          // committed after the backend succeeded, like the statistics
            spareMask = mask;
            mask = m;
            maskShape = shape;
            maskTraining = batchStatistics;
        }
    }

    /**
     * The array this forward writes its mask into: the spare of two, so that a failing call leaves the last forward's
     * mask intact (the two swap when the call succeeds) and a training loop allocates nothing per step.
     */
    private int[] maskFor(Shape shape) {
        int words = ReluMask.wordsAsInt(shape.elementCount());
        if (spareMask.length != words) spareMask = new int[words];
        return spareMask;
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
        backward(shape, x, dy, dx, null);
    }

    /**
     * Backward pass of a ReLU layer: dy is the gradient of y = relu(bn(x) + z); the mask of the last forward (same
     * shape, same mode) gates it, dx and the parameter gradients are batch norm's of the gated gradient, and
     * {@code dz} (when given) receives the residual's gradient, the gated dy. Without activation, {@code dz} must be
     * null and this is {@link #backward(Shape, float[], float[], float[])}.
     *
     * @throws IllegalStateException when no forward of this shape and mode preceded it (ReLU layers), or dz is
     *                               given to a layer without activation
     */
    public void backward(Shape shape, float[] x, float[] dy, float[] dx, float[] dz) {
        checkShape(shape);
        checkNotOwn("dx", dx);
        checkNotOwn("dz", dz);
        boolean relu = activation == Activation.RELU;
        if (dz != null && !relu) {
            throw new IllegalStateException("dz needs a ReLU layer (builder().activation(Activation.RELU)): this"
                    + " layer has activation " + activation);
        }
        boolean batchStatistics = training || runningMean == null;
        if (relu && (maskShape == null || !maskShape.equals(shape) || maskTraining != batchStatistics)) {
            throw new IllegalStateException("backward of a ReLU layer needs the mask of a " + (batchStatistics
                    ? "training" : "eval") + " forward of shape " + shape + " first; the last forward was "
                    + (maskShape == null ? "none" : (maskTraining ? "training " : "eval ") + maskShape));
        }
        float[] dg = gammaGrad == null ? null : new float[channels];
        float[] db = betaGrad == null ? null : new float[channels];
        if (batchStatistics) {
            if (savedShape == null) {
                throw new IllegalStateException("backward in training mode needs a training forward first");
            }
            if (!savedShape.equals(shape)) {
                throw new IllegalArgumentException("shape: expected the shape of the last training forward "
                        + savedShape + ", got " + shape);
            }
            if (relu) ops.backwardTrainingRelu(shape, x, dy, mask, gamma, saveMean, saveInvstd, dx, dz, dg, db);
            else ops.backwardTraining(shape, x, dy, gamma, saveMean, saveInvstd, dx, dg, db);
        } else if (relu) {
            ops.backwardInferenceRelu(shape, x, dy, mask, gamma, runningMean, runningVar, options.eps(), dx, dz, dg,
                    db);
        } else {
            ops.backwardInference(shape, x, dy, gamma, runningMean, runningVar, options.eps(), dx, dg, db);
        }
        if (dg != null) System.arraycopy(dg, 0, gammaGrad, 0, channels);
        if (db != null) System.arraycopy(db, 0, betaGrad, 0, channels);
    }

    /** A copy of the ReLU mask of the last forward ({@link ReluMask} layout), or null when there is none. */
    public int[] lastMask() {
        return maskShape == null ? null : mask.clone();
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
        private Activation activation = Activation.NONE;

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

        /**
         * What follows the batch norm (default {@link Activation#NONE}): {@link Activation#RELU} makes every forward
         * the fused y = relu(bn(x) + z) and every backward go through the forward's ReLU mask.
         */
        public Builder activation(Activation a) {
            if (a == null) throw new IllegalArgumentException("activation must not be null");
            activation = a;
            return this;
        }

        /** Builds a layer computing on {@code backend} (not owned by the layer). */
        public BatchNorm build(BatchNormOps backend) {
            return new BatchNorm(channels, options.build(), backend, activation);
        }
    }
}
