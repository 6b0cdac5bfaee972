package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.ReluMask;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.ptx.EmulatorOptions;
import io.github.batchnorm4j.testing.HalfTolerances;
import io.github.batchnorm4j.testing.Reference64;
import io.github.batchnorm4j.testing.TestData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static io.github.batchnorm4j.testing.Messages.assertMentions;
import static io.github.batchnorm4j.testing.Tolerances.assertDbeta;
import static io.github.batchnorm4j.testing.Tolerances.assertDgamma;
import static io.github.batchnorm4j.testing.Tolerances.assertDx;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The fused backward kernels of BN + ReLU / BN + add + ReLU (bn_backward_reduce_relu_*, bn_dx_relu_*,
 * bn_dx_eval_relu_*) at the geometry real GPUs give them, every storage type: the training and eval backward read the
 * ReLU mask (never y) and give dx, dgamma and dbeta bit for bit equal to the unfused kernels run on the gradient the
 * host gated by the same mask (on a second emulated device with another block order: the same bits under shuffled
 * block schedules), dz bit for bit the gated dy, and dx, dgamma, dbeta within today's tolerances of float64. The
 * shapes are those that make the unfused kernels reach every path ({@code EmulatorBatchNormOpsTest}'s 1-, 108- and
 * 114-SM classes, {@code EmulatorMixedPrecisionGeometryTest}): more than 256 blocks per channel, every unroll slot and
 * a run ending on each slot's bound, idle threads, rows views, column blocks. The masks mix random words with all-zero
 * and all-one words and set the padding bits after the last element (which must be ignored); dy holds NaN and
 * infinities under 0 bits (gated to +0, never read into the sums); every output starts poisoned.
 */
class EmulatorFusedBackwardTest {
    private static final double EPS = 1e-5;

    static Stream<Arguments> float32Cases() {
        List<Arguments> out = new ArrayList<>();
        // {SMs, shape}; options vary by index so that each kernel meets dz / dgamma / gamma both ways
        Object[][] cases = {
                {1, Shape.channelsFirst(1, 1, 263_171)},     // scalar cf: 257 blocks of 1025 floats (4 slots + 1)
                {1, Shape.channelsFirst(1, 1, 1_052_688)},   // vec4 cf: 257 blocks of 1025 float4s
                {1, Shape.channelsFirst(3, 2, 129)},         // scalar cf, inner 129: a step spans a run
                {1, Shape.channelsLast(263_200, 1)},         // scalar rows, C = 1: 257 row splits
                {1, Shape.channelsFirst(128, 4, 49)},        // vec4 rows view: 6 row splits > 4 row groups
                {1, Shape.channelsFirst(2048, 5, 3)},        // scalar rows view of inner 3
                {1, Shape.channelsFirst(2048, 8, 6)},        // vec4 rows view: float4s straddle channels
                {1, Shape.channelsFirst(64, 128, 3)},        // vec4 rows view: 384 columns
                {1, Shape.channelsFirst(4, 6, 180)}, {1, Shape.channelsFirst(4, 6, 212)},   // runs ending on a
                {1, Shape.channelsFirst(4, 6, 244)}, {1, Shape.channelsFirst(4, 6, 200)},   // slot's bound
                {1, Shape.channelsFirst(4, 6, 328)}, {1, Shape.channelsFirst(4, 6, 456)},
                {108, Shape.channelsFirst(64, 20, 7, 7)},    // vec4 rows view, 3 row splits
                {108, Shape.channelsFirst(256, 64, 3)},
                {108, Shape.channelsFirst(2, 3, 1028)},      // vec4 cf: run longer than a block step
                {108, Shape.channelsFirst(64, 5, 49)},       // scalar rows view, by = 1
                {108, Shape.channelsLast(64, 9, 9, 20)},     // vec4 rows, 5 channel units
                {114, Shape.channelsFirst(4096, 64, 1, 1)},  // inner 1
                {114, Shape.channelsFirst(16, 3, 33, 33)},   // scalar cf, 1089-float runs
                {114, Shape.channelsFirst(1, 2, 131)},       // scalar cf: idle threads
                {114, Shape.channelsLast(300, 37)},          // scalar rows, 2 column blocks
                {132, Shape.channelsFirst(8, 64, 28, 28)},   // the bench shapes
                {132, Shape.channelsLast(8, 28, 28, 64)},
                {132, Shape.channelsLast(2, 33, 33, 37)}};   // scalar, 2 column blocks, row splits
        for (int i = 0; i < cases.length; i++) out.add(Arguments.of(cases[i][1], cases[i][0], i));
        for (Shape s : FEW_ROWS) out.add(Arguments.of(s, 132, out.size()));
        out.add(Arguments.of(Shape.channelsFirst(4, 3, 32, 32), 132, out.size()));   // vec4, one block per channel
        out.add(Arguments.of(Shape.channelsFirst(24, 3, 16, 16), 132, out.size()));  // vec4, a step spans 4 runs
        out.add(Arguments.of(Shape.channelsLast(2, 48, 48, 8), 132, out.size()));    // vec4, 18 row splits
        out.add(Arguments.of(Shape.channelsLast(2048, 132), 132, out.size()));       // 2 column blocks, 64 splits
        out.add(Arguments.of(Shape.channelsFirst(16, 32, 28, 28), 132, out.size())); // vec4, 3 splits < threads
        return out.stream();
    }

