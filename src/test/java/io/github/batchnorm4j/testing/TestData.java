package io.github.batchnorm4j.testing;

import java.util.Arrays;
import java.util.Random;
import java.util.SplittableRandom;

/**
 * Test inputs: random with fixed seeds (fresh per case, never zeros), and NaN poison for outputs so that an element a
 * backend forgot to write fails the comparison.
 */
public final class TestData {
    private TestData() {
    }

    /** A deterministic generator for one test case; derive the seed from the case (shape, flags) so cases differ. */
    public static SplittableRandom random(long seed) {
        return new SplittableRandom(0x5eed_ba7c_4a11L ^ seed);
    }

    /** Normal values with the given mean and standard deviation; never exactly zero. */
    public static float[] normal(SplittableRandom rng, int n, double mean, double std) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            float v;
            do {
                v = (float) (mean + std * gaussian(rng));
            } while (v == 0f);
            a[i] = v;
        }
        return a;
    }

    /**
     * Normal values {@code mean + std·g} from {@link Random#nextGaussian()}, for tests that seed a {@link Random}
     * themselves (unlike {@link #normal}, zeros are not redrawn, so a seed gives the same array as it always did).
     */
    public static float[] gaussian(Random r, int n, double mean, double std) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (mean + std * r.nextGaussian());
        return a;
    }

    /** Standard normal values from {@link Random#nextGaussian()}. */
    public static float[] gaussian(Random r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) r.nextGaussian();
        return a;
    }

    /** Uniform values in [lo, hi), never exactly zero. */
    public static float[] uniform(SplittableRandom rng, int n, double lo, double hi) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            float v;
            do {
                v = (float) (lo + (hi - lo) * rng.nextDouble());
            } while (v == 0f);
            a[i] = v;
        }
        return a;
    }

    /**
     * x with a different mean and scale per channel (means in [−3, 3], stds in [0.5, 2]) so that a backend that mixes
     * channels up cannot pass.
     */
    public static float[] perChannelNormal(SplittableRandom rng, io.github.batchnorm4j.Shape shape) {
        int c = shape.channels();
        double[] mean = new double[c];
        double[] std = new double[c];
        for (int k = 0; k < c; k++) {
            mean[k] = -3 + 6 * rng.nextDouble();
            std[k] = 0.5 + 1.5 * rng.nextDouble();
        }
        int n = shape.elementCountAsInt();
        float[] x = new float[n];
        for (int k = 0; k < c; k++) {
            for (long j = 0; j < shape.reductionSize(); j++) {
                float v;
                do {
                    v = (float) (mean[k] + std[k] * gaussian(rng));
                } while (v == 0f);
                x[Reference64.index(shape, k, j)] = v;
            }
        }
        return x;
    }

    /** An array of n NaNs. */
    public static float[] poisoned(int n) {
        float[] a = new float[n];
        Arrays.fill(a, Float.NaN);
        return a;
    }

    /** Fills existing outputs with NaN before a run. */
    public static void poison(float[]... outputs) {
        for (float[] a : outputs) {
            if (a != null) Arrays.fill(a, Float.NaN);
        }
    }

    private static double gaussian(SplittableRandom rng) {
        // Box–Muller; SplittableRandom has no nextGaussian in Java 17.
        double u1 = 1.0 - rng.nextDouble();
        double u2 = rng.nextDouble();
        return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    }
}
