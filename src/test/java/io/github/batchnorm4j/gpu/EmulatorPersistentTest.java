package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.ptx.EmulatorOptions;
import io.github.batchnorm4j.testing.Reference64;
import io.github.batchnorm4j.testing.TestData;
import io.github.batchnorm4j.testing.Tolerances;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The persistent single-pass kernels (bn_persist_fwd_*, bn_persist_bwd_*) on the emulator with every check on: the
 * host takes them when the grid can be co-resident, their results match float64 and the two-pass kernels within
 * today's tolerances, are bitwise identical under two shuffled block orders, and the host falls back to the two-pass
 * kernels when the grid does not fit (a 1-SM device); the emulator refuses a non-co-resident cooperative grid.
 * (EmulatorBatchNormOpsTest's contract runs them too: at 132 SMs every contract shape that fits takes this path.)
 */
class EmulatorPersistentTest {
    /** Shapes reaching every path of the four views × vector choice, with and without the exchange. */
    static Stream<Shape> shapes() {
        return Stream.of(
                Shape.channelsFirst(2, 8, 28, 28),     // cf vec4, one block per channel (no barrier)
                Shape.channelsFirst(24, 2, 32, 32),    // cf vec4, 3 blocks per channel
                Shape.channelsFirst(4, 3, 33, 65),     // cf scalar, 3 and 5 blocks per channel
                Shape.channelsFirst(2, 3, 15, 15),     // cf scalar, one block per channel
                Shape.channelsLast(4, 12, 12, 68),     // rows vec4 (2 x 128 blocks, the last one half used), row splits
                Shape.channelsLast(64, 256),           // rows vec4 (32 x 8 blocks), 1 and 2 row splits
                Shape.channelsLast(2, 33, 33, 37),     // rows scalar, 2 column blocks, 18 and 35 row splits (> 8)
                Shape.channelsFirst(200, 4, 49),       // rows view of inner 49 (vec4, 49 x 4), 7 and 13 row splits
                Shape.channelsFirst(300, 5, 3),        // rows view of inner 3 (scalar), row splits
                Shape.channelsFirst(6, 2, 1365),       // cf scalar, 2 full blocks per channel (every unit slot used)
                Shape.channelsFirst(1, 3, 8, 16),      // cf vec4, 32 units per channel: threads and warps without one
                Shape.channelsFirst(1, 3, 131),        // cf scalar, 131 units per channel
                Shape.channelsFirst(2, 2, 1088),       // cf vec4, runs of 272 units (> a block's step)
                Shape.channelsLast(2048, 8),           // rows vec4, 2 full row splits
                Shape.channelsLast(16, 37),            // rows scalar, one row split
                Shape.channelsLast(1024, 9),           // rows scalar, 2 full row splits of 512 rows
                Shape.channelsFirst(40, 3, 99),        // rows view of inner 99 (scalar): blocks of 198 x 1
                Shape.channelsFirst(20, 8, 99),        // rows view of inner 99 (vec4): blocks of 198 x 1
                Shape.channelsFirst(4, 1, 1100),       // cf vec4, a block of 1100 units: its end in unit slot 4
                Shape.channelsFirst(1, 2, 3600),       // cf vec4, a block of 900 units: its end in unit slot 3
                Shape.channelsLast(330, 9));           // rows scalar, a block of 330 rows: its end in row slot 10
    }

    static Stream<Shape> inPlaceShapes() {
        return Stream.of(Shape.channelsFirst(16, 4, 32, 32), Shape.channelsFirst(4, 3, 33, 65),
                Shape.channelsLast(2, 33, 33, 37), Shape.channelsLast(4, 12, 12, 68));
    }

    private static HostArrayBatchNormOps emulator(int sms, long seed) {
        HostArrayBatchNormOps ops = new HostArrayBatchNormOps("emulator", new EmulatedDevice(EmulatorOptions.defaults()
                .withMultiprocessorCount(sms).withBlockOrderSeed(seed)), true);
        ops.deviceApi().setTrainingPath(DeviceResidentBatchNorm.TrainingPath.AUTO);
        return ops;
    }

    /** One training step's outputs: y, saved statistics, running statistics, dx, dgamma, dbeta. */
    private record Step(float[] y, float[] mean, float[] invstd, float[] rm, float[] rv, float[] dx, float[] dgamma,
                        float[] dbeta, List<String> forwardKernels, List<String> backwardKernels) {
    }

    private static Step step(HostArrayBatchNormOps ops, Shape s, float[] x, float[] dy, float[] g, float[] b,
                             float[] rm0, float[] rv0) {
        int n = s.elementCountAsInt(), c = s.channels();
        float[] y = TestData.poisoned(n), mean = TestData.poisoned(c), invstd = TestData.poisoned(c);
        float[] rm = rm0.clone(), rv = rv0.clone();
        ops.forwardTraining(s, x, g, b, 1e-5, rm, rv, 0.1, y, mean, invstd);
        List<String> fk = ops.lastOperationLaunches().stream().map(KernelLaunch::kernel).toList();
        float[] dx = TestData.poisoned(n), dgamma = TestData.poisoned(c), dbeta = TestData.poisoned(c);
        ops.backwardTraining(s, x, dy, g, mean, invstd, dx, dgamma, dbeta);
        List<String> bk = ops.lastOperationLaunches().stream().map(KernelLaunch::kernel).toList();
        return new Step(y, mean, invstd, rm, rv, dx, dgamma, dbeta, fk, bk);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("shapes")
    void persistentMatchesFloat64AndTwoPassAndIsScheduleIndependent(Shape s) {
        SplittableRandom r = TestData.random(s.hashCode());
        int n = s.elementCountAsInt(), c = s.channels();
        float[] x = TestData.perChannelNormal(r, s), dy = TestData.normal(r, n, 0, 1);
        float[] g = TestData.uniform(r, c, 0.5, 1.5), b = TestData.normal(r, c, 0, 1);
        float[] rm = TestData.normal(r, c, 0, 1), rv = TestData.uniform(r, c, 0.5, 2);
        Step p1, p2, two;
        try (HostArrayBatchNormOps a = emulator(132, 7); HostArrayBatchNormOps bOps = emulator(132, 12345)) {
            p1 = step(a, s, x, dy, g, b, rm, rv);
            p2 = step(bOps, s, x, dy, g, b, rm, rv);
            a.deviceApi().setTrainingPath(DeviceResidentBatchNorm.TrainingPath.TWO_PASS);
            two = step(a, s, x, dy, g, b, rm, rv);
        }
        assertEquals(1, p1.forwardKernels().size(), "forward: " + p1.forwardKernels());
        assertTrue(p1.forwardKernels().get(0).startsWith("bn_persist_fwd_"), "forward: " + p1.forwardKernels());
        assertEquals(1, p1.backwardKernels().size(), "backward: " + p1.backwardKernels());
        assertTrue(p1.backwardKernels().get(0).startsWith("bn_persist_bwd_"), "backward: " + p1.backwardKernels());
        assertTrue(two.forwardKernels().get(0).startsWith("bn_stats_"), "two-pass: " + two.forwardKernels());
        // Bitwise identical under another block order.
        for (String[] t : new String[][]{{"y"}, {"mean"}, {"invstd"}, {"runningMean"}, {"runningVar"}, {"dx"},
                {"dgamma"}, {"dbeta"}}) {
            assertArrayEquals(bits(field(p1, t[0])), bits(field(p2, t[0])), t[0] + " differs between block orders");
        }
        // Float64 and the two-pass kernels, within today's tolerances.
        Reference64.Forward f = Reference64.forwardTraining(s, x, g, b, 1e-5, rm, rv, 0.1);
        for (Step st : new Step[]{p1, two}) {
            Tolerances.assertForward("y", f.y(), st.y());
            Tolerances.assertForward("mean", f.mean(), st.mean());
            Tolerances.assertForward("invstd", f.invstd(), st.invstd());
            Tolerances.assertForward("runningMean", f.runningMean(), st.rm());
            Tolerances.assertForward("runningVar", f.runningVar(), st.rv());
        }
        Tolerances.assertForward("y vs two-pass", Tolerances.toDouble(two.y()), p1.y());
        Reference64.Backward bw = Reference64.backwardTraining(s, x, dy, g, p1.mean(), p1.invstd());
        Tolerances.assertDx(bw, p1.dx());
        Tolerances.assertDgamma(bw, p1.dgamma());
        Tolerances.assertDbeta(bw, p1.dbeta());
        Reference64.Backward bw2 = Reference64.backwardTraining(s, x, dy, g, two.mean(), two.invstd());
        Tolerances.assertDx(bw2, two.dx());
    }

    private static float[] field(Step s, String name) {
        return switch (name) {
            case "y" -> s.y();
            case "mean" -> s.mean();
            case "invstd" -> s.invstd();
            case "runningMean" -> s.rm();
            case "runningVar" -> s.rv();
            case "dx" -> s.dx();
            case "dgamma" -> s.dgamma();
            default -> s.dbeta();
        };
    }

    private static int[] bits(float[] a) {
        return Arrays.stream(toBoxed(a)).mapToInt(Float::floatToRawIntBits).toArray();
    }

    private static Float[] toBoxed(float[] a) {
        Float[] o = new Float[a.length];
        for (int i = 0; i < a.length; i++) o[i] = a[i];
        return o;
    }

    /** Without gamma, beta and running statistics, in place (y over x, dx over dy): the flags' other sides. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("inPlaceShapes")
    void inPlaceWithoutAffineOrRunningStatistics(Shape s) {
        SplittableRandom r = TestData.random(5);
        int n = s.elementCountAsInt(), c = s.channels();
        float[] x = TestData.perChannelNormal(r, s), dy = TestData.normal(r, n, 0, 1);
        try (HostArrayBatchNormOps ops = emulator(132, 3)) {
            DeviceResidentBatchNorm api = ops.deviceApi();
            Device d = api.device();
            try (DeviceBuffer xb = d.allocate(4L * n); DeviceBuffer dyb = d.allocate(4L * n);
                 DeviceBuffer mean = d.allocate(4L * c); DeviceBuffer invstd = d.allocate(4L * c)) {
                d.copyToDevice(x, 0, xb.pointer(), n, null);
                d.copyToDevice(dy, 0, dyb.pointer(), n, null);
                api.forwardTraining(s, xb.pointer(), null, null, 1e-5, null, null, 0, xb.pointer(), mean.pointer(),
                        invstd.pointer(), null);
                assertTrue(api.lastOperationLaunches().get(0).kernel().startsWith("bn_persist_fwd_"));
                float[] y = new float[n], m = new float[c], is = new float[c];
                d.copyToHost(xb.pointer(), y, 0, n, null);
                d.copyToHost(mean.pointer(), m, 0, c, null);
                d.copyToHost(invstd.pointer(), is, 0, c, null);
                Reference64.Forward f = Reference64.forwardTraining(s, x, null, null, 1e-5, null, null, 0);
                Tolerances.assertForward("y", f.y(), y);
                // x again (y overwrote it), then dx over dy without gamma, dgamma or dbeta
                d.copyToDevice(x, 0, xb.pointer(), n, null);
                api.backwardTraining(s, xb.pointer(), dyb.pointer(), null, mean.pointer(), invstd.pointer(),
                        dyb.pointer(), null, null, null);
                assertTrue(api.lastOperationLaunches().get(0).kernel().startsWith("bn_persist_bwd_"));
                float[] dx = new float[n];
                d.copyToHost(dyb.pointer(), dx, 0, n, null);
                Tolerances.assertDx(Reference64.backwardTraining(s, x, dy, null, m, is), dx);
            }
        }
    }

    /** A device of 1 SM holds too few blocks for [8,28,28,64]'s 49-block grid: the host runs the two-pass kernels. */
    @Test
    void fallsBackToTwoPassWhenTheGridCannotBeCoResident() {
        Shape s = Shape.channelsLast(8, 28, 28, 64);
        SplittableRandom r = TestData.random(9);
        int n = s.elementCountAsInt(), c = s.channels();
        float[] x = TestData.perChannelNormal(r, s), dy = TestData.normal(r, n, 0, 1);
        float[] g = TestData.uniform(r, c, 0.5, 1.5), b = TestData.normal(r, c, 0, 1);
        float[] rm = TestData.normal(r, c, 0, 1), rv = TestData.uniform(r, c, 0.5, 2);
        try (HostArrayBatchNormOps ops = emulator(1, 1)) {
            Step st = step(ops, s, x, dy, g, b, rm, rv);
            assertEquals(List.of("bn_stats_cl_vec4", "bn_apply_cl_vec4"), st.forwardKernels());
            assertEquals(List.of("bn_backward_reduce_cl_vec4", "bn_dx_cl_vec4"), st.backwardKernels());
            Tolerances.assertForward("y", Reference64.forwardTraining(s, x, g, b, 1e-5, rm, rv, 0.1).y(), st.y());
        }
        // A channel needing more than 256 blocks takes the two-pass kernels too (16-bit: EmulatorPersistent16Test).
        assertTrue(LaunchGeometry.persistent(Shape.channelsFirst(1, 1, 1 << 21), true, DType.FLOAT32, 8).isPresent());
        assertTrue(LaunchGeometry.persistent(Shape.channelsFirst(1, 1, (1 << 21) + 4), true, DType.FLOAT32, 8)
                .isEmpty());
    }

    /** The emulator refuses a cooperative grid larger than the device holds at once, naming kernel, grid and limit. */
    @Test
    void emulatorRefusesANonCoResidentCooperativeGrid() {
        try (EmulatedDevice d = new EmulatedDevice(EmulatorOptions.defaults().withMultiprocessorCount(2));
             DeviceResidentBatchNorm api = new DeviceResidentBatchNorm(d)) {
            Kernel k = d.loadModule(PtxModules.FORWARD, PtxModules.read(PtxModules.FORWARD))
                    .kernel("bn_persist_fwd_cf_vec4");
            int perSm = d.maxActiveBlocksPerMultiprocessor(k, 256, 0);
            Dim3 grid = Dim3.of(2 * perSm + 1);
            DeviceException e = assertThrows(DeviceException.class,
                    () -> d.launchCooperative(k, grid, Dim3.of(256), 0, d.defaultStream(), new KernelArgs()));
            String m = e.getMessage();
            assertTrue(m.contains("bn_persist_fwd_cf_vec4") && m.contains(String.valueOf(grid.volume()))
                    && m.contains("= " + 2 * perSm), m);
            assertTrue(api.trainingPath() == DeviceResidentBatchNorm.TrainingPath.TWO_PASS, "the default");
        }
    }
}
