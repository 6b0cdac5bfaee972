package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.ptx.EmulatorOptions;
import io.github.batchnorm4j.testing.TestData;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The 16-bit outputs of every kernel view (y of the apply kernels, dx of the dx kernels) are the exact result rounded
 * to nearest, ties to even, bit for bit, including ties and overflow to infinity. The eval-mode ops are set up so that
 * float32 computes the result exactly (running mean 0, running variance + eps = 1, beta 0, gamma with short
 * significands, x and dy 16-bit values of moderate range): then the float64 reference rounded by {@link DType#encode}
 * is the only right answer, and about a quarter of the elements are exact ties. Tolerance-based tests cannot see a
 * conversion that rounds ties the wrong way (a 1-ulp error on one element in four); mutation testing of the software
 * float-to-bfloat16 conversion the kernels carry (sm_75 has no bf16 instruction) found that nothing else did.
 */
class EmulatorHalfRoundingTest {
    private static final double EPS = 1e-5;

    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        for (DType t : new DType[] {DType.BFLOAT16, DType.FLOAT16}) {
            for (Shape s : new Shape[] {Shape.channelsFirst(8, 6, 16, 16),  // runs view, vector path
                    Shape.channelsFirst(2, 6, 5, 7),                       // runs view, scalar
                    Shape.channelsLast(64, 5, 5, 16),                      // rows view, vector path
                    Shape.channelsLast(40, 7, 5),                          // rows view, scalar
                    Shape.channelsFirst(2, 6, 33, 33),                     // runs view, scalar (odd runs of 1089)
                    Shape.channelsLast(16, 9, 9, 40)}) {                    // rows view, vector path, 5 channel units
                out.add(Arguments.of(t, s, 132));
            }
            // On one SM the grids are small enough that every unroll slot of the streaming loops runs
            out.add(Arguments.of(t, Shape.channelsFirst(2, 6, 48, 48), 1));
            out.add(Arguments.of(t, Shape.channelsLast(16, 8, 8, 16), 1));
        }
        return out.stream();
    }

    @ParameterizedTest(name = "{0} {1} on {2} SMs")
    @MethodSource("cases")
    void outputsAreTheExactResultRoundedToNearestEven(DType dtype, Shape shape, int sms) {
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        SplittableRandom rng = TestData.random(shape.hashCode() * 31L + dtype.ordinal());
        short[] x = values(rng, dtype, n);
        short[] dy = values(rng, dtype, n);
        float[] gamma = new float[c];
        float[] zeros = new float[c];
        float[] var = new float[c];
        float[] choices = {1.5f, -1.25f, 0.75f, 2.5f, -3f, 1.375f};
        float one = varianceForUnitScale();
        for (int ch = 0; ch < c; ch++) {
            gamma[ch] = choices[ch % choices.length];
            var[ch] = one;
        }
        // Every vector lane and unroll slot meets a NaN (it stays a NaN; its payload is free) and, for bfloat16, a value
        // whose product with gamma overflows float32 to infinity: strides 61 and 67 are prime to the vector width 8.
        for (int i = 5; i < n; i += 61) {
            x[i] = dtype.encode(Float.NaN);
            dy[i] = dtype.encode(Float.NaN);
        }
        if (dtype == DType.BFLOAT16) for (int i = 7; i < n; i += 67) x[i] = dtype.encode(3.0e38f);
        float[] y = expected(dtype, shape, x, gamma);
        float[] dx = expected(dtype, shape, dy, gamma);
        EmulatorOptions o = EmulatorOptions.defaults().withBlockOrderSeed(3).withMultiprocessorCount(sms);
        try (BatchNormOps ops = new HostArrayBatchNormOps("emulator", new EmulatedDevice(o), true)) {
            short[] ys = poisoned(n);
            ops.forwardInference(shape, dtype, x, gamma, zeros, zeros, var, EPS, ys);
            assertManyTies(check(dtype, y, ys, "y"), n, "y");
            short[] dxs = poisoned(n);
            ops.backwardInference(shape, dtype, x, dy, gamma, zeros, var, EPS, dxs, null, null);
            assertManyTies(check(dtype, dx, dxs, "dx"), n, "dx");
        }
    }

    static Stream<Arguments> shapes() {
        return cases().filter(a -> a.get()[0] == DType.BFLOAT16).map(a -> Arguments.of(a.get()[1], a.get()[2]));
    }

    /**
     * Training-mode dx of the bfloat16 dx kernels: with the saved mean 0 and invstd 1, and dy built in pairs of opposite
     * values at equal x within each channel, both gradient sums are exactly 0 (every product and partial sum is exact in
     * float32: x is an integer in [-2, 2), dy an odd multiple of 1/8 below 1 in magnitude, at most 2^17 values a
     * channel), so dx = gamma·dy exactly; gamma has 9 significant bits (the last one set, the one before alternating
     * between neighbouring channels and between groups of 8, so that every vector lane meets ties of both parities), so gamma·dy often lies halfway between two
     * bfloat16 values.
     */
    @ParameterizedTest(name = "{0} on {1} SMs")
    @MethodSource("shapes")
    void trainingDxIsTheExactResultRoundedToNearestEven(Shape shape, int sms) {
        DType dtype = DType.BFLOAT16;
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        SplittableRandom rng = TestData.random(shape.hashCode() * 17L + 5);
        float[] x = new float[n];
        float[] dy = new float[n];
        int[] pending = new int[c];
        java.util.Arrays.fill(pending, -1);
        for (int i = 0; i < n; i++) {
            int ch = channelOf(shape, i);
            if (pending[ch] < 0) {
                x[i] = rng.nextInt(4) - 2;
                dy[i] = (2 * rng.nextInt(8) - 7) / 8f;
                pending[ch] = i;
            } else {
                x[i] = x[pending[ch]];
                dy[i] = -dy[pending[ch]];
                pending[ch] = -1;
            }
        }
        for (int p : pending) if (p >= 0) dy[p] = 0; // an unpaired last element adds nothing
        float[] gamma = new float[c];
        for (int ch = 0; ch < c; ch++) gamma[ch] = (rng.nextBoolean() ? 1 : -1) * (1 + (4 * rng.nextInt(64) + 2 * ((ch ^ (ch >> 3)) & 1) + 1) / 256f);
        // Channel 1: dy odd integers and gamma 1.5 * 2^126, so that |dy| >= 3 overflows to infinity (dx = gamma * dy)
        gamma[1] = 1.5f * (float) Math.pow(2, 126);
        for (int i = 0; i < n; i++) if (channelOf(shape, i) == 1) dy[i] *= 8;
        // Channel 0: one NaN in dy makes its gradient sums, so every dx of the channel, NaN
        dy[0] = Float.NaN; // element 0 is in channel 0 in both layouts
        float[] mean = new float[c];
        float[] invstd = new float[c];
        java.util.Arrays.fill(invstd, 1f);
        float[] want = new float[n];
        for (int i = 0; i < n; i++) {
            want[i] = channelOf(shape, i) == 0 ? Float.NaN : (float) ((double) dy[i] * gamma[channelOf(shape, i)]);
        }
        EmulatorOptions o = EmulatorOptions.defaults().withBlockOrderSeed(9).withMultiprocessorCount(sms);
        try (BatchNormOps ops = new HostArrayBatchNormOps("emulator", new EmulatedDevice(o), true)) {
            short[] dxs = poisoned(n);
            float[] dgamma = TestData.poisoned(c);
            float[] dbeta = TestData.poisoned(c);
            ops.backwardTraining(shape, dtype, dtype.encode(x), dtype.encode(dy), gamma, mean, invstd, dxs, dgamma, dbeta);
            assertTrue(Float.isNaN(dgamma[0]) && Float.isNaN(dbeta[0]), "channel 0 holds a NaN");
            for (int ch = 1; ch < c; ch++) {
                assertEquals(0f, dgamma[ch], 0f, "dgamma[" + ch + "] (the pairs cancel exactly)");
                assertEquals(0f, dbeta[ch], 0f, "dbeta[" + ch + "]");
            }
            int regular = 0; // elements of channels 2.. (0 is NaN, 1 is infinities and powers of two)
            for (int i = 0; i < n; i++) if (channelOf(shape, i) >= 2) regular++;
            assertManyTies(check(dtype, want, dxs, "training dx"), regular, "training dx");
        }
    }

    /** A running variance v with v + eps == 1 in float32, so that the kernels' scale is gamma / sqrt(1) = gamma. */
    private static float varianceForUnitScale() {
        float v = 1f - (float) EPS;
        while (v + (float) EPS < 1f) v = Math.nextUp(v);
        while (v + (float) EPS > 1f) v = Math.nextDown(v);
        assertEquals(1f, v + (float) EPS);
        return v;
    }

    /** Random 16-bit values of magnitude in [0.5, 8) with either sign (products with gamma stay exact in float32). */
    private static short[] values(SplittableRandom rng, DType dtype, int n) {
        short[] out = new short[n];
        for (int i = 0; i < n; i++) {
            double m = 0.5 * Math.pow(2, 4 * rng.nextDouble());
            out[i] = dtype.encode((float) (rng.nextBoolean() ? m : -m));
        }
        return out;
    }

    /** The 16-bit encoding of value × gamma of its channel, the product taken in float64 (exact here). */
    private static float[] expected(DType dtype, Shape shape, short[] v, float[] gamma) {
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            double exact = (double) dtype.decode(v[i]) * gamma[channelOf(shape, i)];
            out[i] = (float) exact; // exact in float32 for these magnitudes, +inf for the planted 3e38
        }
        return out;
    }

    /** Asserts actual = exact rounded, bit for bit (any NaN for NaN); returns how many of the values are ties. */
    private static int check(DType dtype, float[] exact, short[] actual, String what) {
        int ties = 0;
        for (int i = 0; i < exact.length; i++) {
            if (Float.isNaN(exact[i])) {
                if (!Float.isNaN(dtype.decode(actual[i]))) {
                    throw new AssertionError(String.format("%s %s[%d]: should be NaN, got %04x", dtype, what, i,
                            actual[i] & 0xFFFF));
                }
                continue;
            }
            short want = dtype.encode(exact[i]);
            if (isTie(dtype, exact[i])) ties++;
            if (want != actual[i]) {
                throw new AssertionError(String.format("%s %s[%d]: exact %s (float bits %08x) should round to %04x, got %04x",
                        dtype, what, i, exact[i], Float.floatToRawIntBits(exact[i]), want & 0xFFFF, actual[i] & 0xFFFF));
            }
        }
        return ties;
    }

    private static void assertManyTies(int ties, int of, String what) {
        assertTrue(ties > of / 8, what + ": only " + ties + " of " + of + " are ties");
    }

    /**
     * Whether {@code v} (a normal value of the 16-bit type here) lies exactly halfway between two neighbouring 16-bit
     * values: the float32 bits below the 16-bit significand are exactly one half of its last place.
     */
    private static boolean isTie(DType dtype, float v) {
        if (Float.isInfinite(v)) return false;
        int dropped = dtype == DType.BFLOAT16 ? 16 : 13;
        int low = Float.floatToRawIntBits(v) & ((1 << dropped) - 1);
        return low == 1 << (dropped - 1);
    }

    private static int channelOf(Shape shape, int i) {
        return shape.layout() == io.github.batchnorm4j.Layout.CHANNELS_LAST ? i % shape.channels()
                : (int) ((i / shape.inner()) % shape.channels());
    }

    private static short[] poisoned(int n) {
        short[] s = new short[n];
        java.util.Arrays.fill(s, (short) 0x7FC1);
        return s;
    }
}
