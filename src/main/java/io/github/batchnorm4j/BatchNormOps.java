package io.github.batchnorm4j;

/**
 * The functional batch-norm operations that every backend (CPU, our CUDA kernels, cuDNN, the PTX emulator) implements,
 * on host arrays. Stateless apart from backend resources; the stateful layer is {@link BatchNorm}.
 *
 * <p>Conventions for every method (docs/design.md §1):
 * <ul>
 *   <li>{@code x}, {@code y}, {@code dy}, {@code dx} hold {@code shape.elementCount()} floats in the memory order of
 *       {@code shape.layout()}; per-channel arrays hold {@code shape.channels()} floats.</li>
 *   <li>{@code gamma == null} means gamma = 1 and {@code beta == null} means beta = 0 (affine off).</li>
 *   <li>Outputs are overwritten, never accumulated into. Only the arrays documented as outputs are modified.</li>
 *   <li>Inputs are validated before anything is written; a failing call changes nothing and throws
 *       {@link IllegalArgumentException} naming the argument with the expected and actual value.</li>
 *   <li>NaN or Inf in x propagate to the outputs like any arithmetic (to every element of that channel in training
 *       mode, since they enter the mean).</li>
 *   <li>Accumulation is in at least float32 with Welford/Chan merging or exact double sums; never E[x²] − E[x]².</li>
 * </ul>
 *
 * <p><b>16-bit activations.</b> Each operation also takes x, y, dy and dx as {@code short[]} bit patterns of a
 * {@link DType} (float16 or bfloat16) while every per-channel array stays float32: PyTorch's mixed-type batch norm.
 * The result is the float32 computation on the exactly widened inputs, with y and dx rounded once to the storage type
 * (see {@link DType}). The same validation applies; {@code dtype} must be {@link DType#FLOAT16} or
 * {@link DType#BFLOAT16} ("dtype" is named otherwise).
 */
public interface BatchNormOps extends AutoCloseable {

    /** The backend's name: "cpu", "cuda", "cudnn" or "emulator". */
    String name();

    /**
     * Per-channel partial statistics of x, to be merged with {@link ChannelStatistics#merge} (micro-batches, several
     * devices) and applied with {@link #normalize}.
     */
    ChannelStatistics statistics(Shape shape, float[] x);

    /**
     * Training-mode forward: normalize with the batch statistics.
     * <pre>
     * mean = Σx/M, var = Σ(x − mean)²/M, invstd = 1/sqrt(var + eps)
     * y = (x − mean)·invstd·gamma + beta
     * runningMean ← (1 − m)·runningMean + m·mean
     * runningVar  ← (1 − m)·runningVar  + m·var·M/(M − 1)
     * </pre>
     *
     * @param runningMean in/out, or null with runningVar null to leave running statistics alone
     * @param momentum    m in [0, 1], the weight of this batch (the caller resolves cumulative momentum to
     *                    1/num_batches_tracked); ignored without running statistics
     * @param y           output
     * @param saveMean    output: mean per channel (for backward)
     * @param saveInvstd  output: invstd per channel (for backward)
     * @throws IllegalArgumentException also when M = 1 ("expected more than 1 value per channel when training")
     */
    void forwardTraining(Shape shape, float[] x, float[] gamma, float[] beta, double eps,
                         float[] runningMean, float[] runningVar, double momentum,
                         float[] y, float[] saveMean, float[] saveInvstd);

    /**
     * Eval-mode forward with running statistics: y = (x − runningMean)/sqrt(runningVar + eps)·gamma + beta.
     *
     * @param y output
     */
    void forwardInference(Shape shape, float[] x, float[] gamma, float[] beta,
                          float[] runningMean, float[] runningVar, double eps, float[] y);

    /**
     * Applies given statistics: y = (x − mean)·invstd·gamma + beta (computed as x·scale + shift). With statistics
     * merged from micro-batches this is distributed batch norm's normalizing step.
     *
     * @param y output
     */
    void normalize(Shape shape, float[] x, float[] gamma, float[] beta, float[] mean, float[] invstd, float[] y);

    /**
     * Training-mode backward, reusing the saved statistics of the forward pass (xhat = (x − saveMean)·saveInvstd):
     * <pre>
     * dbeta = Σdy, dgamma = Σ dy·xhat
     * dx = gamma·invstd/M · (M·dy − dbeta − xhat·dgamma)
     * </pre>
     *
     * @param dx     output
     * @param dgamma output, or null when not wanted
     * @param dbeta  output, or null when not wanted
     */
    void backwardTraining(Shape shape, float[] x, float[] dy, float[] gamma, float[] saveMean, float[] saveInvstd,
                          float[] dx, float[] dgamma, float[] dbeta);

