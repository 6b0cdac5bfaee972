package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.ptx.EmulatorOptions;
import io.github.batchnorm4j.testing.Reference64;
import io.github.batchnorm4j.testing.TestData;
import io.github.batchnorm4j.testing.Tolerances;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.SplittableRandom;
import java.util.stream.Stream;

/**
 * Training statistics of one long channel whose mean drifts along it (a ramp plus noise), on the shapes where a
 * channel splits into 257 blocks of 1025 units: every unroll slot and the merge of the blocks' partials run, and the
 * partial means of slots, warps and blocks differ widely, so the Chan/Welford merges' mean-difference terms carry most
 * of the variance. With stationary data (every other test) the partial means agree up to noise, those terms are about
 * 1/n of the variance and any error in them hides inside the tolerance: mutation testing found merge steps whose sign
 * or operation could be wrong without a test failing.
 */
class EmulatorRampStatisticsTest {
    private static final double EPS = 1e-5;

    static Stream<Arguments> cases() {
        return Stream.of(
                Arguments.of(DType.FLOAT32, Shape.channelsFirst(1, 1, 263_171)),     // scalar: 257 blocks of 1025
                Arguments.of(DType.FLOAT32, Shape.channelsFirst(1, 1, 1_052_688)),   // float4: 257 blocks of 1025
                Arguments.of(DType.FLOAT16, Shape.channelsFirst(1, 1, 263_171)),
                Arguments.of(DType.FLOAT16, Shape.channelsFirst(1, 1, 2_107_400)),   // 8 halves: 257 blocks of 1025
                Arguments.of(DType.BFLOAT16, Shape.channelsFirst(1, 1, 263_171)),
                Arguments.of(DType.BFLOAT16, Shape.channelsFirst(1, 1, 2_107_400)));
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void statisticsOfDriftingDataMatchTheReference(DType dtype, Shape shape) {
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        long m = shape.reductionSize();
        SplittableRandom rng = TestData.random(shape.hashCode() * 13L + dtype.ordinal());
        float[] x = new float[n];
        for (int ch = 0; ch < c; ch++) {
            double base = 4 * rng.nextDouble() - 2;
            double slope = (rng.nextBoolean() ? 8 : -8) * (0.5 + rng.nextDouble());
            for (long j = 0; j < m; j++) {
                x[Reference64.index(shape, ch, j)] = (float) (base + slope * j / m + 0.1 * rng.nextGaussian());
            }
        }
        short[] x16 = dtype == DType.FLOAT32 ? null : dtype.encode(x);
        if (x16 != null) x = dtype.decode(x16); // the values the kernels see
        float[] gamma = TestData.uniform(rng, c, 0.5, 1.5);
        float[] beta = TestData.normal(rng, c, 0, 1);
        Reference64.Forward want = Reference64.forwardTraining(shape, toDouble(x), toDouble(gamma), toDouble(beta), EPS,
                null, null, 0.1);
        float[] mean = TestData.poisoned(c);
        float[] invstd = TestData.poisoned(c);
        EmulatorOptions o = EmulatorOptions.defaults().withBlockOrderSeed(11);
        try (BatchNormOps ops = new HostArrayBatchNormOps("emulator", new EmulatedDevice(o), true)) {
            if (x16 == null) {
                ops.forwardTraining(shape, x, gamma, beta, EPS, null, null, 0.1, TestData.poisoned(n), mean, invstd);
            } else {
                ops.forwardTraining(shape, dtype, x16, gamma, beta, EPS, null, null, 0.1, new short[n], mean, invstd);
            }
        }
        Tolerances.assertClose("mean", want.mean(), toDouble(mean), Tolerances.FORWARD_RTOL);
        Tolerances.assertClose("invstd", want.invstd(), toDouble(invstd), Tolerances.FORWARD_RTOL);
    }

    private static double[] toDouble(float[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) d[i] = v[i];
        return d;
    }
}
