package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.ptx.EmulatorOptions;
import io.github.batchnorm4j.ptx.LaunchRecord;
import io.github.batchnorm4j.testing.Reference64;
import io.github.batchnorm4j.testing.TestData;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static io.github.batchnorm4j.testing.Tolerances.assertDx;
import static io.github.batchnorm4j.testing.Tolerances.assertForward;
import static io.github.batchnorm4j.testing.Tolerances.assertGradient;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The device-resident API ({@link DeviceResidentBatchNorm}) on the PTX emulator with every check on: misaligned
 * sub-buffers (scalar path) against the float64 reference, bitwise-identical results under different block orders,
 * repeated training steps without allocation, and the kernel paths each shape is meant to take.
 */
class EmulatorDeviceApiTest {
    private static final double EPS = 1e-5;
    private static final double MOMENTUM = 0.1;

    /** Shapes whose channels are split across blocks (the last-arriving-block merge) with and without float4. */
    static Stream<Shape> splitShapes() {
        return Stream.of(Shape.channelsFirst(16, 3, 32, 32), Shape.channelsFirst(3, 2, 35, 37),
                Shape.channelsLast(2, 48, 48, 8), Shape.channelsLast(2, 33, 33, 37));
    }

    /** One training step's inputs, outputs and device buffers, laid out at chosen byte offsets. */
    private static final class Step implements AutoCloseable {
        final Shape shape;
        final float[] x, dy, gamma, beta, rm, rv;
        final DeviceBuffer big;
        final DevicePointer px, pdy, py, pdx, pg, pb, prm, prv, pmean, pinv, pdg, pdb;
        final Device device;

        /** {@code skew} bytes are added to every pointer (4 makes every tensor misaligned for float4). */
        Step(Device device, Shape shape, long seed, int skew) {
            this.device = device;
            this.shape = shape;
            SplittableRandom rng = TestData.random(seed);
            int n = shape.elementCountAsInt();
            int c = shape.channels();
            x = TestData.perChannelNormal(rng, shape);
            dy = TestData.normal(rng, n, 0, 1);
            gamma = TestData.uniform(rng, c, 0.5, 1.5);
            beta = TestData.normal(rng, c, 0, 1);
            rm = TestData.normal(rng, c, 0, 1);
            rv = TestData.uniform(rng, c, 0.5, 2);
            long tensor = align(n * 4L + skew);
            long channel = align(c * 4L + skew);
            big = device.allocate(4 * tensor + 8 * channel);
            long[] off = {0};
            px = next(off, tensor, skew); pdy = next(off, tensor, skew); py = next(off, tensor, skew);
            pdx = next(off, tensor, skew);
            pg = next(off, channel, skew); pb = next(off, channel, skew); prm = next(off, channel, skew);
            prv = next(off, channel, skew); pmean = next(off, channel, skew); pinv = next(off, channel, skew);
            pdg = next(off, channel, skew); pdb = next(off, channel, skew);
            DeviceStream s = device.defaultStream();
            device.copyToDevice(x, 0, px, n, s);
            device.copyToDevice(dy, 0, pdy, n, s);
            device.copyToDevice(gamma, 0, pg, c, s);
            device.copyToDevice(beta, 0, pb, c, s);
            device.copyToDevice(rm, 0, prm, c, s);
            device.copyToDevice(rv, 0, prv, c, s);
        }

        private DevicePointer next(long[] off, long size, int skew) {
            DevicePointer p = big.at(off[0] + skew);
            off[0] += size;
            return p;
        }

        float[] read(DevicePointer p, int count) {
            float[] out = TestData.poisoned(count);
            device.copyToHost(p, out, 0, count, device.defaultStream());
            return out;
        }

        void train(DeviceResidentBatchNorm bn) {
            bn.forwardTraining(shape, px, pg, pb, EPS, prm, prv, MOMENTUM, py, pmean, pinv, null);
            bn.backwardTraining(shape, px, pdy, pg, pmean, pinv, pdx, pdg, pdb, null);
        }

        /** Every output of a training step, as raw bits. */
        int[] bits() {
            int n = shape.elementCountAsInt();
            int c = shape.channels();
            List<float[]> all = List.of(read(py, n), read(pdx, n), read(pmean, c), read(pinv, c), read(prm, c),
                    read(prv, c), read(pdg, c), read(pdb, c));
            int[] out = new int[all.stream().mapToInt(a -> a.length).sum()];
            int k = 0;
            for (float[] a : all) for (float v : a) out[k++] = Float.floatToRawIntBits(v);
            return out;
        }

        @Override
        public void close() {
            big.close();
        }

