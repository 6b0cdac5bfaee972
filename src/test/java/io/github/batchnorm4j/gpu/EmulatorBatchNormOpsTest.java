package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.BatchNormOpsContractTest;
import io.github.batchnorm4j.ChannelStatistics;
import io.github.batchnorm4j.GradientSums;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.ptx.EmulatorOptions;
import io.github.batchnorm4j.testing.Reference64;
import io.github.batchnorm4j.testing.TestData;
import io.github.batchnorm4j.testing.Tolerances;
import org.junit.jupiter.api.ClassOrderer;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.TestClassOrder;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The {@link BatchNormOpsContractTest} contract for our kernels: the shipped PTX on the PTX emulator with every check
 * on (memcheck, initcheck, racecheck, warp-sync check; a violation fails the call with a DeviceException) and blocks
 * in shuffled orders, on emulated GPUs of the sizes the kernels meet: 132 SMs (H100 SXM; this class, the full
 * docs/design.md §6 matrix), 1 SM, 108 (A100) and 114 (H100 PCIe) (nested classes, shapes chosen for the paths small
 * matrices never reach: more than 256 partials per channel, every unroll slot of every streaming loop, sizes one past
 * and one short of the vector width and of unroll multiples, channels-first tensors read as rows). Then
 * {@link SameBitsOnEveryGpu} checks that every GPU size gives the same bits. {@link SuiteCoverageGateTest}, at the end
 * of {@code mvn test}, checks that these and the other emulator tests executed every reachable instruction of the
 * batch-norm kernels.
 */
@TestClassOrder(ClassOrderer.OrderAnnotation.class)
class EmulatorBatchNormOpsTest extends BatchNormOpsContractTest {
    /** Our kernels on an emulated GPU with {@code sms} SMs, blocks shuffled by {@code seed}. */
    static BatchNormOps emulator(int sms, long seed) {
        EmulatorOptions o = EmulatorOptions.defaults().withMultiprocessorCount(sms).withBlockOrderSeed(seed);
        return new HostArrayBatchNormOps("emulator", new EmulatedDevice(o), true);
    }

    @Override
    protected List<Shape> shapes() {
        List<Shape> s = new ArrayList<>(super.shapes());
        s.add(Shape.channelsFirst(4, 3, 32, 32));   // inner % 4 == 0: vec4, one block per channel (4096 floats)
        s.add(Shape.channelsFirst(24, 3, 16, 16));  // vec4, innerU = 64: 6 blocks per channel, a step spans 4 runs
        s.add(Shape.channelsLast(2, 48, 48, 8));    // C % 4 == 0: vec4, 4608 rows in 18 row splits
        s.add(Shape.channelsLast(2048, 132));       // 2 column blocks of 32 channel units (vec4), 64 row splits
        s.add(Shape.channelsLast(2, 33, 33, 37));   // scalar, 2 column blocks of 32 channels, row splits
        return s;
    }

    @Override
    protected BatchNormOps openOps() {
        return emulator(132, 7);
    }

    /**
     * 1 SM: elementwise grids of 8 blocks, so every warp strides over many units and every unroll slot of the
     * elementwise loops runs. The reductions' geometry does not depend on the SM count; these shapes reach its large
     * cases: channels split into more than 256 blocks (the merge loop's second pass), blocks one unit past a full
     * unroll iteration, and the rows view of small-inner channels-first tensors (columns grouped into channels).
     */
    @Nested
    @Order(1)
    @DisplayName("1 SM")
    class OneSm extends BatchNormOpsContractTest {
        @Override
        protected List<Shape> shapes() {
            return List.of(
                    Shape.channelsFirst(1, 1, 263_171),      // scalar cf: 257 blocks of 1025 floats (4 slots + 1)
                    Shape.channelsFirst(1, 1, 1_052_688),    // vec4 cf: 257 blocks of 1025 float4s
                    Shape.channelsFirst(3, 2, 129),          // scalar cf, inner 129: a step of 256 spans a run
                    Shape.channelsLast(263_200, 1),          // scalar rows, C = 1: 257 row splits of 1025 rows
                    Shape.channelsFirst(128, 4, 49),         // vec4 rows view: 6 row splits > 4 row groups
                    Shape.channelsFirst(2048, 5, 3),         // scalar rows view of inner 3: 15 columns, 5 channels
                    Shape.channelsFirst(2048, 8, 6),         // vec4 rows view of inner 6: float4s straddle channels
                    Shape.channelsFirst(64, 128, 3),         // vec4 rows view: 384 columns staged by 192 threads
                    // Elementwise runs whose last unit sits exactly at a slot's bound (lane + 32u == piece end), so a
                    // slot reading one unit too far writes the next channel's first element: scalar, second pass,
                    // slots 1, 2, 3; float4, first pass, slots 1, 2, 3.
                    Shape.channelsFirst(4, 6, 180), Shape.channelsFirst(4, 6, 212), Shape.channelsFirst(4, 6, 244),
                    Shape.channelsFirst(4, 6, 200), Shape.channelsFirst(4, 6, 328), Shape.channelsFirst(4, 6, 456));
        }

