package io.github.batchnorm4j.gpu;

import static io.github.batchnorm4j.testing.Tolerances.assertDbeta;
import static io.github.batchnorm4j.testing.Tolerances.assertDgamma;
import static io.github.batchnorm4j.testing.Tolerances.assertForward;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.ptx.EmulatorOptions;
import io.github.batchnorm4j.testing.HalfTolerances;
import io.github.batchnorm4j.testing.Reference64;
import io.github.batchnorm4j.testing.TestData;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The float16 and bfloat16 kernels at the geometry real GPUs give them, as {@code EmulatorBatchNormOpsTest}'s nested
 * classes do for float32 (every path of each kernel must run: {@link SuiteCoverageGateTest}): channels split into more
 * than 256 blocks (the merge loop's second pass), blocks one unit past a full unroll iteration, idle threads, the
 * rows view of small-inner channels-first tensors (16-bit vectors straddling channels), split row groups, several
 * column blocks; on emulated GPUs of 1, 108 and 114 SMs (the elementwise grids follow the SM count). The vector shapes
 * are the float32 ones with 8 | inner (or 8 | C·inner) and, where a unit count matters, twice the elements.
 *
 * <p>One training step per case (forward with running statistics, with or without gamma and beta; backward with or
 * without dgamma and dbeta, so that every flag of the kernels is met both ways) and an eval forward (the apply with
 * centers from the coefficients rather than from x), against float64 on the
 * rounded inputs: y and dx within half a 16-bit ulp plus twice the float32 tolerance, everything float32 at the float32
 * tolerances.
 */
class EmulatorMixedPrecisionGeometryTest {
    private static final double EPS = 1e-5;
    private static final double MOMENTUM = 0.1;

    static Stream<Arguments> cases() {
        // {SMs, shape, affine, want dgamma/dbeta}: each kernel meets both settings of its flags somewhere
        List<Object[]> shapes = List.of(
                // 1 SM
                new Object[] {1, Shape.channelsFirst(1, 1, 263_171), true, true},     // scalar cf: 257 blocks of 1025
                new Object[] {1, Shape.channelsFirst(1, 1, 2_107_400), false, false}, // _vec8 cf: 257 blocks of 1025
                new Object[] {1, Shape.channelsFirst(3, 2, 129), false, false},       // scalar cf: a step spans a run
                new Object[] {1, Shape.channelsLast(263_200, 1), true, true},         // scalar rows: 257 row splits
                new Object[] {1, Shape.channelsFirst(128, 8, 49), false, false},      // _vec8 rows: 6 splits > 4 rows
                new Object[] {1, Shape.channelsFirst(2048, 5, 3), false, false},      // scalar rows view of inner 3
                new Object[] {1, Shape.channelsFirst(2048, 8, 6), true, true},        // _vec8 straddling channels
                new Object[] {1, Shape.channelsFirst(64, 128, 3), true, false},       // _vec8 rows view, 384 columns
                // 108 SMs
                new Object[] {108, Shape.channelsFirst(64, 16, 7, 7), false, true},   // _vec8 rows view, row splits
                new Object[] {108, Shape.channelsFirst(256, 64, 3), true, true},      // _vec8 rows view of inner 3
                new Object[] {108, Shape.channelsFirst(2, 3, 2056), true, true},      // _vec8 cf: run > block step
                new Object[] {108, Shape.channelsFirst(64, 5, 49), true, true},       // scalar rows view: by = 1
                new Object[] {108, Shape.channelsFirst(64, 40, 49), true, true},      // _vec8 rows view: by = 1
                new Object[] {108, Shape.channelsLast(64, 9, 9, 40), false, true},    // _vec8 rows, 5 channel units
                // 114 SMs
                new Object[] {114, Shape.channelsFirst(4096, 64, 1, 1), true, false}, // inner 1: channels-last
                new Object[] {114, Shape.channelsFirst(16, 3, 33, 33), true, true},   // scalar cf, 1089-element runs
                new Object[] {114, Shape.channelsFirst(1, 2, 131), false, true},      // scalar cf: idle threads
                new Object[] {114, Shape.channelsLast(300, 37), true, false});        // scalar rows, 2 column blocks
        List<Arguments> out = new ArrayList<>();
        for (DType t : new DType[] {DType.FLOAT16, DType.BFLOAT16}) {
            for (Object[] s : shapes) out.add(Arguments.of(t, s[1], s[0], s[2], s[3]));
        }
        return out.stream();
    }

    @ParameterizedTest(name = "{0} {1} on {2} SMs, affine={3}, dgamma/dbeta={4}")
    @MethodSource("cases")
    void trainingStepMatchesTheReference(DType dtype, Shape shape, int sms, boolean affine, boolean grads) {
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        SplittableRandom rng = TestData.random(shape.hashCode() * 31L + dtype.ordinal());
        short[] x = dtype.encode(TestData.perChannelNormal(rng, shape));
        short[] dy = dtype.encode(TestData.normal(rng, n, 0, 1));
        float[] xf = dtype.decode(x);
        float[] dyf = dtype.decode(dy);
        float[] gamma = affine ? TestData.uniform(rng, c, 0.5, 1.5) : null;
        float[] beta = affine ? TestData.normal(rng, c, 0, 1) : null;
        float[] rm0 = TestData.normal(rng, c, 0, 1);
        float[] rv0 = TestData.uniform(rng, c, 0.5, 2);
        float[] rm = rm0.clone();
        float[] rv = rv0.clone();
        short[] y = new short[n];
        short[] ye = new short[n];
        short[] dx = new short[n];
        float[] sm = TestData.poisoned(c);
        float[] si = TestData.poisoned(c);
        float[] dg = TestData.poisoned(c);
        float[] db = TestData.poisoned(c);
        EmulatorOptions o = EmulatorOptions.defaults().withMultiprocessorCount(sms).withBlockOrderSeed(sms + 3L);
        try (BatchNormOps ops = new HostArrayBatchNormOps("emulator", new EmulatedDevice(o), true)) {
            ops.forwardTraining(shape, dtype, x, gamma, beta, EPS, rm, rv, MOMENTUM, y, sm, si);
            ops.backwardTraining(shape, dtype, x, dy, gamma, sm, si, dx, grads ? dg : null, grads ? db : null);
            ops.forwardInference(shape, dtype, x, gamma, beta, rm0, rv0, EPS, ye);   // the apply with given centers
        }
        HalfTolerances.assertY("eval y", dtype, Reference64.forwardEval(shape, xf, gamma, beta, rm0, rv0, EPS), ye);
        Reference64.Forward e = Reference64.forwardTraining(shape, xf, gamma, beta, EPS, rm0, rv0, MOMENTUM);
        HalfTolerances.assertY("y", dtype, e.y(), y);
        assertForward("saveMean", e.mean(), sm);
        assertForward("saveInvstd", e.invstd(), si);
        assertForward("runningMean", e.runningMean(), rm);
        assertForward("runningVar", e.runningVar(), rv);
        Reference64.Backward b = Reference64.backwardTraining(shape, xf, dyf, gamma, sm, si);
        HalfTolerances.assertDx(dtype, b, dx);
        if (grads) {
            assertDgamma(b, dg);
            assertDbeta(b, db);
        }
    }
}
