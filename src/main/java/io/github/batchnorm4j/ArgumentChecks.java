package io.github.batchnorm4j;

/**
 * The argument validation of every batch-norm operation, in one order and with one set of messages, for any kind of
 * tensor argument: host arrays ({@link AbstractBatchNormOps}, {@link #HOST}) and device pointers
 * ({@code gpu.DeviceResidentBatchNorm}). Each method throws IllegalArgumentException naming the argument, the expected
 * and the actual value; none modifies its arguments.
 *
 * <p>Memory shared between arguments (checks made with an {@link OverlapCheck}, as {@link #HOST} and
 * {@link #HOST_ANY} are): an output (y, dx, saveMean, saveInvstd, dgamma, dbeta, and the running statistics, which are
 * read and rewritten) must not be any other argument, input or output. Two outputs in one array leave whichever was
 * written last (runningMean = runningVar gives the variance twice, silently), and an output over an input changes the
 * input while it is still being read. Inputs may share memory with each other (gamma = beta is fine). The
 * device-resident API checks byte ranges itself ({@code gpu.Aliasing}), where y may be exactly x and dx exactly dy.
 *
 * @param <T> the tensor argument's type (e.g. {@code float[]} or {@code DevicePointer})
 */
public final class ArgumentChecks<T> {

    /** How one non-null argument is checked to hold enough floats; the one part that depends on the argument type. */
    @FunctionalInterface
    public interface SizeCheck<T> {
        /**
         * Throws unless {@code arg} (not null) holds {@code floats} floats.
         *
         * @param name   the argument's name, first word of any message
         * @param floats how many floats it must hold
         * @param why    where that count comes from, e.g. "for shape [2, 3, 5] CHANNELS_FIRST" or
         *               "(one per channel of …)"; part of the message
         */
        void check(String name, T arg, long floats, String why);
    }

    /** Whether two arguments share memory: for arrays, whether they are the same array. */
    @FunctionalInterface
    public interface OverlapCheck<T> {
        /** Whether {@code a} and {@code b} (both non-null) share memory. */
        boolean shareMemory(T a, T b);
    }

    /** The checks for host arrays: each must hold exactly the expected number of floats; arrays overlap only whole. */
    public static final ArgumentChecks<float[]> HOST = new ArgumentChecks<>((name, a, floats, why) -> {
        if (a.length != floats) {
            throw new IllegalArgumentException(name + ": expected " + floats + " elements " + why + ", got " + a.length);
        }
    }, (a, b) -> a == b);

    /**
     * The checks for host arrays of any element type (float32 per-channel arrays beside {@code short[]} 16-bit
     * tensors): each must be an array of exactly the expected number of elements.
     */
    public static final ArgumentChecks<Object> HOST_ANY = new ArgumentChecks<>((name, a, elements, why) -> {
        int length = java.lang.reflect.Array.getLength(a);
        if (length != elements) {
            throw new IllegalArgumentException(name + ": expected " + elements + " elements " + why + ", got " + length);
        }
    }, (a, b) -> a == b);

    /**
     * Throws unless {@code dtype} is a 16-bit storage type (the {@code short[]} methods): "dtype must not be null" or
     * "dtype: expected float16 or bfloat16 for short[] tensors ..., got float32".
     */
    public static void sixteenBit(DType dtype) {
        if (dtype == null) throw new IllegalArgumentException("dtype must not be null");
        if (!dtype.is16Bit()) {
            throw new IllegalArgumentException("dtype: expected float16 or bfloat16 for short[] tensors (float32 data"
                    + " goes through the float[] methods), got " + dtype);
        }
    }

    private final SizeCheck<T> size;
    private final SizeCheck<T> channelSize;
    private final OverlapCheck<T> overlap;

    /**
     * Checks with {@code size} deciding whether one non-null argument is large enough; memory shared between
     * arguments is then the caller's to check (the device-resident API's byte ranges).
     */
    public ArgumentChecks(SizeCheck<T> size) {
        this(size, null);
    }