        private static long align(long v) {
            return (v + 255) & ~255L;
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("splitShapes")
    void misalignedSubBuffersTakeTheScalarPathAndMatchTheReference(Shape shape) {
        try (EmulatedDevice dev = new EmulatedDevice(EmulatorOptions.defaults().withBlockOrderSeed(3));
             DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev);
             Step st = new Step(dev, shape, 77, 4)) {
            int n = shape.elementCountAsInt();
            int c = shape.channels();
            st.train(bn);
            List<String> kernels = dev.launchHistory().stream().map(LaunchRecord::kernel).toList();
            assertTrue(kernels.stream().noneMatch(k -> k.endsWith("_vec4")), "misaligned: scalar kernels only, got " + kernels);

            Reference64.Forward e = Reference64.forwardTraining(shape, st.x, st.gamma, st.beta, EPS, st.rm, st.rv, MOMENTUM);
            assertForward("y", e.y(), st.read(st.py, n));
            float[] mean = st.read(st.pmean, c);
            float[] invstd = st.read(st.pinv, c);
            assertForward("saveMean", e.mean(), mean);
            assertForward("saveInvstd", e.invstd(), invstd);
            assertForward("runningMean", e.runningMean(), st.read(st.prm, c));
            assertForward("runningVar", e.runningVar(), st.read(st.prv, c));
            Reference64.Backward b = Reference64.backwardTraining(shape, st.x, st.dy, st.gamma, mean, invstd);
            assertDx(b, st.read(st.pdx, n));
            assertGradient("dgamma", b.dgamma(), st.read(st.pdg, c));
            assertGradient("dbeta", b.dbeta(), st.read(st.pdb, c));

            // Eval mode on the same misaligned buffers (y and dx overwritten).
            bn.forwardInference(shape, st.px, st.pg, st.pb, st.prm, st.prv, EPS, st.py, null);
            float[] rm = st.read(st.prm, c);
            float[] rv = st.read(st.prv, c);
            assertForward("eval y", Reference64.forwardEval(shape, st.x, st.gamma, st.beta, rm, rv, EPS),
                    st.read(st.py, n));
            bn.backwardInference(shape, st.px, st.pdy, st.pg, st.prm, st.prv, EPS, st.pdx, st.pdg, st.pdb, null);
            Reference64.Backward be = Reference64.backwardEval(shape, st.x, st.dy, st.gamma, rm, rv, EPS);
            assertGradient("eval dx", be.dx(), st.read(st.pdx, n));
            assertGradient("eval dgamma", be.dgamma(), st.read(st.pdg, c));
            assertGradient("eval dbeta", be.dbeta(), st.read(st.pdb, c));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("splitShapes")
    void resultsAreBitwiseIdenticalUnderEveryBlockOrder(Shape shape) {
        List<int[]> runs = new ArrayList<>();
        List<EmulatorOptions> orders = List.of(EmulatorOptions.defaults().withSequentialBlocks(),
                EmulatorOptions.defaults().withBlockOrderSeed(1), EmulatorOptions.defaults().withBlockOrderSeed(2),
                EmulatorOptions.defaults().withBlockOrderSeed(12345));
        boolean split = false;
        for (EmulatorOptions o : orders) {
            try (EmulatedDevice dev = new EmulatedDevice(o);
                 DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev);
                 Step st = new Step(dev, shape, 99, 0)) {
                st.train(bn);
                runs.add(st.bits());
                split |= dev.launchHistory().stream().anyMatch(r -> r.kernel().startsWith("bn_stats")
                        && r.grid().volume() > (shape.layout() == io.github.batchnorm4j.Layout.CHANNELS_FIRST
                        ? shape.channels() : r.grid().x()));
            }
        }
        assertTrue(split, "the shape must split channels across blocks, or block order could not matter");
        for (int i = 1; i < runs.size(); i++) {
            assertArrayEquals(runs.get(0), runs.get(i), "outputs differ between block order 0 and " + i);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("splitShapes")
    void repeatedStepsAllocateNothingAndRepeatExactly(Shape shape) {
        try (EmulatedDevice dev = new EmulatedDevice(EmulatorOptions.defaults());
             DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev);
             Step st = new Step(dev, shape, 5, 0)) {
            st.train(bn);
            int[] first = st.bits();
            int live = dev.liveBufferCount();
            // Reset the running statistics so the second step sees the same inputs; the workspace counters must have
            // been reset by the first step's last blocks, or the second step's merge would run at the wrong time.
            dev.copyToDevice(st.rm, 0, st.prm, shape.channels(), dev.defaultStream());
            dev.copyToDevice(st.rv, 0, st.prv, shape.channels(), dev.defaultStream());
            st.train(bn);
            assertEquals(live, dev.liveBufferCount(), "a training step must not allocate");
            assertArrayEquals(first, st.bits(), "the same step twice gives the same bits");
            boolean vecExpected = LaunchGeometry.vectorizable(shape);
            List<String> kernels = dev.launchHistory().stream().map(LaunchRecord::kernel).distinct().toList();
            assertEquals(vecExpected, kernels.stream().anyMatch(k -> k.endsWith("_vec4")), "vec4 path for " + shape
                    + ": " + kernels);
        }
    }

    @SuppressWarnings("unused")
    private static String describe(List<LaunchRecord> history) {
        return Arrays.toString(history.stream().map(r -> r.kernel() + r.grid() + r.block()).toArray());
    }
}