    /** Rows fewer than a block's row threads (idle row threads in the rows kernels). */
    static final List<Shape> FEW_ROWS = List.of(Shape.channelsLast(7, 5));



    static Stream<Arguments> sixteenBitCases() {
        Object[][] shapes = {
                {1, Shape.channelsFirst(1, 1, 263_171)},     // scalar cf: 257 blocks of 1025
                {1, Shape.channelsFirst(1, 1, 2_107_400)},   // _vec8 cf: 257 blocks of 1025
                {1, Shape.channelsFirst(3, 2, 129)},
                {1, Shape.channelsLast(263_200, 1)},         // scalar rows: 257 row splits
                {1, Shape.channelsFirst(128, 8, 49)},        // _vec8 rows: 6 splits > 4 rows
                {1, Shape.channelsFirst(2048, 5, 3)},
                {1, Shape.channelsFirst(2048, 8, 6)},        // _vec8 straddling channels
                {1, Shape.channelsFirst(64, 128, 3)},
                {108, Shape.channelsFirst(64, 16, 7, 7)},
                {108, Shape.channelsFirst(256, 64, 3)},
                {108, Shape.channelsFirst(2, 3, 2056)},      // _vec8 cf: run > block step
                {108, Shape.channelsFirst(64, 5, 49)},
                {108, Shape.channelsFirst(64, 40, 49)},
                {108, Shape.channelsLast(64, 9, 9, 40)},
                {114, Shape.channelsFirst(4096, 64, 1, 1)},
                {114, Shape.channelsFirst(16, 3, 33, 33)},
                {114, Shape.channelsFirst(1, 2, 131)},
                {114, Shape.channelsLast(300, 37)}};
        List<Arguments> out = new ArrayList<>();
        int i = 0;
        for (DType t : new DType[]{DType.FLOAT16, DType.BFLOAT16}) {
            for (Object[] s : shapes) out.add(Arguments.of(t, s[1], s[0], i++));
            for (Shape s : FEW_ROWS) out.add(Arguments.of(t, s, 132, i++));
            for (Shape s : List.of(Shape.channelsFirst(16, 3, 32, 32), Shape.channelsFirst(8, 16, 4, 4),
                    Shape.channelsLast(2, 48, 48, 24), Shape.channelsLast(2048, 132),
                    Shape.channelsFirst(32, 8, 32, 32),      // _vec8 cf, 4 splits < threads
                    Shape.channelsFirst(1, 2, 1024))) {      // _vec8 cf: 128 units, threads 128..255 idle
                out.add(Arguments.of(t, s, 132, i++));
            }
        }
        return out.stream();
    }

    /**
     * The shapes of more than 256 blocks per channel or row splits (the sums' second merge pass): their training
     * backward runs with dz, the eval backward without dgamma and dbeta (its elementwise pass alone), the dz-less
     * training run is left to the other shapes (each sums pass over them costs seconds).
     */
    private static boolean large(Shape shape) {
        return shape.elementCount() > 200_000;
    }

    /**
     * Our kernels on an emulated GPU of {@code sms} SMs, blocks shuffled by {@code seed}, with every check (bounds,
     * memory ordering, races, .nc) or, for the large shapes and the flag sweep, the bounds check alone: those runs are
     * about geometry and flags, and cost seconds with every check (the sums' ordering on 257 partials is
     * OrderingMutantsTest's).
     */
    private static HostArrayBatchNormOps emulator(int sms, long seed, boolean checks) {
        EmulatorOptions o = EmulatorOptions.defaults().withMultiprocessorCount(sms).withBlockOrderSeed(seed);
        return new HostArrayBatchNormOps("emulator", new EmulatedDevice(checks ? o : o.withoutChecks().withMemoryCheck(true)),
                true);
    }