    /**
     * Checks with {@code size} deciding whether one non-null argument is large enough and {@code overlap} whether two
     * share memory (no output may share memory with another argument).
     */
    public ArgumentChecks(SizeCheck<T> size, OverlapCheck<T> overlap) {
        this(size, size, overlap);
    }

    /**
     * Checks whose tensor arguments (x, y, dy, dx) and per-channel arguments are sized differently, e.g. device
     * tensors of 16-bit elements beside float32 per-channel vectors: {@code tensorSize} checks the former,
     * {@code channelSize} the latter, each receiving the count in elements of its kind; {@code overlap} as above
     * (may be null).
     */
    public ArgumentChecks(SizeCheck<T> tensorSize, SizeCheck<T> channelSize, OverlapCheck<T> overlap) {
        if (tensorSize == null) throw new IllegalArgumentException("size must not be null");
        if (channelSize == null) throw new IllegalArgumentException("channelSize must not be null");
        this.size = tensorSize;
        this.channelSize = channelSize;
        this.overlap = overlap;
    }

    // ---- one argument --------------------------------------------------------------------------------------------

    /** Throws unless {@code a} holds the shape's element count. */
    public void tensor(String name, Shape shape, T a) {
        if (shape == null) throw new IllegalArgumentException("shape must not be null");
        if (a == null) throw new IllegalArgumentException(name + " must not be null");
        size.check(name, a, shape.elementCount(), "for shape " + shape);
    }

    /** Throws unless {@code a} holds C floats. */
    public void channels(String name, Shape shape, T a) {
        if (a == null) throw new IllegalArgumentException(name + " must not be null");
        channelSize.check(name, a, shape.channels(), "(one per channel of " + shape + ")");
    }

    /** Like {@link #channels} but null is allowed. */
    public void optionalChannels(String name, Shape shape, T a) {
        if (a != null) channels(name, shape, a);
    }

    /** Training needs M &gt; 1 (the variance of one value is undefined), as PyTorch says. */
    public static void training(Shape shape) {
        if (shape.reductionSize() < 2) {
            throw new IllegalArgumentException("expected more than 1 value per channel when training, got input shape "
                    + shape + " (M = " + shape.reductionSize() + ")");
        }
    }

    // ---- one operation (see BatchNormOps for the meaning of each argument) --------------------------------------

    /** The arguments of {@link BatchNormOps#statistics}. */
    public void statistics(Shape shape, T x) {
        tensor("x", shape, x);
    }

    /** The arguments of {@link BatchNormOps#forwardTraining}. */
    public void forwardTraining(Shape shape, T x, T gamma, T beta, double eps, T runningMean, T runningVar,
                                double momentum, T y, T saveMean, T saveInvstd) {
        tensor("x", shape, x);
        training(shape);
        forwardTrainingPiece(shape, x, gamma, beta, eps, runningMean, runningVar, momentum, y, saveMean, saveInvstd);
    }

    /**
     * The arguments of a training forward of one piece of a batch (micro-batch, rank) whose statistics come from the
     * whole batch: everything {@link #forwardTraining} checks except M &gt; 1, which only the merged count must meet
     * ({@link #mergedCount}).
     */
    public void forwardTrainingPiece(Shape shape, T x, T gamma, T beta, double eps, T runningMean, T runningVar,
                                     double momentum, T y, T saveMean, T saveInvstd) {
        forwardTrainingSizes(shape, x, gamma, beta, eps, runningMean, runningVar, momentum, y, saveMean, saveInvstd);
        apart(in("x", x), in("gamma", gamma), in("beta", beta), out("runningMean", runningMean),
                out("runningVar", runningVar), out("y", y), out("saveMean", saveMean),
                out("saveInvstd", saveInvstd));
    }

