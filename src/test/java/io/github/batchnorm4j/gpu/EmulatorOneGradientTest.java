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

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * Backward with exactly one of dgamma and dbeta asked for, on every kernel view and storage type: dx and the gradient
 * asked for must be bitwise those of the call that asks for both. The kernels write an unwanted gradient nowhere (the
 * host passes a scratch pointer for it, the coefficient buffer of the next pass); mutation testing found that a kernel
 * writing it anyway (a flag test that is always true) went unnoticed, since the contract asks for both or neither.
 */
class EmulatorOneGradientTest {
    private static final double EPS = 1e-5;

    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        for (DType t : DType.values()) {
            for (Shape s : new Shape[] {Shape.channelsFirst(8, 3, 16, 16),  // runs view, vector path, 2 blocks a channel
                    Shape.channelsFirst(2, 3, 5, 7),                       // runs view, scalar
                    Shape.channelsLast(64, 5, 5, 16),                      // rows view, vector path, row splits
                    Shape.channelsLast(40, 7, 5)}) {                        // rows view, scalar
                // Eval mode for every type: its dx pass reads the coefficients an unwanted gradient would land on.
                out.add(Arguments.of(t, s, false));
                if (t == DType.FLOAT32) out.add(Arguments.of(t, s, true));
            }
        }
        return out.stream();
    }

    @ParameterizedTest(name = "{0} {1} training={2}")
    @MethodSource("cases")
    void oneGradientLeavesDxAndTheOtherUnchanged(DType dtype, Shape shape, boolean training) {
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        SplittableRandom rng = TestData.random(shape.hashCode() * 7L + dtype.ordinal() * 2L + (training ? 1 : 0));
        float[] x = TestData.perChannelNormal(rng, shape);
        float[] dy = TestData.normal(rng, n, 0, 1);
        float[] gamma = TestData.uniform(rng, c, 0.5, 1.5);
        float[] mean = TestData.normal(rng, c, 0, 0.5);
        float[] spread = TestData.uniform(rng, c, 0.5, 2);   // invstd (training) or running variance (eval)
        EmulatorOptions o = EmulatorOptions.defaults().withBlockOrderSeed(5);
        try (BatchNormOps ops = new HostArrayBatchNormOps("emulator", new EmulatedDevice(o), true)) {
            float[][] both = run(ops, dtype, shape, x, dy, gamma, mean, spread, training, true, true);
            float[][] onlyDgamma = run(ops, dtype, shape, x, dy, gamma, mean, spread, training, true, false);
            float[][] onlyDbeta = run(ops, dtype, shape, x, dy, gamma, mean, spread, training, false, true);
            assertArrayEquals(both[0], onlyDgamma[0], "dx with dgamma only");
            assertArrayEquals(both[1], onlyDgamma[1], "dgamma with dgamma only");
            assertArrayEquals(both[0], onlyDbeta[0], "dx with dbeta only");
            assertArrayEquals(both[2], onlyDbeta[2], "dbeta with dbeta only");
        }
    }

    /** {dx, dgamma, dbeta} (dx decoded to float for 16-bit types; an unwanted gradient stays poisoned). */
    private static float[][] run(BatchNormOps ops, DType dtype, Shape shape, float[] x, float[] dy, float[] gamma,
                                 float[] mean, float[] spread, boolean training, boolean wantDgamma, boolean wantDbeta) {
        int c = shape.channels();
        float[] dg = wantDgamma ? TestData.poisoned(c) : null;
        float[] db = wantDbeta ? TestData.poisoned(c) : null;
        float[] dx;
        if (dtype == DType.FLOAT32) {
            dx = TestData.poisoned(x.length);
            if (training) ops.backwardTraining(shape, x, dy, gamma, mean, spread, dx, dg, db);
            else ops.backwardInference(shape, x, dy, gamma, mean, spread, EPS, dx, dg, db);
        } else {
            short[] xs = dtype.encode(x);
            short[] dys = dtype.encode(dy);
            short[] dxs = new short[x.length];
            if (training) ops.backwardTraining(shape, dtype, xs, dys, gamma, mean, spread, dxs, dg, db);
            else ops.backwardInference(shape, dtype, xs, dys, gamma, mean, spread, EPS, dxs, dg, db);
            dx = dtype.decode(dxs);
        }
        return new float[][] {dx, dg, db};
    }
}