    /**
     * Eval-mode backward with frozen running statistics (fine-tuning): invstd = 1/sqrt(runningVar + eps),
     * dx = dy·gamma·invstd, dgamma = Σ dy·(x − runningMean)·invstd, dbeta = Σdy.
     *
     * @param dx     output
     * @param dgamma output, or null when not wanted
     * @param dbeta  output, or null when not wanted
     */
    void backwardInference(Shape shape, float[] x, float[] dy, float[] gamma, float[] runningMean, float[] runningVar,
                           double eps, float[] dx, float[] dgamma, float[] dbeta);

    // ---- 16-bit activations --------------------------------------------------------------------------------------
    // The defaults are correct for any backend: validate, widen x and dy exactly, run the float32 operation into
    // scratch arrays, round y or dx once. They cost two float32 scratch tensors; backends with native 16-bit kernels
    // override them (AbstractBatchNormOps routes them to do… methods).

    /** {@link #statistics(Shape, float[])} of 16-bit x (exact: the statistics of the widened values). */
    default ChannelStatistics statistics(Shape shape, DType dtype, short[] x) {
        ArgumentChecks.sixteenBit(dtype);
        ArgumentChecks.HOST_ANY.statistics(shape, x);
        return statistics(shape, dtype.decode(x));
    }

    /**
     * {@link #forwardTraining(Shape, float[], float[], float[], double, float[], float[], double, float[], float[],
     * float[])} with x and y in {@code dtype}; y is rounded once to {@code dtype}, the statistics are float32.
     */
    default void forwardTraining(Shape shape, DType dtype, short[] x, float[] gamma, float[] beta, double eps,
                                 float[] runningMean, float[] runningVar, double momentum,
                                 short[] y, float[] saveMean, float[] saveInvstd) {
        ArgumentChecks.sixteenBit(dtype);
        ArgumentChecks.HOST_ANY.forwardTraining(shape, x, gamma, beta, eps, runningMean, runningVar, momentum, y,
                saveMean, saveInvstd);
        float[] y32 = new float[x.length];
        forwardTraining(shape, dtype.decode(x), gamma, beta, eps, runningMean, runningVar, momentum, y32, saveMean,
                saveInvstd);
        dtype.encode(y32, y);
    }

    /** {@link #forwardInference(Shape, float[], float[], float[], float[], float[], double, float[])} in {@code dtype}. */
    default void forwardInference(Shape shape, DType dtype, short[] x, float[] gamma, float[] beta,
                                  float[] runningMean, float[] runningVar, double eps, short[] y) {
        ArgumentChecks.sixteenBit(dtype);
        ArgumentChecks.HOST_ANY.forwardInference(shape, x, gamma, beta, runningMean, runningVar, eps, y);
        float[] y32 = new float[x.length];
        forwardInference(shape, dtype.decode(x), gamma, beta, runningMean, runningVar, eps, y32);
        dtype.encode(y32, y);
    }

    /** {@link #normalize(Shape, float[], float[], float[], float[], float[], float[])} in {@code dtype}. */
    default void normalize(Shape shape, DType dtype, short[] x, float[] gamma, float[] beta, float[] mean,
                           float[] invstd, short[] y) {
        ArgumentChecks.sixteenBit(dtype);
        ArgumentChecks.HOST_ANY.normalize(shape, x, gamma, beta, mean, invstd, y);
        float[] y32 = new float[x.length];
        normalize(shape, dtype.decode(x), gamma, beta, mean, invstd, y32);
        dtype.encode(y32, y);
    }