    /** Everything {@link #forwardTrainingPiece} checks except shared memory. */
    private void forwardTrainingSizes(Shape shape, T x, T gamma, T beta, double eps, T runningMean, T runningVar,
                                      double momentum, T y, T saveMean, T saveInvstd) {
        tensor("x", shape, x);
        optionalChannels("gamma", shape, gamma);
        optionalChannels("beta", shape, beta);
        BatchNormOptions.checkEps(eps);
        if ((runningMean == null) != (runningVar == null)) {
            throw new IllegalArgumentException("runningMean and runningVar must both be given or both be null, got "
                    + (runningMean == null ? "null" : "a tensor") + " and " + (runningVar == null ? "null" : "a tensor"));
        }
        if (runningMean != null) {
            channels("runningMean", shape, runningMean);
            channels("runningVar", shape, runningVar);
            BatchNormOptions.checkMomentum(momentum);
        }
        tensor("y", shape, y);
        saved(shape, saveMean, saveInvstd);
    }

    /** The arguments of {@link BatchNormOps#forwardInference}. */
    public void forwardInference(Shape shape, T x, T gamma, T beta, T runningMean, T runningVar, double eps, T y) {
        tensor("x", shape, x);
        optionalChannels("gamma", shape, gamma);
        optionalChannels("beta", shape, beta);
        runningStatistics(shape, runningMean, runningVar, eps);
        tensor("y", shape, y);
        apart(in("x", x), in("gamma", gamma), in("beta", beta), in("runningMean", runningMean),
                in("runningVar", runningVar), out("y", y));
    }

    /** The arguments of {@link BatchNormOps#normalize}. */
    public void normalize(Shape shape, T x, T gamma, T beta, T mean, T invstd, T y) {
        tensor("x", shape, x);
        optionalChannels("gamma", shape, gamma);
        optionalChannels("beta", shape, beta);
        channels("mean", shape, mean);
        channels("invstd", shape, invstd);
        tensor("y", shape, y);
        apart(in("x", x), in("gamma", gamma), in("beta", beta), in("mean", mean),
                in("invstd", invstd), out("y", y));
    }

