package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.ptx.EmulatorOptions;
import io.github.batchnorm4j.testing.HalfTolerances;
import io.github.batchnorm4j.testing.Reference64;
import io.github.batchnorm4j.testing.TestData;
import io.github.batchnorm4j.testing.Tolerances;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link EmulatorPersistentTest} for 16-bit tensors: the float16 and bfloat16 persistent kernels (bn_persist_*_f16,
 * _bf16, vector variants _vec8) on the emulator with every check on. The host takes them when the grid can be
 * co-resident (AUTO); y, dx and the statistics match float64 within the 16-bit tolerances of the two-pass 16-bit
 * kernels ({@link HalfTolerances}), and so do the two-pass kernels' on the same input; every output is bitwise
 * identical under two shuffled block orders; in place works; a 1-SM device falls back to the two-pass kernels.
 *
 * <p>The shapes reach every path of the 16 kernels (coverage gate): both views and unit widths, with and without the
 * exchange, idle column threads, channels of several columns (inner &gt; 1), and every unit slot, whose counts differ
 * by type and direction (forward 10 units of 8 halves (bfloat16 9) or 16 halves; backward 8 / 14, bfloat16 7 / 14:
 * {@link LaunchGeometry#persistForwardUnits}, {@link LaunchGeometry#persistBackwardUnits}).
 */
class EmulatorPersistent16Test {
    static Stream<Arguments> cases() {
        List<Shape> shapes = List.of(
                Shape.channelsFirst(2, 4, 28, 28),     // cf vec8 (98 units per run), one block per channel
                Shape.channelsFirst(60, 1, 1024),      // cf vec8, 7680 units: forward 3 full blocks, backward 4, 5
                Shape.channelsFirst(1, 1, 12800),      // cf vec8, 1600 units: one block to bf16 backward's slot 6
                Shape.channelsFirst(1, 1, 17408),      // cf vec8, 2176 units: one block to bf16 forward's slot 8
                Shape.channelsFirst(1, 3, 131),        // cf scalar, 131 units: threads and warps without one
                Shape.channelsFirst(6, 2, 1365),       // cf scalar, 2 blocks per channel, every forward slot
                Shape.channelsFirst(1, 2, 3500),       // cf scalar, one block to backward's slot 13 (14 units)
                Shape.channelsFirst(2, 3, 15, 15),     // cf scalar, one block per channel
                Shape.channelsLast(3600, 16),          // rows vec8 (2 x 128 blocks): row splits, forward slot 9
                Shape.channelsLast(800, 16),           // rows vec8, one row split to bf16 backward's slot 6
                Shape.channelsLast(1100, 16),          // rows vec8, one row split to bf16 forward's slot 8
                Shape.channelsLast(2, 24, 24, 24),     // rows vec8, C = 24: an idle column thread, row splits
                Shape.channelsFirst(100, 4, 6),        // rows view of inner 6 (vec8, whole channels per block)
                Shape.channelsLast(500, 17),           // rows scalar, 2 column blocks, row splits
                Shape.channelsLast(220, 9),            // rows scalar, one row split to backward's slot 13
                Shape.channelsFirst(300, 5, 3),        // rows view of inner 3 (scalar), row splits
                Shape.channelsFirst(40, 3, 99),        // rows view of inner 99 (scalar): blocks of 198 x 1
                Shape.channelsFirst(10, 16, 99));      // rows view of inner 99 (vec8): blocks of 198 x 1
        List<Arguments> out = new ArrayList<>();
        for (DType t : new DType[]{DType.FLOAT16, DType.BFLOAT16}) for (Shape s : shapes) out.add(Arguments.of(t, s));
        return out.stream();
    }

    private static HostArrayBatchNormOps emulator(int sms, long seed) {
        HostArrayBatchNormOps ops = new HostArrayBatchNormOps("emulator", new EmulatedDevice(EmulatorOptions.defaults()
                .withMultiprocessorCount(sms).withBlockOrderSeed(seed)), true);
        ops.deviceApi().setTrainingPath(DeviceResidentBatchNorm.TrainingPath.AUTO);
        return ops;
    }

    /** One case's inputs: x and dy rounded to the storage type, and their exact float32 values. */
    private record Inputs(DType t, Shape s, short[] x, short[] dy, float[] xf, float[] dyf, float[] g, float[] b,
                          float[] rm, float[] rv) {
        static Inputs draw(DType t, Shape s, long seed) {
            SplittableRandom r = TestData.random(seed);
            int n = s.elementCountAsInt(), c = s.channels();
            short[] x = t.encode(TestData.perChannelNormal(r, s)), dy = t.encode(TestData.normal(r, n, 0, 1));
            return new Inputs(t, s, x, dy, t.decode(x), t.decode(dy), TestData.uniform(r, c, 0.5, 1.5),
                    TestData.normal(r, c, 0, 1), TestData.normal(r, c, 0, 1), TestData.uniform(r, c, 0.5, 2));
        }
    }

    /** One training step's outputs: y, saved and running statistics, dx, dgamma, dbeta, and the kernels that ran. */
    private record Step(short[] y, float[] mean, float[] invstd, float[] rm, float[] rv, short[] dx, float[] dgamma,
                        float[] dbeta, List<String> forwardKernels, List<String> backwardKernels) {
    }

    private static short[] poisoned(DType t, int n) {
        short[] a = new short[n];
        Arrays.fill(a, t.encode(Float.NaN));
        return a;
    }

    private static Step step(HostArrayBatchNormOps ops, Inputs in) {
        Shape s = in.s();
        int n = s.elementCountAsInt(), c = s.channels();
        short[] y = poisoned(in.t(), n);
        float[] mean = TestData.poisoned(c), invstd = TestData.poisoned(c), rm = in.rm().clone(), rv = in.rv().clone();
        short[] x = in.x().clone();
        ops.forwardTraining(s, in.t(), x, in.g(), in.b(), 1e-5, rm, rv, 0.1, y, mean, invstd);
        assertArrayEquals(in.x(), x, "x must not be modified");
        List<String> fk = ops.lastOperationLaunches().stream().map(KernelLaunch::kernel).toList();
        short[] dx = poisoned(in.t(), n);
        float[] dgamma = TestData.poisoned(c), dbeta = TestData.poisoned(c);
        ops.backwardTraining(s, in.t(), in.x(), in.dy(), in.g(), mean, invstd, dx, dgamma, dbeta);
        List<String> bk = ops.lastOperationLaunches().stream().map(KernelLaunch::kernel).toList();
        return new Step(y, mean, invstd, rm, rv, dx, dgamma, dbeta, fk, bk);
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void persistentMatchesFloat64AndTwoPassAndIsScheduleIndependent(DType t, Shape s) {
        Inputs in = Inputs.draw(t, s, s.hashCode() * 31L + t.ordinal());
        Step p1, p2, two;
        try (HostArrayBatchNormOps a = emulator(132, 7); HostArrayBatchNormOps b = emulator(132, 12345)) {
            p1 = step(a, in);
            p2 = step(b, in);
            a.deviceApi().setTrainingPath(DeviceResidentBatchNorm.TrainingPath.TWO_PASS);
            two = step(a, in);
        }
        String suffix = t == DType.FLOAT16 ? "_f16" : "_bf16";
        assertEquals(1, p1.forwardKernels().size(), "forward: " + p1.forwardKernels());
        assertTrue(p1.forwardKernels().get(0).startsWith("bn_persist_fwd_")
                && p1.forwardKernels().get(0).contains(suffix), "forward: " + p1.forwardKernels());
        assertEquals(1, p1.backwardKernels().size(), "backward: " + p1.backwardKernels());
        assertTrue(p1.backwardKernels().get(0).startsWith("bn_persist_bwd_")
                && p1.backwardKernels().get(0).contains(suffix), "backward: " + p1.backwardKernels());
        assertTrue(two.forwardKernels().get(0).startsWith("bn_stats_"), "two-pass: " + two.forwardKernels());
        // Bitwise identical under another block order.
        assertArrayEquals(p1.y(), p2.y(), "y differs between block orders");
        assertArrayEquals(p1.dx(), p2.dx(), "dx differs between block orders");
        float[][] a1 = {p1.mean(), p1.invstd(), p1.rm(), p1.rv(), p1.dgamma(), p1.dbeta()};
        float[][] a2 = {p2.mean(), p2.invstd(), p2.rm(), p2.rv(), p2.dgamma(), p2.dbeta()};
        for (int i = 0; i < a1.length; i++) {
            assertArrayEquals(bits(a1[i]), bits(a2[i]), "per-channel output " + i + " differs between block orders");
        }
        // Float64, within the 16-bit tolerances, for both paths; and persistent against two-pass.
        Reference64.Forward f = Reference64.forwardTraining(s, in.xf(), in.g(), in.b(), 1e-5, in.rm(), in.rv(), 0.1);
        for (Step st : new Step[]{p1, two}) {
            HalfTolerances.assertY("y", t, f.y(), st.y());
            Tolerances.assertForward("mean", f.mean(), st.mean());
            Tolerances.assertForward("invstd", f.invstd(), st.invstd());
            Tolerances.assertForward("runningMean", f.runningMean(), st.rm());
            Tolerances.assertForward("runningVar", f.runningVar(), st.rv());
            Reference64.Backward bw = Reference64.backwardTraining(s, in.xf(), in.dyf(), in.g(), st.mean(),
                    st.invstd());
            HalfTolerances.assertDx(t, bw, st.dx());
            Tolerances.assertDgamma(bw, st.dgamma());
            Tolerances.assertDbeta(bw, st.dbeta());
        }
        // Each is within ½ulp + 2·ε32 of float64 (ε32 = FORWARD_RTOL on y's scale), so they are at most one ulp of
        // the type plus 4·ε32 apart: mostly equal, one ulp where the two float32 values straddle a rounding point.
        double[] py = HalfTolerances.widen(t, p1.y()), ty = HalfTolerances.widen(t, two.y());
        double eps32 = Tolerances.FORWARD_RTOL * Tolerances.rms(f.y());
        int differ = 0;
        for (int i = 0; i < py.length; i++) {
            double d = Math.abs(py[i] - ty[i]);
            if (d != 0) differ++;
            if (!(d <= HalfTolerances.ulp(t, ty[i]) + 4 * eps32 + 4 * Tolerances.FORWARD_RTOL * Math.abs(ty[i]))) {
                throw new AssertionError("y[" + i + "]: persistent " + py[i] + ", two-pass " + ty[i] + ", more than "
                        + "one ulp of " + t + " and float32's error apart");
            }
        }
        assertTrue(differ <= py.length / 8, differ + " of " + py.length + " y elements differ from the two-pass y");
    }

    private static int[] bits(float[] a) {
        int[] o = new int[a.length];
        for (int i = 0; i < a.length; i++) o[i] = Float.floatToRawIntBits(a[i]);
        return o;
    }

    /** Without gamma, beta and running statistics, in place (y over x, dx over dy), vector and scalar, both views. */
    @ParameterizedTest(name = "{0}")
    @EnumSource(value = DType.class, names = {"FLOAT16", "BFLOAT16"})
    void inPlaceWithoutAffineOrRunningStatistics(DType t) {
        for (Shape s : new Shape[]{Shape.channelsFirst(24, 2, 32, 32), Shape.channelsFirst(4, 3, 33, 65),
                Shape.channelsLast(2, 33, 33, 37), Shape.channelsLast(4, 12, 12, 64)}) {
            Inputs in = Inputs.draw(t, s, 5);
            int n = s.elementCountAsInt(), c = s.channels();
            try (HostArrayBatchNormOps ops = emulator(132, 3)) {
                DeviceResidentBatchNorm api = ops.deviceApi();
                Device d = api.device();
                try (DeviceBuffer xb = d.allocate(2L * n); DeviceBuffer dyb = d.allocate(2L * n);
                     DeviceBuffer mean = d.allocate(4L * c); DeviceBuffer invstd = d.allocate(4L * c)) {
                    d.copyToDevice(in.x(), 0, xb.pointer(), n, null);
                    d.copyToDevice(in.dy(), 0, dyb.pointer(), n, null);
                    api.forwardTraining(s, t, xb.pointer(), null, null, 1e-5, null, null, 0, xb.pointer(),
                            mean.pointer(), invstd.pointer(), null);
                    String fk = api.lastOperationLaunches().get(0).kernel();
                    assertTrue(fk.startsWith("bn_persist_fwd_"), s + ": " + fk);
                    short[] y = new short[n];
                    float[] m = new float[c], is = new float[c];
                    d.copyToHost(xb.pointer(), y, 0, n, null);
                    d.copyToHost(mean.pointer(), m, 0, c, null);
                    d.copyToHost(invstd.pointer(), is, 0, c, null);
                    Reference64.Forward f = Reference64.forwardTraining(s, in.xf(), null, null, 1e-5, null, null, 0);
                    HalfTolerances.assertY("y " + s, t, f.y(), y);
                    // x again (y overwrote it), then dx over dy without gamma, dgamma or dbeta
                    d.copyToDevice(in.x(), 0, xb.pointer(), n, null);
                    api.backwardTraining(s, t, xb.pointer(), dyb.pointer(), null, mean.pointer(), invstd.pointer(),
                            dyb.pointer(), null, null, null);
                    String bk = api.lastOperationLaunches().get(0).kernel();
                    assertTrue(bk.startsWith("bn_persist_bwd_"), s + ": " + bk);
                    short[] dx = new short[n];
                    d.copyToHost(dyb.pointer(), dx, 0, n, null);
                    HalfTolerances.assertDx(t, Reference64.backwardTraining(s, in.xf(), in.dyf(), null, m, is), dx);
                }
            }
        }
    }

    /**
     * A device of 1 SM holds 2 blocks of the channels-last kernels; [8,28,28,64] needs 4 x 5 (forward) and 4 x 7
     * (backward): the host runs the two-pass 16-bit kernels, with the same results within the 16-bit tolerances.
     */
    @ParameterizedTest(name = "{0}")
    @EnumSource(value = DType.class, names = {"FLOAT16", "BFLOAT16"})
    void fallsBackToTwoPassWhenTheGridCannotBeCoResident(DType t) {
        Shape s = Shape.channelsLast(8, 28, 28, 64);
        Inputs in = Inputs.draw(t, s, 9);
        String sfx = t == DType.FLOAT16 ? "_f16_vec8" : "_bf16_vec8";
        try (HostArrayBatchNormOps ops = emulator(1, 1)) {
            Step st = step(ops, in);
            assertEquals(List.of("bn_stats_cl" + sfx, "bn_apply_cl" + sfx), st.forwardKernels());
            assertEquals(List.of("bn_backward_reduce_cl" + sfx, "bn_dx_cl" + sfx), st.backwardKernels());
            Reference64.Forward f = Reference64.forwardTraining(s, in.xf(), in.g(), in.b(), 1e-5, in.rm(), in.rv(),
                    0.1);
            HalfTolerances.assertY("y", t, f.y(), st.y());
            HalfTolerances.assertDx(t, Reference64.backwardTraining(s, in.xf(), in.dyf(), in.g(), st.mean(),
                    st.invstd()), st.dx());
        }
    }
}
