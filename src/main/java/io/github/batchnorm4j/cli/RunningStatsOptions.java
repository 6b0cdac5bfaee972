package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.Shape;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import picocli.CommandLine.Option;

/**
 * {@code --running-mean} and {@code --running-var}, a picocli mixin of {@code forward} and {@code backward}: .npy files
 * of one value per channel. A missing file means the PyTorch initial values, mean 0 and variance 1.
 */
final class RunningStatsOptions {

    @Option(names = "--running-mean", paramLabel = "RM.npy", description = "Running mean (default 0).")
    Path runningMean;

    @Option(names = "--running-var", paramLabel = "RV.npy", description = "Running (unbiased) variance (default 1).")
    Path runningVar;

    /** Whether either file was given. */
    boolean given() {
        return runningMean != null || runningVar != null;
    }

    /** The running mean for {@code shape}: the file's values, or C zeros without one (a new array either way). */
    float[] mean(Shape shape) throws IOException {
        return runningMean != null ? Inputs.perChannel("--running-mean", runningMean, shape)
                : new float[shape.channels()];
    }

    /** The running variance for {@code shape}: the file's values, or C ones without one (a new array either way). */
    float[] variance(Shape shape) throws IOException {
        if (runningVar != null) return Inputs.perChannel("--running-var", runningVar, shape);
        float[] ones = new float[shape.channels()];
        Arrays.fill(ones, 1f);
        return ones;
    }
}