    /**
     * A ReLU mask for n elements: random words, every 5th word all zeros, every 7th all ones, and the padding bits of
     * the last word set (they belong to no element).
     */
    static int[] mask(SplittableRandom r, int n) {
        int[] m = new int[ReluMask.wordsAsInt(n)];
        for (int w = 0; w < m.length; w++) m[w] = w % 5 == 1 ? 0 : w % 7 == 3 ? -1 : r.nextInt();
        if (n % 32 != 0) m[m.length - 1] |= -1 << (n % 32);
        return m;
    }

    static boolean bit(int[] mask, int i) {
        return (mask[i >>> 5] >>> (i & 31) & 1) != 0;
    }

    /** NaN, +inf and -inf in dy at some elements whose bit is 0: the gate must drop them. */
    private static void poisonGatedOut(float[] dy, int[] mask) {
        float[] bad = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY};
        for (int i = 0, k = 0; i < dy.length; i += 37) if (!bit(mask, i)) dy[i] = bad[k++ % 3];
    }

    @ParameterizedTest(name = "float32 {0} on {1} SMs")
    @MethodSource("float32Cases")
    void float32FusedBackwardIsTheUnfusedBackwardOfTheGatedGradient(Shape shape, int sms, int index) {
        int n = shape.elementCountAsInt(), c = shape.channels();
        SplittableRandom r = TestData.random(shape.hashCode() * 17L + index);
        float[] x = TestData.perChannelNormal(r, shape), dy = TestData.normal(r, n, 0, 1);
        int[] mask = mask(r, n);
        poisonGatedOut(dy, mask);
        boolean affine = index % 3 != 2, grads = index % 5 != 4;
        float[] gamma = affine ? signedGamma(r, c) : null;
        float[] sm = TestData.normal(r, c, 0, 1), si = TestData.uniform(r, c, 0.5, 2);
        float[] rm = TestData.normal(r, c, 0, 1), rv = TestData.uniform(r, c, 0.5, 2);
        float[] g = new float[n];
        ReluMask.gate(dy, mask, g, 0, n);
        float[] dx = TestData.poisoned(n), dz = TestData.poisoned(n);
        float[] dg = grads ? TestData.poisoned(c) : null, db = grads ? TestData.poisoned(c) : null;
        float[] edx = TestData.poisoned(n), edz = TestData.poisoned(n);
        float[] edg = grads ? TestData.poisoned(c) : null, edb = grads ? TestData.poisoned(c) : null;
        float[] rdx = TestData.poisoned(n), rdg = TestData.poisoned(c), rdb = TestData.poisoned(c);
        float[] redx = TestData.poisoned(n), redg = TestData.poisoned(c), redb = TestData.poisoned(c);
        try (HostArrayBatchNormOps ops = emulator(sms, 5 + index, !large(shape));
             BatchNormOps ref = emulator(sms, 1000 + index, !large(shape))) {
            ops.backwardTrainingRelu(shape, x, dy, mask, gamma, sm, si, dx, dz, dg, db);
            assertFused(ops, "bn_backward_reduce_relu_", "bn_dx_relu_");
            ref.backwardTraining(shape, x, g, gamma, sm, si, rdx, rdg, rdb);
            if (large(shape)) {   // the eval dx pass alone, with and without dz
                ops.backwardInferenceRelu(shape, x, dy, mask, gamma, rm, rv, EPS, edx, edz, null, null);
                float[] nedx = TestData.poisoned(n);
                ops.backwardInferenceRelu(shape, x, dy, mask, gamma, rm, rv, EPS, nedx, null, null, null);
                ref.backwardInference(shape, x, g, gamma, rm, rv, EPS, redx, null, null);
                assertSameBits("eval dx", redx, edx);
                assertSameBits("eval dx without dz", redx, nedx);
                assertSameBits("eval dz", g, edz);
            } else {
                ops.backwardInferenceRelu(shape, x, dy, mask, gamma, rm, rv, EPS, edx, edz, edg, edb);
                assertFused(ops, "bn_prepare", "bn_dx_eval_relu_");
                // without dz (nvcc unswitches the elementwise loops on dz: a second copy of each loop runs here)
                float[] ndx = TestData.poisoned(n), nedx = TestData.poisoned(n);
                ops.backwardTrainingRelu(shape, x, dy, mask, gamma, sm, si, ndx, null, null, null);
                ops.backwardInferenceRelu(shape, x, dy, mask, gamma, rm, rv, EPS, nedx, null, null, null);
                assertSameBits("dx without dz", dx, ndx);
                assertSameBits("eval dx without dz", edx, nedx);
                ref.backwardInference(shape, x, g, gamma, rm, rv, EPS, redx, redg, redb);
                assertSameBits("eval dx", redx, edx);
                assertSameBits("eval dz", g, edz);
                if (grads) {
                    assertSameBits("eval dgamma", redg, edg);
                    assertSameBits("eval dbeta", redb, edb);
                }
            }
        }
        assertSameBits("dx", rdx, dx);
        assertSameBits("dz", g, dz);
        if (grads) {
            assertSameBits("dgamma", rdg, dg);
            assertSameBits("dbeta", rdb, db);
        }
        Reference64.Backward e = Reference64.backwardTraining(shape, x, g, gamma, sm, si);
        assertDx(e, dx);
        assertDgamma(e, rdg);
        assertDbeta(e, rdb);
    }

    @ParameterizedTest(name = "{0} {1} on {2} SMs")
    @MethodSource("sixteenBitCases")
    void sixteenBitFusedBackwardIsTheUnfusedBackwardOfTheGatedGradient(DType t, Shape shape, int sms, int index) {
        int n = shape.elementCountAsInt(), c = shape.channels();
        SplittableRandom r = TestData.random(shape.hashCode() * 31L + index);
        short[] x = t.encode(TestData.perChannelNormal(r, shape));
        float[] dyf = TestData.normal(r, n, 0, 1);
        int[] mask = mask(r, n);
        poisonGatedOut(dyf, mask);
        short[] dy = t.encode(dyf);
        boolean affine = index % 3 != 1, grads = index % 5 != 3;
        float[] gamma = affine ? signedGamma(r, c) : null;
        float[] sm = TestData.normal(r, c, 0, 1), si = TestData.uniform(r, c, 0.5, 2);
        float[] rm = TestData.normal(r, c, 0, 1), rv = TestData.uniform(r, c, 0.5, 2);
        short[] g = new short[n];
        for (int i = 0; i < n; i++) g[i] = bit(mask, i) ? dy[i] : 0;
        short[] dx = poisoned(t, n), dz = poisoned(t, n), edx = poisoned(t, n);
        short[] edz = poisoned(t, n), rdx = poisoned(t, n), redx = poisoned(t, n);
        float[] dg = grads ? TestData.poisoned(c) : null, db = grads ? TestData.poisoned(c) : null;
        float[] edg = grads ? TestData.poisoned(c) : null, edb = grads ? TestData.poisoned(c) : null;
        float[] rdg = TestData.poisoned(c), rdb = TestData.poisoned(c);
        float[] redg = TestData.poisoned(c), redb = TestData.poisoned(c);
        try (HostArrayBatchNormOps ops = emulator(sms, 3 + index, !large(shape));
             BatchNormOps ref = emulator(sms, 2000 + index, !large(shape))) {
            ops.backwardTrainingRelu(shape, t, x, dy, mask, gamma, sm, si, dx, dz, dg, db);
            assertFused(ops, "bn_backward_reduce_relu_", "bn_dx_relu_");
            ref.backwardTraining(shape, t, x, g, gamma, sm, si, rdx, rdg, rdb);
            if (large(shape)) {   // the eval dx pass alone, with and without dz
                ops.backwardInferenceRelu(shape, t, x, dy, mask, gamma, rm, rv, EPS, edx, edz, null, null);
                short[] nedx = poisoned(t, n);
                ops.backwardInferenceRelu(shape, t, x, dy, mask, gamma, rm, rv, EPS, nedx, null, null, null);
                ref.backwardInference(shape, t, x, g, gamma, rm, rv, EPS, redx, null, null);
                assertSameBits("eval dx", redx, edx);
                assertSameBits("eval dx without dz", redx, nedx);
                assertSameBits("eval dz", g, edz);
            } else {
                ops.backwardInferenceRelu(shape, t, x, dy, mask, gamma, rm, rv, EPS, edx, edz, edg, edb);
                assertFused(ops, "bn_prepare", "bn_dx_eval_relu_");
                short[] ndx = poisoned(t, n), nedx = poisoned(t, n);
                ops.backwardTrainingRelu(shape, t, x, dy, mask, gamma, sm, si, ndx, null, null, null);
                ops.backwardInferenceRelu(shape, t, x, dy, mask, gamma, rm, rv, EPS, nedx, null, null, null);
                assertSameBits("dx without dz", dx, ndx);
                assertSameBits("eval dx without dz", edx, nedx);
                ref.backwardInference(shape, t, x, g, gamma, rm, rv, EPS, redx, redg, redb);
                assertSameBits("eval dx", redx, edx);
                assertSameBits("eval dz", g, edz);
                if (grads) {
                    assertSameBits("eval dgamma", redg, edg);
                    assertSameBits("eval dbeta", redb, edb);
                }
            }
        }
        assertSameBits("dx", rdx, dx);
        assertSameBits("dz", g, dz);
        if (grads) {
            assertSameBits("dgamma", rdg, dg);
            assertSameBits("dbeta", rdb, db);
        }
        Reference64.Backward e = Reference64.backwardTraining(shape, t.decode(x), t.decode(g), gamma, sm, si);
        HalfTolerances.assertDx(t, e, dx);
        if (grads) {
            assertDgamma(e, dg);
            assertDbeta(e, db);
        }
    }

    /**
     * Every flag both ways on every sums kernel (channels-first and rows, scalar and vector, each storage type): no
     * gamma, only dgamma, only dbeta, in training and eval; bit for bit the unfused kernels on the gated gradient.
     */
    @Test
    void everyOutputSelectionMatchesTheUnfusedKernels() {
        List<Shape> shapes = List.of(Shape.channelsFirst(2, 3, 1024), Shape.channelsFirst(2, 3, 1025),
                Shape.channelsLast(64, 8), Shape.channelsLast(64, 5));
        try (HostArrayBatchNormOps ops = emulator(132, 21, false); BatchNormOps ref = emulator(132, 22, false)) {
            for (DType t : DType.values()) {
                for (Shape shape : shapes) {
                    int n = shape.elementCountAsInt(), c = shape.channels();
                    SplittableRandom r = TestData.random(shape.hashCode() + t.ordinal());
                    float[] x = rounded(t, TestData.perChannelNormal(r, shape));
                    float[] dy = rounded(t, TestData.normal(r, n, 0, 1));
                    int[] mask = mask(r, n);
                    float[] gamma = TestData.uniform(r, c, 0.5, 1.5);
                    float[] sm = TestData.normal(r, c, 0, 1), si = TestData.uniform(r, c, 0.5, 2);
                    float[] g = new float[n];
                    ReluMask.gate(dy, mask, g, 0, n);
                    for (int variant = 0; variant < 3; variant++) {
                        boolean train = variant != 2;
                        float[] gm = variant == 0 ? null : gamma;
                        float[][] got = new float[2][];
                        float[][] sums = new float[2][];
                        for (int k = 0; k < 2; k++) {
                            BatchNormOps o = k == 0 ? ops : ref;
                            float[] dgOnly = variant != 1 ? TestData.poisoned(c) : null;
                            float[] dbOnly = variant == 1 ? TestData.poisoned(c) : null;
                            got[k] = run(o, t, shape, train, k == 0, x, dy, g, mask, gm, sm, si, dgOnly, dbOnly);
                            sums[k] = dgOnly != null ? dgOnly : dbOnly;
                        }
                        String what = t + " " + shape + " variant " + variant;
                        assertSameBits(what + " dx", got[1], got[0]);
                        assertSameBits(what + " dgamma or dbeta", sums[1], sums[0]);
                    }
                }
            }
        }
    }

    /** One backward through the host API in dtype t (fused with the mask, or unfused on g), dx as floats. */
    private static float[] run(BatchNormOps o, DType t, Shape shape, boolean train, boolean fused, float[] x,
                               float[] dy, float[] g, int[] mask, float[] gamma, float[] sm, float[] si, float[] dg,
                               float[] db) {
        int n = shape.elementCountAsInt();
        if (t == DType.FLOAT32) {
            float[] dx = TestData.poisoned(n);
            if (train && fused) o.backwardTrainingRelu(shape, x, dy, mask, gamma, sm, si, dx, null, dg, db);
            if (train && !fused) o.backwardTraining(shape, x, g, gamma, sm, si, dx, dg, db);
            if (!train && fused) o.backwardInferenceRelu(shape, x, dy, mask, gamma, sm, si, EPS, dx, null, dg, db);
            if (!train && !fused) o.backwardInference(shape, x, g, gamma, sm, si, EPS, dx, dg, db);
            return dx;
        }
        short[] dx = poisoned(t, n), xs = t.encode(x), dys = t.encode(dy), gs = t.encode(g);
        if (train && fused) o.backwardTrainingRelu(shape, t, xs, dys, mask, gamma, sm, si, dx, null, dg, db);
        if (train && !fused) o.backwardTraining(shape, t, xs, gs, gamma, sm, si, dx, dg, db);
        if (!train && fused) o.backwardInferenceRelu(shape, t, xs, dys, mask, gamma, sm, si, EPS, dx, null, dg, db);
        if (!train && !fused) o.backwardInference(shape, t, xs, gs, gamma, sm, si, EPS, dx, dg, db);
        return t.decode(dx);
    }

    /** Against the CPU backend's fused backward (float64 tolerances; dz bit for bit), NaN under a 1 bit included. */
    @Test
    void matchesTheCpuBackendsFusedBackward() {
        Shape shape = Shape.channelsFirst(4, 6, 9, 11);
        int n = shape.elementCountAsInt(), c = shape.channels();
        SplittableRandom r = TestData.random(42);
        float[] x = TestData.perChannelNormal(r, shape), dy = TestData.normal(r, n, 0, 1);
        int[] mask = mask(r, n);
        float[] gamma = TestData.uniform(r, c, 0.5, 1.5);
        float[] sm = TestData.normal(r, c, 0, 1), si = TestData.uniform(r, c, 0.5, 2);
        float[][] out = new float[2][];
        float[][] dzs = new float[2][];
        float[][] dgs = new float[2][];
        int k = 0;
        try (BatchNormOps cpu = io.github.batchnorm4j.Backends.open("cpu"); BatchNormOps emu = emulator(132, 9, true)) {
            for (BatchNormOps ops : new BatchNormOps[]{cpu, emu}) {
                out[k] = TestData.poisoned(n);
                dzs[k] = TestData.poisoned(n);
                dgs[k] = TestData.poisoned(c);
                ops.backwardTrainingRelu(shape, x, dy, mask, gamma, sm, si, out[k], dzs[k], dgs[k], new float[c]);
                k++;
            }
        }
        assertSameBits("dz", dzs[0], dzs[1]);
        Reference64.Backward e = Reference64.backwardTraining(shape, x, dzs[0], gamma, sm, si);
        assertDx(e, out[0]);
        assertDx(e, out[1]);
        assertDgamma(e, dgs[1]);
    }

    /**
     * The fused backward reads no y (its API has none): against the unfused backward of the same shape it loads
     * exactly the mask's bytes twice more (the sums and the dx pass each read it once) and stores exactly dz more;
     * x, dy and the per-channel vectors are what the unfused kernels read. A y read would add S.
     */
    @Test
    void trainingBackwardReadsXDyAndTheMaskOnly() {
        for (Shape shape : List.of(Shape.channelsFirst(8, 16, 16, 16), Shape.channelsFirst(8, 3, 33, 65),
                Shape.channelsLast(2048, 131), Shape.channelsLast(32, 14, 14, 64))) {
            int n = shape.elementCountAsInt(), c = shape.channels();
            SplittableRandom r = TestData.random(3);
            float[] x = TestData.perChannelNormal(r, shape), dy = TestData.normal(r, n, 0, 1);
            int[] mask = mask(r, n);
            float[] mean = TestData.normal(r, c, 0, 1), invstd = TestData.uniform(r, c, 1, 2);
            try (HostArrayBatchNormOps ops = new HostArrayBatchNormOps("emulator",
                    new EmulatedDevice(EmulatorOptions.defaults().withoutChecks()), true)) {
                ops.backwardTraining(shape, x, dy, null, mean, invstd, new float[n], new float[c], new float[c]);
                TrafficMetrics unfused = ops.lastOperationMetrics().orElseThrow();
                ops.backwardTrainingRelu(shape, x, dy, mask, null, mean, invstd, new float[n], new float[n],
                        new float[c], new float[c]);
                TrafficMetrics fused = ops.lastOperationMetrics().orElseThrow();
                // Each pass loads each word once per warp access that touches it: exactly the mask twice when warps'
                // elements start on words (runs or rows of a multiple of 32 elements), more where accesses straddle
                // words (runs of 2145 floats, rows of 131), still far below the S a y read would add.
                long maskBytes = 4L * ReluMask.words(n), extra = fused.globalBytesLoaded() - unfused.globalBytesLoaded();
                String what = shape + ": bytes loaded, unfused " + unfused + ", fused " + fused;
                long row = shape.layout() == io.github.batchnorm4j.Layout.CHANNELS_LAST ? c : shape.inner();
                if (row % 32 == 0) {
                    assertEquals(2 * maskBytes, extra, what);
                } else {
                    assertTrue(extra > 2 * maskBytes && extra < n, what);   // n bytes = S/4
                }
                assertEquals(unfused.globalBytesStored() + 4L * n, fused.globalBytesStored(),
                        shape + ": bytes stored, unfused " + unfused + ", fused " + fused);
            }
        }
    }

    /** Device API: in place (dx = dy, or dz = dy) gives the out-of-place bits; bad arguments are named. */
    @Test
    void inPlaceAndArgumentChecksOnTheDeviceApi() {
        Shape shape = Shape.channelsFirst(2, 3, 16, 16);
        int n = shape.elementCountAsInt(), c = shape.channels(), words = ReluMask.wordsAsInt(n);
        SplittableRandom r = TestData.random(11);
        float[] x = TestData.perChannelNormal(r, shape), dy = TestData.normal(r, n, 0, 1);
        int[] mask = mask(r, n);
        float[] gamma = TestData.uniform(r, c, 0.5, 1.5), mean = TestData.normal(r, c, 0, 1);
        float[] invstd = TestData.uniform(r, c, 0.5, 2);
        try (EmulatedDevice dev = new EmulatedDevice(EmulatorOptions.defaults());
             DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev);
             DeviceBuffer bx = dev.allocate(4L * n); DeviceBuffer bdy = dev.allocate(4L * n);
             DeviceBuffer bdx = dev.allocate(4L * n); DeviceBuffer bdz = dev.allocate(4L * n);
             DeviceBuffer bm = dev.allocate(4L * words); DeviceBuffer ch = dev.allocate(4L * 256 * 8)) {
            DeviceStream s = dev.defaultStream();
            DevicePointer[] cv = new DevicePointer[7];
            for (int i = 0; i < cv.length; i++) cv[i] = ch.at(1024L * i);
            dev.copyToDevice(x, 0, bx.pointer(), n, s);
            dev.copyToDevice(mask, 0, bm.pointer(), words, s);
            dev.copyToDevice(gamma, 0, cv[0], c, s);
            dev.copyToDevice(mean, 0, cv[1], c, s);
            dev.copyToDevice(invstd, 0, cv[2], c, s);
            for (boolean train : new boolean[]{true, false}) {
                float[][] got = new float[3][];   // out of place, dx = dy, dz = dy: {dx, dz} bits compared
                float[][] gotDz = new float[3][];
                for (int mode = 0; mode < 3; mode++) {
                    dev.copyToDevice(dy, 0, bdy.pointer(), n, s);
                    dev.copyToDevice(TestData.poisoned(n), 0, bdx.pointer(), n, s);
                    dev.copyToDevice(TestData.poisoned(n), 0, bdz.pointer(), n, s);
                    DevicePointer pdx = mode == 1 ? bdy.pointer() : bdx.pointer();
                    DevicePointer pdz = mode == 2 ? bdy.pointer() : bdz.pointer();
                    if (train) {
                        bn.backwardTrainingRelu(shape, bx.pointer(), bdy.pointer(), bm.pointer(), cv[0], cv[1], cv[2],
                                pdx, pdz, cv[3], cv[4], s);
                    } else {
                        bn.backwardInferenceRelu(shape, bx.pointer(), bdy.pointer(), bm.pointer(), cv[0], cv[1],
                                cv[2], EPS, pdx, pdz, cv[3], cv[4], s);
                    }
                    got[mode] = TestData.poisoned(n);
                    gotDz[mode] = TestData.poisoned(n);
                    dev.copyToHost(pdx, got[mode], 0, n, s);
                    dev.copyToHost(pdz, gotDz[mode], 0, n, s);
                }
                assertSameBits("dx = dy", got[0], got[1]);
                assertSameBits("dz = dy, dx", got[0], got[2]);
                assertSameBits("dx = dy, dz", gotDz[0], gotDz[1]);
                assertSameBits("dz = dy", gotDz[0], gotDz[2]);
            }
            DevicePointer px = bx.pointer(), pdy = bdy.pointer(), pdx = bdx.pointer(), pdz = bdz.pointer();
            DevicePointer pm = bm.pointer();
            // both outputs over dy
            assertMentions(assertThrows(IllegalArgumentException.class, () -> bn.backwardTrainingRelu(shape, px, pdy,
                    pm, cv[0], cv[1], cv[2], pdy, pdy, cv[3], cv[4], s)), "dz", "dx");
            // dz over the mask, partly
            try (DeviceBuffer both = dev.allocate(4L * (n + words))) {
                assertMentions(assertThrows(IllegalArgumentException.class, () -> bn.backwardTrainingRelu(shape, px,
                        pdy, both.pointer(), cv[0], cv[1], cv[2], pdx, both.at(4), cv[3], cv[4], s)), "dz", "mask");
            }
            // the mask one word short
            try (DeviceBuffer shortMask = dev.allocate(4L * (words - 1))) {
                assertMentions(assertThrows(IllegalArgumentException.class, () -> bn.backwardTrainingRelu(shape, px,
                        pdy, shortMask.pointer(), cv[0], cv[1], cv[2], pdx, pdz, cv[3], cv[4], s)), "mask",
                        String.valueOf(words));
                assertMentions(assertThrows(IllegalArgumentException.class, () -> bn.backwardInferenceRelu(shape, px,
                        pdy, shortMask.pointer(), cv[0], cv[1], cv[2], EPS, pdx, pdz, cv[3], cv[4], s)), "mask",
                        String.valueOf(words));
            }
            // dbeta and dgamma one channel short (the last slot of the channel buffer)
            DevicePointer lastChannels = ch.at(4L * 256 * 8 - 4L * (c - 1));
            assertMentions(assertThrows(IllegalArgumentException.class, () -> bn.backwardTrainingRelu(shape, px, pdy,
                    pm, cv[0], cv[1], cv[2], pdx, pdz, cv[3], lastChannels, s)), "dbeta");
            assertMentions(assertThrows(IllegalArgumentException.class, () -> bn.backwardInferenceRelu(shape, px,
                    pdy, pm, cv[0], cv[1], cv[2], EPS, pdx, pdz, lastChannels, cv[4], s)), "dgamma");
            assertMentions(assertThrows(IllegalArgumentException.class, () -> bn.backwardInferenceRelu(shape, px,
                    pdy, pm, cv[0], cv[1], cv[2], EPS, pdx, pdz, cv[3], lastChannels, s)), "dbeta");
            // a 16-bit call checks the mask as 32-bit words: words/2 words are too few
            try (DeviceBuffer halfMask = dev.allocate(4L * words / 2 + 2)) {
                assertMentions(assertThrows(IllegalArgumentException.class, () -> bn.backwardTrainingRelu(shape,
                        DType.FLOAT16, px, pdy, halfMask.pointer(), cv[0], cv[1], cv[2], pdx, pdz, cv[3], cv[4], s)),
                        "mask");
            }
            // nothing written by the refused calls
            float[] still = TestData.poisoned(n);
            dev.copyToDevice(still, 0, pdz, n, s);
            assertThrows(IllegalArgumentException.class, () -> bn.backwardTrainingRelu(shape, px, pdy, pm, cv[0],
                    cv[1], cv[2], pdx, pdz, cv[3], lastChannels, s));
            float[] after = new float[n];
            dev.copyToHost(pdz, after, 0, n, s);
            assertSameBits("dz after a refused call", still, after);
        }
    }

    private static void assertFused(HostArrayBatchNormOps ops, String first, String last) {
        List<KernelLaunch> l = ops.lastOperationLaunches();
        assertTrue(l.get(0).kernel().startsWith(first), l.toString());
        assertTrue(l.get(l.size() - 1).kernel().startsWith(last), l.toString());
        for (KernelLaunch k : l) {
            if (k.kernel().startsWith("bn_dx_") || k.kernel().startsWith("bn_backward_reduce")) {
                assertTrue(k.kernel().contains("_relu_"), "an unfused kernel ran: " + l);
            }
        }
    }

    /** The values of a in dtype t (float32: a itself). */
    private static float[] rounded(DType t, float[] a) {
        return t == DType.FLOAT32 ? a : t.decode(t.encode(a));
    }

    private static short[] poisoned(DType t, int n) {
        return t.encode(TestData.poisoned(n));
    }

    static void assertSameBits(String what, float[] expected, float[] actual) {
        assertEquals(expected.length, actual.length, what);
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
                fail(what + ": first difference at " + i + ": " + expected[i] + " vs " + actual[i]);
            }
        }
    }

    static void assertSameBits(String what, short[] expected, short[] actual) {
        for (int i = 0; i < expected.length; i++) {
            if (expected[i] != actual[i]) {
                fail(what + ": first difference at " + i + ": 0x" + Integer.toHexString(expected[i] & 0xffff)
                        + " vs 0x" + Integer.toHexString(actual[i] & 0xffff));
            }
        }
    }

    /**
     * gamma of magnitude 0.5..1.5 with every other channel negative: a gated (zero) gradient times a negative
     * coefficient is -0 before the eval dx's "+ 0", so the sign of dx's zeros tells whether that addition ran.
     */
    private static float[] signedGamma(SplittableRandom r, int c) {
        float[] gamma = TestData.uniform(r, c, 0.5, 1.5);
        for (int i = 1; i < c; i += 2) {
            gamma[i] = -gamma[i];
        }
        return gamma;
    }
}
