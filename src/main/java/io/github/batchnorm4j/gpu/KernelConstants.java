package io.github.batchnorm4j.gpu;

/**
 * Flags, modes and kernel names shared with the device code. The numeric values mirror the {@code #define}s of
 * {@code cuda/batchnorm_common.cuh}; change both together (KernelConstantsTest compares them).
 */
final class KernelConstants {
    static final int HAS_GAMMA = 1;
    static final int HAS_BETA = 2;
    static final int HAS_RUNNING = 4;
    static final int COEF_CENTER = 8;
    static final int STATS_ONLY = 16;
    static final int WANT_DGAMMA = 32;
    static final int WANT_DBETA = 64;
    static final int TRAIN_DX = 128;

    static final int PREP_EVAL_FORWARD = 0;
    static final int PREP_NORMALIZE = 1;
    static final int PREP_EVAL_BACKWARD = 2;

    /** Phases of the persistent kernels: one cooperative launch, or partials then outputs in two launches. */
    static final int PERSIST_ONE_LAUNCH = 0;
    static final int PERSIST_PARTIALS = 1;
    static final int PERSIST_OUTPUTS = 2;

    /** Rows of per-channel coefficients the kernels read (bn_dx uses four: p, b, c, a). */
    static final int COEF_ROWS = 4;
    /** Floats per partial: (n, mean, M2) forward, (Σdy, Σdy·(x−mean)) backward uses the first two. */
    static final int PARTIAL_FLOATS = 3;

    private KernelConstants() {
    }
}