        @Override
        protected BatchNormOps openOps() {
            return emulator(1, 11);
        }
    }

    /** 108 SMs (A100): realistic small shapes, each view once. */
    @Nested
    @Order(2)
    @DisplayName("108 SMs (A100)")
    class A100 extends BatchNormOpsContractTest {
        @Override
        protected List<Shape> shapes() {
            return List.of(
                    Shape.channelsFirst(64, 20, 7, 7),       // inner 49: vec4 rows view, 245x1 blocks, 3 row splits
                    Shape.channelsFirst(256, 64, 3),         // inner 3: rows view, vec4
                    Shape.channelsFirst(2, 3, 1028),         // vec4 cf with a run longer than a block step
                    Shape.channelsFirst(64, 5, 49),          // scalar rows view: 245-thread blocks (by = 1), splits
                    Shape.channelsLast(64, 9, 9, 20));       // vec4 rows, 5 channel units
        }

        @Override
        protected BatchNormOps openOps() {
            return emulator(108, 13);
        }
    }

    /** 114 SMs (H100 PCIe). */
    @Nested
    @Order(3)
    @DisplayName("114 SMs (H100 PCIe)")
    class H100Pcie extends BatchNormOpsContractTest {
        @Override
        protected List<Shape> shapes() {
            return List.of(
                    Shape.channelsFirst(4096, 64, 1, 1),     // inner 1: exactly channels-last [4096, 64]
                    Shape.channelsFirst(16, 3, 33, 33),      // scalar cf, 1089-float runs
                    Shape.channelsFirst(1, 2, 131),          // scalar cf: 131 units, threads 131..255 idle
                    Shape.channelsLast(300, 37));            // scalar rows, 2 column blocks
        }

        @Override
        protected BatchNormOps openOps() {
            return emulator(114, 17);
        }
    }

    /**
     * The split operations of {@link io.github.batchnorm4j.SplitBatchNormOps} on our merge kernels (bn_stats_merge, bn_backward_merge with one
     * record): with and without gamma/beta and running statistics, against the float64 reference.
     */
    @Nested
    @Order(4)
    @DisplayName("split operations")
    class SplitOperations {
        static Stream<Arguments> cases() {
            List<Arguments> out = new ArrayList<>();
            for (Shape s : List.of(Shape.channelsFirst(4, 3, 5, 7), Shape.channelsFirst(2, 3, 130),
                    Shape.channelsLast(40, 12))) {
                out.add(Arguments.of(s, true, true));
                out.add(Arguments.of(s, false, false));
            }
            return out.stream();
        }

        @ParameterizedTest(name = "{0} affine={1} running={2}")
        @MethodSource("cases")
        void forwardWithStatisticsAndBackwardWithSumsMatchTheReference(Shape s, boolean affine, boolean running) {
            try (HostArrayBatchNormOps ops = (HostArrayBatchNormOps) emulator(132, 23)) {
                SplittableRandom r = TestData.random(s.hashCode() + (affine ? 1 : 0));
                int n = s.elementCountAsInt(), c = s.channels();
                float[] x = TestData.perChannelNormal(r, s);
                float[] dy = TestData.normal(r, n, 0, 1);
                float[] g = affine ? TestData.uniform(r, c, 0.5, 1.5) : null;
                float[] b = affine ? TestData.normal(r, c, 0, 1) : null;
                float[] rm0 = TestData.normal(r, c, 0, 1), rv0 = TestData.uniform(r, c, 0.5, 2);
                float[] rm = running ? rm0.clone() : null, rv = running ? rv0.clone() : null;
                Reference64.Forward e = Reference64.forwardTraining(s, x, g, b, 1e-5, running ? rm0 : null,
                        running ? rv0 : null, 0.1);
                float[] y = TestData.poisoned(n), sm = TestData.poisoned(c), si = TestData.poisoned(c);

                ops.forwardWithStatistics(s, x, ops.statistics(s, x), g, b, 1e-5, rm, rv, 0.1, y, sm, si);

                Tolerances.assertForward("y", e.y(), y);
                Tolerances.assertForward("saveMean", e.mean(), sm);
                Tolerances.assertForward("saveInvstd", e.invstd(), si);
                if (running) {
                    Tolerances.assertForward("runningMean", e.runningMean(), rm);
                    Tolerances.assertForward("runningVar", e.runningVar(), rv);
                }
                Reference64.Backward be = Reference64.backwardTraining(s, x, dy, g, sm, si);
                float[] dx = TestData.poisoned(n);
                GradientSums sums = ops.gradientSums(s, x, dy, sm, si);
                ops.backwardWithSums(s, x, dy, g, sm, si, sums, dx);
                Tolerances.assertDx(be, dx);
                float[] dgamma = new float[c], dbeta = new float[c];
                for (int k = 0; k < c; k++) {
                    dgamma[k] = (float) sums.sumDyXhat(k);
                    dbeta[k] = (float) sums.sumDy(k);
                }
                Tolerances.assertDgamma(be, dgamma);
                Tolerances.assertDbeta(be, dbeta);
            }
        }
    }