    /**
     * {@link #backwardTraining(Shape, float[], float[], float[], float[], float[], float[], float[], float[])} with x,
     * dy and dx in {@code dtype}; dx is rounded once, dgamma and dbeta are float32.
     */
    default void backwardTraining(Shape shape, DType dtype, short[] x, short[] dy, float[] gamma, float[] saveMean,
                                  float[] saveInvstd, short[] dx, float[] dgamma, float[] dbeta) {
        ArgumentChecks.sixteenBit(dtype);
        ArgumentChecks.HOST_ANY.backwardTraining(shape, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
        float[] dx32 = new float[x.length];
        backwardTraining(shape, dtype.decode(x), dtype.decode(dy), gamma, saveMean, saveInvstd, dx32, dgamma, dbeta);
        dtype.encode(dx32, dx);
    }

    /**
     * {@link #backwardInference(Shape, float[], float[], float[], float[], float[], double, float[], float[], float[])}
     * with x, dy and dx in {@code dtype}.
     */
    default void backwardInference(Shape shape, DType dtype, short[] x, short[] dy, float[] gamma,
                                   float[] runningMean, float[] runningVar, double eps, short[] dx, float[] dgamma,
                                   float[] dbeta) {
        ArgumentChecks.sixteenBit(dtype);
        ArgumentChecks.HOST_ANY.backwardInference(shape, x, dy, gamma, runningMean, runningVar, eps, dx, dgamma,
                dbeta);
        float[] dx32 = new float[x.length];
        backwardInference(shape, dtype.decode(x), dtype.decode(dy), gamma, runningMean, runningVar, eps, dx32, dgamma,
                dbeta);
        dtype.encode(dx32, dx);
    }

    // ---- fused batch norm + (add) + ReLU ---------------------------------------------------------------------------
    // y = relu(bn(x) + z): ResNet's "batch norm, add the shortcut, ReLU" (z = null: batch norm then ReLU) in one call,
    // with a one-bit-per-element ReLU mask (ReluMask) so that backward reads the mask instead of y. The defaults are
    // the semantics and are correct for any backend: the unfused operation, then the epilogue v = y + z (one float32
    // rounding), y = relu(v) = v where !(v <= 0) else +0, mask bit !(v <= 0). Backends with fused kernels override
    // them with the same results bit for bit (the unfused op's y, then the same float32 add and comparison).

    /**
     * Fused training-mode forward: {@link #forwardTraining} of x, then y = relu(bn(x) + z) and the ReLU mask.
     * Statistics, saved and running statistics are exactly {@link #forwardTraining}'s.
     *
     * @param z    the residual added before the ReLU, a tensor of x's shape, or null for none (batch norm + ReLU)
     * @param y    output: relu(v) with v = bn(x) + z rounded to float32 (NaN stays NaN, v &le; 0 gives +0)
     * @param mask output ({@link ReluMask#words} ints): bit i = !(v_i &le; 0); or null when not wanted
     */
    default void forwardTrainingRelu(Shape shape, float[] x, float[] z, float[] gamma, float[] beta, double eps,
                                     float[] runningMean, float[] runningVar, double momentum,
                                     float[] y, int[] mask, float[] saveMean, float[] saveInvstd) {
        ArgumentChecks.HOST_ANY.forwardTrainingRelu(shape, x, z, gamma, beta, eps, runningMean, runningVar, momentum,
                y, mask, saveMean, saveInvstd);
        forwardTraining(shape, x, gamma, beta, eps, runningMean, runningVar, momentum, y, saveMean, saveInvstd);
        ReluMask.apply(y, z, y, mask, 0, y.length);
    }

    /**
     * Fused eval-mode forward: y = relu(bn_eval(x) + z) with the running statistics, and the ReLU mask (for an
     * eval-mode backward, {@link #backwardInferenceRelu}).
     *
     * @param z    residual or null; y: output; mask: output or null (see {@link #forwardTrainingRelu})
     */
    default void forwardInferenceRelu(Shape shape, float[] x, float[] z, float[] gamma, float[] beta,
                                      float[] runningMean, float[] runningVar, double eps, float[] y, int[] mask) {
        ArgumentChecks.HOST_ANY.forwardInferenceRelu(shape, x, z, gamma, beta, runningMean, runningVar, eps, y, mask);
        forwardInference(shape, x, gamma, beta, runningMean, runningVar, eps, y);
        ReluMask.apply(y, z, y, mask, 0, y.length);
    }

    /**
     * Fused training-mode backward of {@link #forwardTrainingRelu}: the gradient reaching the batch norm is
     * g = dy where the mask bit is 1, else 0 (dy is the gradient of y; y itself is never needed); then
     * {@link #backwardTraining} of g gives dx, dgamma and dbeta, and the residual's gradient is dz = g.
     *
     * @param mask the forward's mask (input)
     * @param dx   output; dz: output or null (no residual, or not wanted); dgamma, dbeta: outputs or null
     */
    default void backwardTrainingRelu(Shape shape, float[] x, float[] dy, int[] mask, float[] gamma,
                                      float[] saveMean, float[] saveInvstd, float[] dx, float[] dz,
                                      float[] dgamma, float[] dbeta) {
        ArgumentChecks.HOST_ANY.backwardTrainingRelu(shape, x, dy, mask, gamma, saveMean, saveInvstd, dx, dz, dgamma,
                dbeta);
        float[] g = new float[dy.length];
        ReluMask.gate(dy, mask, g, 0, g.length);
        backwardTraining(shape, x, g, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
        if (dz != null) System.arraycopy(g, 0, dz, 0, g.length);   // after success: outputs all or nothing
    }

    /**
     * Fused eval-mode backward of {@link #forwardInferenceRelu} (frozen running statistics): g = dy gated by the
     * mask, then {@link #backwardInference} of g; dz = g.
     */
    default void backwardInferenceRelu(Shape shape, float[] x, float[] dy, int[] mask, float[] gamma,
                                       float[] runningMean, float[] runningVar, double eps, float[] dx, float[] dz,
                                       float[] dgamma, float[] dbeta) {
        ArgumentChecks.HOST_ANY.backwardInferenceRelu(shape, x, dy, mask, gamma, runningMean, runningVar, eps, dx, dz,
                dgamma, dbeta);
        float[] g = new float[dy.length];
        ReluMask.gate(dy, mask, g, 0, g.length);
        backwardInference(shape, x, g, gamma, runningMean, runningVar, eps, dx, dgamma, dbeta);
        if (dz != null) System.arraycopy(g, 0, dz, 0, g.length);
    }

    // ---- fused, 16-bit activations: x, z, y, dy, dx, dz in dtype; v and g are float32, y and dx rounded once -------

    /**
     * {@link #forwardTrainingRelu} with x, z and y in {@code dtype}: v = bn(x) + z in float32 (z widened exactly),
     * the mask from v, y = relu(v) rounded once.
     */
    default void forwardTrainingRelu(Shape shape, DType dtype, short[] x, short[] z, float[] gamma, float[] beta,
                                     double eps, float[] runningMean, float[] runningVar, double momentum,
                                     short[] y, int[] mask, float[] saveMean, float[] saveInvstd) {
        ArgumentChecks.sixteenBit(dtype);
        ArgumentChecks.HOST_ANY.forwardTrainingRelu(shape, x, z, gamma, beta, eps, runningMean, runningVar, momentum,
                y, mask, saveMean, saveInvstd);
        float[] y32 = new float[x.length];
        forwardTraining(shape, dtype.decode(x), gamma, beta, eps, runningMean, runningVar, momentum, y32, saveMean,
                saveInvstd);
        ReluMask.apply(y32, z == null ? null : dtype.decode(z), y32, mask, 0, y32.length);
        dtype.encode(y32, y);
    }

    /** {@link #forwardInferenceRelu} with x, z and y in {@code dtype}. */
    default void forwardInferenceRelu(Shape shape, DType dtype, short[] x, short[] z, float[] gamma, float[] beta,
                                      float[] runningMean, float[] runningVar, double eps, short[] y, int[] mask) {
        ArgumentChecks.sixteenBit(dtype);
        ArgumentChecks.HOST_ANY.forwardInferenceRelu(shape, x, z, gamma, beta, runningMean, runningVar, eps, y, mask);
        float[] y32 = new float[x.length];
        forwardInference(shape, dtype.decode(x), gamma, beta, runningMean, runningVar, eps, y32);
        ReluMask.apply(y32, z == null ? null : dtype.decode(z), y32, mask, 0, y32.length);
        dtype.encode(y32, y);
    }

    /**
     * {@link #backwardTrainingRelu} with x, dy, dx and dz in {@code dtype}: dz = dy gated by the mask (exact), dx
     * rounded once.
     */
    default void backwardTrainingRelu(Shape shape, DType dtype, short[] x, short[] dy, int[] mask, float[] gamma,
                                      float[] saveMean, float[] saveInvstd, short[] dx, short[] dz, float[] dgamma,
                                      float[] dbeta) {
        ArgumentChecks.sixteenBit(dtype);
        ArgumentChecks.HOST_ANY.backwardTrainingRelu(shape, x, dy, mask, gamma, saveMean, saveInvstd, dx, dz, dgamma,
                dbeta);
        float[] g = dtype.decode(dy);
        ReluMask.gate(g, mask, g, 0, g.length);
        float[] dx32 = new float[x.length];
        backwardTraining(shape, dtype.decode(x), g, gamma, saveMean, saveInvstd, dx32, dgamma, dbeta);
        dtype.encode(dx32, dx);
        if (dz != null) dtype.encode(g, dz);
    }

    /** {@link #backwardInferenceRelu} with x, dy, dx and dz in {@code dtype}. */
    default void backwardInferenceRelu(Shape shape, DType dtype, short[] x, short[] dy, int[] mask, float[] gamma,
                                       float[] runningMean, float[] runningVar, double eps, short[] dx, short[] dz,
                                       float[] dgamma, float[] dbeta) {
        ArgumentChecks.sixteenBit(dtype);
        ArgumentChecks.HOST_ANY.backwardInferenceRelu(shape, x, dy, mask, gamma, runningMean, runningVar, eps, dx, dz,
                dgamma, dbeta);
        float[] g = dtype.decode(dy);
        ReluMask.gate(g, mask, g, 0, g.length);
        float[] dx32 = new float[x.length];
        backwardInference(shape, dtype.decode(x), g, gamma, runningMean, runningVar, eps, dx32, dgamma, dbeta);
        dtype.encode(dx32, dx);
        if (dz != null) dtype.encode(g, dz);
    }

    /** Releases backend resources (device buffers, handles). Idempotent. */
    @Override
    void close();
}
