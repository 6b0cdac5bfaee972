package io.github.batchnorm4j.train;

import java.util.List;

/**
 * Dynamic loss scaling for float16 training, as PyTorch's {@code torch.cuda.amp.GradScaler} does it with its defaults:
 * the loss gradient is multiplied by {@link #scale()} (initially 2^16) so that small gradients do not flush to zero in
 * float16; before the optimizer step every float32 gradient is multiplied by 1/scale and checked; if any is Inf or
 * NaN (the scaled gradients overflowed float16) the step is skipped and the scale halved; after
 * {@link #GROWTH_INTERVAL} good steps in a row the scale doubles.
 *
 * <p>bfloat16 has float32's exponent range and needs no scaling (PyTorch's autocast does not use a scaler for it).
 * Not thread-safe; one per training run.
 */
public final class GradScaler {
    /** PyTorch's init_scale. */
    public static final float INIT_SCALE = 65536f;
    /** PyTorch's growth_factor. */
    public static final float GROWTH_FACTOR = 2f;
    /** PyTorch's backoff_factor. */
    public static final float BACKOFF_FACTOR = 0.5f;
    /** PyTorch's growth_interval: good steps in a row before the scale grows. */
    public static final int GROWTH_INTERVAL = 2000;

    private float scale;
    private final int growthInterval;
    private int goodSteps;
    private int skippedSteps;
    private int steps;

    /** PyTorch's defaults. */
    public GradScaler() {
        this(INIT_SCALE, GROWTH_INTERVAL);
    }

    /** A given initial scale and growth interval (tests use small ones). */
    public GradScaler(float initScale, int growthInterval) {
        if (!(initScale > 0) || Float.isInfinite(initScale)) {
            throw new IllegalArgumentException("initScale: expected a finite value > 0, got " + initScale);
        }
        if (growthInterval < 1) throw new IllegalArgumentException("growthInterval: expected >= 1, got " + growthInterval);
        this.scale = initScale;
        this.growthInterval = growthInterval;
    }

    /** The factor the loss gradient is multiplied by in the current step. */
    public float scale() {
        return scale;
    }

    /** Steps skipped so far because a gradient was Inf or NaN. */
    public int skippedSteps() {
        return skippedSteps;
    }

    /** Steps seen so far (taken and skipped). */
    public int steps() {
        return steps;
    }

    /**
     * Unscales the gradients in place and updates the scale: returns true when the optimizer step should be taken (all
     * gradients finite), false when it must be skipped (the scale has been halved then).
     */
    public boolean unscaleAndUpdate(TrainBackend backend, List<Tensor> grads) {
        steps++;
        boolean finite = backend.unscale(grads, 1f / scale);
        if (!finite) {
            scale *= BACKOFF_FACTOR;
            goodSteps = 0;
            skippedSteps++;
            return false;
        }
        if (++goodSteps == growthInterval) {
            scale *= GROWTH_FACTOR;
            goodSteps = 0;
        }
        return true;
    }
}