    /**
     * Issue 10 item 6: the same input gives the same bits on 1, 108, 114 and 132 SMs, with blocks in sequence or
     * shuffled; every shape here had an SM-dependent split count before the geometry became a function of the shape.
     */
    @Nested
    @Order(5)
    @DisplayName("same bits on every GPU size")
    class SameBitsOnEveryGpu {
        static Stream<Shape> shapes() {
            return Stream.of(
                    Shape.channelsFirst(48, 3, 64, 64),      // vec4 cf: the example
                    Shape.channelsFirst(16, 3, 33, 65),      // scalar cf
                    Shape.channelsFirst(1024, 6, 5),         // rows view of inner 5
                    Shape.channelsLast(8, 32, 32, 12));      // vec4 rows
        }

        @ParameterizedTest(name = "{0}")
        @MethodSource("shapes")
        void forwardBackwardAndStatisticsAreBitwiseIdentical(Shape shape) {
            int[] sms = {132, 1, 108, 114, 132};
            long[] seeds = {-1, 3, 5, 9, 21};   // -1: blocks in index order
            float[][] first = null;
            for (int i = 0; i < sms.length; i++) {
                EmulatorOptions o = EmulatorOptions.defaults().withMultiprocessorCount(sms[i]);
                o = seeds[i] < 0 ? o.withSequentialBlocks() : o.withBlockOrderSeed(seeds[i]);
                float[][] out;
                try (BatchNormOps ops = new HostArrayBatchNormOps("emulator", new EmulatedDevice(o), true)) {
                    out = run(ops, shape);
                }
                if (first == null) {
                    first = out;
                    continue;
                }
                String[] names = {"y", "saveMean", "saveInvstd", "runningMean", "runningVar", "dx", "dgamma",
                        "dbeta", "statistics mean", "statistics m2"};
                for (int k = 0; k < out.length; k++) {
                    assertBitwiseEqual(first[k], out[k], names[k] + " of " + shape + " on " + sms[i] + " SMs (seed "
                            + seeds[i] + ") vs 132 SMs in index order");
                }
            }
        }

        private float[][] run(BatchNormOps ops, Shape s) {
            SplittableRandom r = TestData.random(s.hashCode());
            int n = s.elementCountAsInt(), c = s.channels();
            float[] x = TestData.perChannelNormal(r, s);
            float[] dy = TestData.normal(r, n, 0, 1);
            float[] g = TestData.uniform(r, c, 0.5, 1.5);
            float[] b = TestData.normal(r, c, 0, 1);
            float[] rm = TestData.normal(r, c, 0, 1);
            float[] rv = TestData.uniform(r, c, 0.5, 2);
            float[] y = TestData.poisoned(n), mean = TestData.poisoned(c), invstd = TestData.poisoned(c);
            ops.forwardTraining(s, x, g, b, 1e-5, rm, rv, 0.1, y, mean, invstd);
            float[] dx = TestData.poisoned(n), dg = TestData.poisoned(c), db = TestData.poisoned(c);
            ops.backwardTraining(s, x, dy, g, mean, invstd, dx, dg, db);
            ChannelStatistics st = ops.statistics(s, x);
            return new float[][]{y, mean, invstd, rm, rv, dx, dg, db, toFloat(st.means()), toFloat(st.m2s())};
        }

        private static void assertBitwiseEqual(float[] e, float[] a, String what) {
            int bad = 0, first = -1;
            for (int i = 0; i < e.length; i++) {
                if (Float.floatToRawIntBits(e[i]) != Float.floatToRawIntBits(a[i])) {
                    if (first < 0) first = i;
                    bad++;
                }
            }
            if (bad > 0) {
                assertEquals(e[first], a[first], what + ": " + bad + " of " + e.length + " elements differ in their"
                        + " bits, the first at index " + first);
                assertArrayEquals(e, a, what);   // equal values with different bits (-0 / NaN payloads)
            }
        }
    }
}
