package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.ptx.EmulatorOptions;
import io.github.batchnorm4j.testing.HalfTolerances;
import io.github.batchnorm4j.testing.Reference64;
import io.github.batchnorm4j.testing.TestData;
import io.github.batchnorm4j.testing.Tolerances;
import org.junit.jupiter.api.Test;
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
 * {@link DeviceResidentBatchNorm.TrainingPath#PERSISTENT}: the persistent kernels' decomposition on any device. On a
 * 1-SM device the grid does not fit, so the same kernels run in two ordinary launches (partials, then outputs); on a
 * 132-SM device in one cooperative launch; every output has the same bits on both (and under AUTO at 132 SMs), for
 * float32, float16 and bfloat16, both views and unit widths, with several blocks per channel. In place (y over x) the
 * outputs launch reads the centers the partials launch kept. A shape without exchange runs one ordinary launch.
 */
class EmulatorPersistentAnyDeviceTest {
    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        // Each with several blocks per channel (or row splits) for every dtype's tile size, and more than the 2 blocks
        // a 1-SM device holds at once.
        for (Shape s : List.of(Shape.channelsFirst(24, 2, 32, 32), Shape.channelsFirst(4, 3, 33, 65),
                Shape.channelsLast(2048, 16), Shape.channelsLast(1024, 9))) {
            out.add(Arguments.of(DType.FLOAT32, s));
        }
        for (DType t : new DType[]{DType.FLOAT16, DType.BFLOAT16}) {
            for (Shape s : List.of(Shape.channelsFirst(24, 2, 32, 32), Shape.channelsFirst(6, 2, 1365),
                    Shape.channelsLast(2400, 24), Shape.channelsLast(1024, 9))) {
                out.add(Arguments.of(t, s));
            }
        }
        return out.stream();
    }

    private static HostArrayBatchNormOps emulator(int sms, long seed, DeviceResidentBatchNorm.TrainingPath path) {
        HostArrayBatchNormOps ops = new HostArrayBatchNormOps("emulator", new EmulatedDevice(EmulatorOptions.defaults()
                .withMultiprocessorCount(sms).withBlockOrderSeed(seed)), true);
        ops.deviceApi().setTrainingPath(path);
        return ops;
    }

    /** y, dx (as float bits or 16-bit patterns widened to int) and the six per-channel outputs, and the launches. */
    private record Run(int[][] outputs, List<String> forward, List<String> backward) {
    }

    private static Run run(HostArrayBatchNormOps ops, DType t, Shape s, float[] x32, float[] dy32, float[] g,
                           float[] b, float[] rm0, float[] rv0) {
        int n = s.elementCountAsInt(), c = s.channels();
        float[] mean = TestData.poisoned(c), invstd = TestData.poisoned(c), rm = rm0.clone(), rv = rv0.clone();
        float[] dgamma = TestData.poisoned(c), dbeta = TestData.poisoned(c);
        int[] y, dx;
        List<String> fk, bk;
        if (t == DType.FLOAT32) {
            float[] yf = TestData.poisoned(n), dxf = TestData.poisoned(n);
            ops.forwardTraining(s, x32, g, b, 1e-5, rm, rv, 0.1, yf, mean, invstd);
            fk = kernels(ops);
            ops.backwardTraining(s, x32, dy32, g, mean, invstd, dxf, dgamma, dbeta);
            bk = kernels(ops);
            y = bits(yf);
            dx = bits(dxf);
        } else {
            short[] x = t.encode(x32), dy = t.encode(dy32), ys = new short[n], dxs = new short[n];
            ops.forwardTraining(s, t, x, g, b, 1e-5, rm, rv, 0.1, ys, mean, invstd);
            fk = kernels(ops);
            ops.backwardTraining(s, t, x, dy, g, mean, invstd, dxs, dgamma, dbeta);
            bk = kernels(ops);
            y = widen(ys);
            dx = widen(dxs);
            // the values themselves, against float64 within the 16-bit tolerances
            float[] xf = t.decode(x), dyf = t.decode(dy);
            HalfTolerances.assertY("y", t, Reference64.forwardTraining(s, xf, g, b, 1e-5, rm0, rv0, 0.1).y(), ys);
            HalfTolerances.assertDx(t, Reference64.backwardTraining(s, xf, dyf, g, mean, invstd), dxs);
        }
        if (t == DType.FLOAT32) {
            Reference64.Forward f = Reference64.forwardTraining(s, x32, g, b, 1e-5, rm0, rv0, 0.1);
            float[] yf = new float[n];
            for (int i = 0; i < n; i++) yf[i] = Float.intBitsToFloat(y[i]);
            Tolerances.assertForward("y", f.y(), yf);
        }
        return new Run(new int[][]{y, dx, bits(mean), bits(invstd), bits(rm), bits(rv), bits(dgamma), bits(dbeta)},
                fk, bk);
    }

    private static List<String> kernels(HostArrayBatchNormOps ops) {
        return ops.lastOperationLaunches().stream().map(KernelLaunch::kernel).toList();
    }

    private static int[] bits(float[] a) {
        int[] o = new int[a.length];
        for (int i = 0; i < a.length; i++) o[i] = Float.floatToRawIntBits(a[i]);
        return o;
    }

    private static int[] widen(short[] a) {
        int[] o = new int[a.length];
        for (int i = 0; i < a.length; i++) o[i] = a[i];
        return o;
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void theSameBitsOnOneSmAndOnManyInTwoLaunchesOrOne(DType t, Shape s) {
        SplittableRandom r = TestData.random(s.hashCode() * 7L + t.ordinal());
        int n = s.elementCountAsInt(), c = s.channels();
        float[] x = TestData.perChannelNormal(r, s), dy = TestData.normal(r, n, 0, 1);
        float[] g = TestData.uniform(r, c, 0.5, 1.5), b = TestData.normal(r, c, 0, 1);
        float[] rm = TestData.normal(r, c, 0, 1), rv = TestData.uniform(r, c, 0.5, 2);
        Run small, large, auto;
        try (HostArrayBatchNormOps one = emulator(1, 5, DeviceResidentBatchNorm.TrainingPath.PERSISTENT);
             HostArrayBatchNormOps many = emulator(132, 9, DeviceResidentBatchNorm.TrainingPath.PERSISTENT);
             HostArrayBatchNormOps a = emulator(132, 11, DeviceResidentBatchNorm.TrainingPath.AUTO)) {
            small = run(one, t, s, x, dy, g, b, rm, rv);
            large = run(many, t, s, x, dy, g, b, rm, rv);
            auto = run(a, t, s, x, dy, g, b, rm, rv);
        }
        // 1 SM: the partials launch and the outputs launch of one persistent kernel; 132 SMs: one launch of it.
        String fwd = large.forward().get(0), bwd = large.backward().get(0);
        assertEquals(List.of(fwd), large.forward());
        assertEquals(List.of(bwd), large.backward());
        assertEquals(List.of(fwd, fwd), small.forward(), "1 SM forward");
        assertEquals(List.of(bwd, bwd), small.backward(), "1 SM backward");
        assertEquals(List.of(fwd), auto.forward());
        String[] names = {"y", "dx", "mean", "invstd", "runningMean", "runningVar", "dgamma", "dbeta"};
        for (int i = 0; i < names.length; i++) {
            assertArrayEquals(large.outputs()[i], small.outputs()[i], names[i] + ": 1 SM (two launches) vs 132 SMs");
            assertArrayEquals(large.outputs()[i], auto.outputs()[i], names[i] + ": PERSISTENT vs AUTO at 132 SMs");
        }
    }

    /**
     * In place on 1 SM (two launches): y over x, dx over dy. The outputs launch takes each channel's center from where
     * the partials launch kept it (the first element of the channel may already be y): the same bits as out of place.
     */
    @Test
    void inPlaceInTwoLaunchesKeepsTheCenters() {
        for (Object[] c : new Object[][]{{DType.FLOAT32, Shape.channelsFirst(24, 2, 32, 32)},
                {DType.FLOAT16, Shape.channelsLast(2400, 24)}, {DType.BFLOAT16, Shape.channelsFirst(6, 2, 1366)}}) {
            DType t = (DType) c[0];
            Shape s = (Shape) c[1];
            int n = s.elementCountAsInt(), ch = s.channels(), e = t.bytes();
            SplittableRandom r = TestData.random(21);
            // A channel mean far from 0 makes a wrong center (y instead of x) visible in every bit.
            float[] x = TestData.perChannelNormal(r, s), dy = TestData.normal(r, n, 0, 1);
            try (HostArrayBatchNormOps ops = emulator(1, 3, DeviceResidentBatchNorm.TrainingPath.PERSISTENT)) {
                DeviceResidentBatchNorm api = ops.deviceApi();
                Device d = api.device();
                try (DeviceBuffer xb = d.allocate((long) e * n); DeviceBuffer yb = d.allocate((long) e * n);
                     DeviceBuffer dyb = d.allocate((long) e * n); DeviceBuffer dxb = d.allocate((long) e * n);
                     DeviceBuffer x2 = d.allocate((long) e * n); DeviceBuffer dy2 = d.allocate((long) e * n);
                     DeviceBuffer st = d.allocate(16L * ch)) {
                    DevicePointer mean = st.at(0), invstd = st.at(4L * ch), m2 = st.at(8L * ch), i2 = st.at(12L * ch);
                    upload(d, t, x, xb);
                    upload(d, t, x, x2);
                    upload(d, t, dy, dyb);
                    upload(d, t, dy, dy2);
                    // apart
                    api.forwardTraining(s, t, xb.pointer(), null, null, 1e-5, null, null, 0, yb.pointer(), mean,
                            invstd, null);
                    assertEquals(2, api.lastOperationLaunches().size(), t + " " + s);
                    api.backwardTraining(s, t, xb.pointer(), dyb.pointer(), null, mean, invstd, dxb.pointer(), null,
                            null, null);
                    // in place
                    api.forwardTraining(s, t, x2.pointer(), null, null, 1e-5, null, null, 0, x2.pointer(), m2, i2,
                            null);
                    api.backwardTraining(s, t, xb.pointer(), dy2.pointer(), null, mean, invstd, dy2.pointer(), null,
                            null, null);
                    assertArrayEquals(download(d, t, yb, n), download(d, t, x2, n), t + " " + s + ": y in place");
                    assertArrayEquals(download(d, t, dxb, n), download(d, t, dy2, n), t + " " + s + ": dx in place");
                    float[] a1 = new float[2 * ch], a2 = new float[2 * ch];
                    d.copyToHost(mean, a1, 0, 2 * ch, null);
                    d.copyToHost(m2, a2, 0, 2 * ch, null);
                    assertArrayEquals(bits(a1), bits(a2), t + " " + s + ": statistics in place");
                }
            }
        }
    }

    private static void upload(Device d, DType t, float[] v, DeviceBuffer b) {
        if (t == DType.FLOAT32) d.copyToDevice(v, 0, b.pointer(), v.length, null);
        else d.copyToDevice(t.encode(v), 0, b.pointer(), v.length, null);
    }

    private static int[] download(Device d, DType t, DeviceBuffer b, int n) {
        if (t == DType.FLOAT32) {
            float[] f = new float[n];
            d.copyToHost(b.pointer(), f, 0, n, null);
            return bits(f);
        }
        short[] h = new short[n];
        d.copyToHost(b.pointer(), h, 0, n, null);
        return widen(h);
    }
}