    /** The arguments of {@link BatchNormOps#backwardTraining}. */
    public void backwardTraining(Shape shape, T x, T dy, T gamma, T saveMean, T saveInvstd, T dx, T dgamma, T dbeta) {
        tensor("x", shape, x);
        tensor("dy", shape, dy);
        training(shape);
        backwardTrainingPiece(shape, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
    }

    /** {@link #backwardTraining}'s checks except M &gt; 1, for one piece of a batch (see {@link #forwardTrainingPiece}). */
    public void backwardTrainingPiece(Shape shape, T x, T dy, T gamma, T saveMean, T saveInvstd, T dx, T dgamma,
                                      T dbeta) {
        tensor("x", shape, x);
        tensor("dy", shape, dy);
        optionalChannels("gamma", shape, gamma);
        saved(shape, saveMean, saveInvstd);
        gradients(shape, dx, null, dgamma, dbeta);
        apart(in("x", x), in("dy", dy), in("gamma", gamma), in("saveMean", saveMean),
                in("saveInvstd", saveInvstd), out("dx", dx), out("dgamma", dgamma), out("dbeta", dbeta));
    }

    /** The arguments of {@link SplitBatchNormOps#gradientSums}. */
    public void gradientSums(Shape shape, T x, T dy, T saveMean, T saveInvstd) {
        tensor("x", shape, x);
        tensor("dy", shape, dy);
        saved(shape, saveMean, saveInvstd);
    }

    /**
     * Throws unless the merged count of a whole batch exceeds 1 (the training rule of {@link #training}, applied to
     * the batch the statistics are taken over rather than to one piece of it).
     *
     * @param what names the merged quantity, e.g. "statistics" or "sums over all ranks"
     */
    public static void mergedCount(String what, long count) {
        if (count < 2) {
            throw new IllegalArgumentException(what + ": expected more than 1 value per channel when training, got "
                    + count);
        }
    }

    /** Throws unless the merged statistics describe the shape's C channels over more than one value. */
    public static void statistics(String name, Shape shape, ChannelStatistics s) {
        if (s == null) throw new IllegalArgumentException(name + " must not be null");
        mergedRecord(name, shape, s.channels(), s.count());
    }

    /** Throws unless the merged sums describe the shape's C channels over more than one value. */
    public static void sums(String name, Shape shape, GradientSums s) {
        if (s == null) throw new IllegalArgumentException(name + " must not be null");
        mergedRecord(name, shape, s.channels(), s.count());
    }

    /** A merged record's C (against the shape's) and count, once it is known to be non-null. */
    private static void mergedRecord(String name, Shape shape, int channels, long count) {
        if (channels != shape.channels()) {
            throw new IllegalArgumentException(name + ": expected " + shape.channels() + " channels (of " + shape
                    + "), got " + channels);
        }
        mergedCount(name + " (count)", count);
    }

    /** The running statistics an inference op reads, then its eps (in this order, so the first bad one is named). */
    private void runningStatistics(Shape shape, T runningMean, T runningVar, double eps) {
        channels("runningMean", shape, runningMean);
        channels("runningVar", shape, runningVar);
        BatchNormOptions.checkEps(eps);
    }

    /** The statistics a training forward saves and its backward reads. */
    private void saved(Shape shape, T saveMean, T saveInvstd) {
        channels("saveMean", shape, saveMean);
        channels("saveInvstd", shape, saveInvstd);
    }

    /** A backward's outputs: dx, then the optional dz (ReLU variants; null elsewhere), dgamma and dbeta. */
    private void gradients(Shape shape, T dx, T dz, T dgamma, T dbeta) {
        tensor("dx", shape, dx);
        optionalTensor("dz", shape, dz);
        optionalChannels("dgamma", shape, dgamma);
        optionalChannels("dbeta", shape, dbeta);
    }

    /** The arguments of {@link BatchNormOps#backwardInference}. */
    public void backwardInference(Shape shape, T x, T dy, T gamma, T runningMean, T runningVar, double eps, T dx,
                                  T dgamma, T dbeta) {
        tensor("x", shape, x);
        tensor("dy", shape, dy);
        optionalChannels("gamma", shape, gamma);
        runningStatistics(shape, runningMean, runningVar, eps);
        gradients(shape, dx, null, dgamma, dbeta);
        apart(in("x", x), in("dy", dy), in("gamma", gamma), in("runningMean", runningMean),
                in("runningVar", runningVar), out("dx", dx), out("dgamma", dgamma), out("dbeta", dbeta));
    }

    // ---- fused batch norm + (add) + ReLU (see BatchNormOps#forwardTrainingRelu) -----------------------------------

    /** Like {@link #tensor} but null is allowed (an optional residual or output). */
    public void optionalTensor(String name, Shape shape, T a) {
        if (a != null) tensor(name, shape, a);
    }

    /**
     * Throws unless {@code mask} holds {@link ReluMask#words} 32-bit words for the shape (one bit per element); null is
     * allowed when {@code required} is false.
     */
    public void mask(String name, Shape shape, T mask, boolean required) {
        if (mask == null) {
            if (required) throw new IllegalArgumentException(name + " must not be null");
            return;
        }
        channelSize.check(name, mask, ReluMask.words(shape.elementCount()),   // 32-bit words, whatever x's type
                "(32-bit words, one bit per element of " + shape + ")");
    }

    /** The arguments of {@link BatchNormOps#forwardTrainingRelu}. */
    public void forwardTrainingRelu(Shape shape, T x, T z, T gamma, T beta, double eps, T runningMean, T runningVar,
                                    double momentum, T y, T mask, T saveMean, T saveInvstd) {
        tensor("x", shape, x);
        training(shape);
        optionalTensor("z", shape, z);
        forwardTrainingSizes(shape, x, gamma, beta, eps, runningMean, runningVar, momentum, y, saveMean, saveInvstd);
        mask("mask", shape, mask, false);
        apart(in("x", x), in("z", z), in("gamma", gamma), in("beta", beta), out("runningMean", runningMean),
                out("runningVar", runningVar), out("y", y), out("mask", mask), out("saveMean", saveMean),
                out("saveInvstd", saveInvstd));
    }

    /** The arguments of {@link BatchNormOps#forwardInferenceRelu}. */
    public void forwardInferenceRelu(Shape shape, T x, T z, T gamma, T beta, T runningMean, T runningVar, double eps,
                                     T y, T mask) {
        tensor("x", shape, x);
        optionalTensor("z", shape, z);
        optionalChannels("gamma", shape, gamma);
        optionalChannels("beta", shape, beta);
        runningStatistics(shape, runningMean, runningVar, eps);
        tensor("y", shape, y);
        mask("mask", shape, mask, false);
        apart(in("x", x), in("z", z), in("gamma", gamma), in("beta", beta), in("runningMean", runningMean),
                in("runningVar", runningVar), out("y", y), out("mask", mask));
    }

    /** The arguments of {@link BatchNormOps#backwardTrainingRelu}. */
    public void backwardTrainingRelu(Shape shape, T x, T dy, T mask, T gamma, T saveMean, T saveInvstd, T dx, T dz,
                                     T dgamma, T dbeta) {
        tensor("x", shape, x);
        tensor("dy", shape, dy);
        training(shape);
        mask("mask", shape, mask, true);
        optionalChannels("gamma", shape, gamma);
        saved(shape, saveMean, saveInvstd);
        gradients(shape, dx, dz, dgamma, dbeta);
        apart(in("x", x), in("dy", dy), in("mask", mask), in("gamma", gamma), in("saveMean", saveMean),
                in("saveInvstd", saveInvstd), out("dx", dx), out("dz", dz), out("dgamma", dgamma),
                out("dbeta", dbeta));
    }

    /** The arguments of {@link BatchNormOps#backwardInferenceRelu}. */
    public void backwardInferenceRelu(Shape shape, T x, T dy, T mask, T gamma, T runningMean, T runningVar,
                                      double eps, T dx, T dz, T dgamma, T dbeta) {
        tensor("x", shape, x);
        tensor("dy", shape, dy);
        mask("mask", shape, mask, true);
        optionalChannels("gamma", shape, gamma);
        runningStatistics(shape, runningMean, runningVar, eps);
        gradients(shape, dx, dz, dgamma, dbeta);
        apart(in("x", x), in("dy", dy), in("mask", mask), in("gamma", gamma), in("runningMean", runningMean),
                in("runningVar", runningVar), out("dx", dx), out("dz", dz), out("dgamma", dgamma),
                out("dbeta", dbeta));
    }

    // ---- memory shared between arguments -------------------------------------------------------------------------

    /** One argument of an operation as the overlap check sees it; {@code value} may be null (not given). */
    private record Arg<T>(String name, T value, boolean output) {
    }

    private static <T> Arg<T> in(String name, T value) {
        return new Arg<>(name, value, false);
    }

    private static <T> Arg<T> out(String name, T value) {
        return new Arg<>(name, value, true);
    }

    /**
     * Throws when an output shares memory with any other argument (see the class comment); each pair is reported
     * once, naming the later argument first. Runs after the size checks.
     */
    @SafeVarargs
    private void apart(Arg<T>... args) {
        if (overlap == null) return;
        for (int i = 0; i < args.length; i++) {
            Arg<T> o = args[i];
            if (!o.output() || o.value() == null) continue;
            for (int j = 0; j < args.length; j++) {
                Arg<T> a = args[j];
                if (j == i || a.value() == null || (a.output() && j > i)) continue;
                if (!overlap.shareMemory(o.value(), a.value())) continue;
                boolean elementwise = o.name().equals("y") && (a.name().equals("x") || a.name().equals("z"))
                        || (o.name().equals("dx") || o.name().equals("dz"))
                           && (a.name().equals("x") || a.name().equals("dy"));
                throw new IllegalArgumentException(o.name() + " must not be the same array as " + a.name()
                        + (elementwise ? " (in-place operation is not supported)"
                                       : ": every output needs an array of its own"));
            }
        }
    }
}
