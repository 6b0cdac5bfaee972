package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.Shape;
import java.util.Random;
import java.util.SplittableRandom;

/**
 * Well-conditioned random inputs of one batch-norm problem, from a seed: x with a different mean (in [−2, 2]) and
 * standard deviation (in [0.5, 2]) per channel, gamma in ±[0.5, 1.5], beta in [−1, 1], running mean in [−1, 1],
 * running variance in [0.5, 2], dy standard normal. Never zeros, so an unwritten output cannot pass.
 *
 * <p>Well-conditioned means every channel's sample standard deviation is at least a third of the one it was drawn
 * with: with few values per channel (M = 2, 4) two draws can land close together, and then invstd is huge and any
 * float32 implementation of y = x·scale + shift loses digits to cancellation (|mean|·invstd ≫ 1). Such channels are
 * redrawn.
 *
 * @param shape the layout-aware shape
 * @param x     input
 * @param dy    upstream gradient
 * @param gamma scale per channel
 * @param beta  shift per channel
 * @param runningMean running mean per channel
 * @param runningVar  running variance per channel (positive)
 */
public record RandomInputs(Shape shape, float[] x, float[] dy, float[] gamma, float[] beta, float[] runningMean,
                           float[] runningVar) {

    /** Draws every tensor of {@code shape} from {@code seed}. */
    public static RandomInputs of(Shape shape, long seed) {
        Random r = new Random(seed);
        int channels = shape.channels();
        double[] mu = new double[channels];
        double[] sigma = new double[channels];
        float[] gamma = new float[channels];
        float[] beta = new float[channels];
        float[] rm = new float[channels];
        float[] rv = new float[channels];
        for (int c = 0; c < channels; c++) {
            mu[c] = r.nextDouble() * 4 - 2;
            sigma[c] = 0.5 + r.nextDouble() * 1.5;
            gamma[c] = (float) ((0.5 + r.nextDouble()) * (r.nextBoolean() ? 1 : -1));
            beta[c] = (float) (r.nextDouble() * 2 - 1);
            rm[c] = (float) (r.nextDouble() * 2 - 1);
            rv[c] = (float) (0.5 + r.nextDouble() * 1.5);
        }
        int n = shape.elementCountAsInt();
        float[] x = new float[n];
        float[] dy = new float[n];
        // SplittableRandom: fast enough for bench-sized tensors, still deterministic per seed.
        SplittableRandom g = new SplittableRandom(r.nextLong());
        for (int i = 0; i < n; i++) {
            int c = Float64Check.channelOf(shape, i);
            x[i] = (float) (mu[c] + sigma[c] * gaussian(g));
            dy[i] = (float) gaussian(g);
        }
        for (int attempt = 0; attempt < 100; attempt++) {
            double[] var = Float64Check.variance(shape, x, Float64Check.mean(shape, x));
            boolean[] redraw = new boolean[channels];
            boolean any = false;
            for (int c = 0; c < channels; c++) {
                redraw[c] = var[c] < sigma[c] * sigma[c] / 9;
                any |= redraw[c];
            }
            if (!any) break;
            for (int i = 0; i < n; i++) {
                int c = Float64Check.channelOf(shape, i);
                if (redraw[c]) x[i] = (float) (mu[c] + sigma[c] * gaussian(g));
            }
        }
        return new RandomInputs(shape, x, dy, gamma, beta, rm, rv);
    }

    /**
     * These inputs with x and dy rounded to the storage type {@code t} (nearest-even; the same inputs for float32):
     * the already-rounded 16-bit inputs every backend and the float64 computation of a 16-bit check share.
     */
    public RandomInputs rounded(DType t) {
        if (!t.is16Bit()) return this;
        float[] xr = t.decode(t.encode(x));
        float[] dyr = t.decode(t.encode(dy));
        return new RandomInputs(shape, xr, dyr, gamma, beta, runningMean, runningVar);
    }

    /** A standard normal draw (Box–Muller, one value per call; speed is irrelevant here). */
    private static double gaussian(SplittableRandom g) {
        double u = 1.0 - g.nextDouble(); // (0, 1]: log is finite
        return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * g.nextDouble());
    }

    /** The residual z of the fused operations for {@code shape}: normal with mean 0.3 and standard deviation 1. */
    public static float[] residual(Shape shape, long seed) {
        SplittableRandom g = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + 17);
        float[] z = new float[shape.elementCountAsInt()];
        for (int i = 0; i < z.length; i++) z[i] = (float) (0.3 + gaussian(g));
        return z;
    }
}
