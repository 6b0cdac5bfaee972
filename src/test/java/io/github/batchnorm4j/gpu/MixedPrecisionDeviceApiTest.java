package io.github.batchnorm4j.gpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.ptx.EmulatorOptions;
import io.github.batchnorm4j.ptx.LaunchRecord;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The device-resident API with float16 and bfloat16 tensors on the emulator: bitwise-identical results under every
 * block order (the reductions split channels across blocks, so the last-arriving block changes with the order; the
 * merge must not), which kernel runs for which alignment, and the argument checks of 16-bit device pointers.
 */
class MixedPrecisionDeviceApiTest {
    private static final double EPS = 1e-5;

    static Stream<Arguments> splitCases() {
        List<Arguments> out = new ArrayList<>();
        for (DType t : new DType[] {DType.FLOAT16, DType.BFLOAT16}) {
            out.add(Arguments.of(t, Shape.channelsFirst(16, 3, 32, 32), true));  // _vec8, 2 blocks per channel
            out.add(Arguments.of(t, Shape.channelsLast(2, 32, 32, 8), true));    // rows _vec8, 2 row splits
            out.add(Arguments.of(t, Shape.channelsFirst(2, 3, 41, 25), false));  // scalar channels-first, 2 blocks
        }
        return out.stream();
    }

    /** One training step (forward with running statistics, backward) on device tensors of a 16-bit type. */
    private static final class Step implements AutoCloseable {
        final EmulatedDevice dev;
        final Shape shape;
        final DType dtype;
        final DeviceBuffer x;
        final DeviceBuffer dy;
        final DeviceBuffer y;
        final DeviceBuffer dx;
        final DeviceBuffer channels;   // gamma, beta, rm, rv, saveMean, saveInvstd, dgamma, dbeta
        final int offset;              // bytes added to every tensor pointer

        Step(EmulatedDevice dev, Shape shape, DType dtype, long seed, int offset) {
            this.dev = dev;
            this.shape = shape;
            this.dtype = dtype;
            this.offset = offset;
            int n = shape.elementCountAsInt();
            int c = shape.channels();
            SplittableRandom rng = new SplittableRandom(seed);
            short[] xs = new short[n];
            short[] dys = new short[n];
            for (int i = 0; i < n; i++) {
                xs[i] = dtype.encode((float) (3 + 2 * rng.nextGaussian()));
                dys[i] = dtype.encode((float) rng.nextGaussian());
            }
            float[] per = new float[8 * c];
            for (int k = 0; k < c; k++) {
                per[k] = (float) (1 + 0.2 * rng.nextGaussian());
                per[c + k] = (float) rng.nextGaussian();
                per[3 * c + k] = 1f;
            }
            long bytes = 2L * n + offset;
            x = dev.allocate(bytes);
            dy = dev.allocate(bytes);
            y = dev.allocate(bytes);
            dx = dev.allocate(bytes);
            channels = dev.allocate(4L * per.length);
            dev.copyToDevice(xs, 0, x.at(offset), n, dev.defaultStream());
            dev.copyToDevice(dys, 0, dy.at(offset), n, dev.defaultStream());
            dev.copyToDevice(per, 0, channels.pointer(), per.length, dev.defaultStream());
        }

        DevicePointer ch(int slot) {
            return channels.at(4L * slot * shape.channels());
        }

        void train(DeviceResidentBatchNorm bn) {
            bn.forwardTraining(shape, dtype, x.at(offset), ch(0), ch(1), EPS, ch(2), ch(3), 0.1, y.at(offset), ch(4),
                    ch(5), null);
            bn.backwardTraining(shape, dtype, x.at(offset), dy.at(offset), ch(0), ch(4), ch(5), dx.at(offset), ch(6),
                    ch(7), null);
        }

        /** y, dx and every per-channel output, as raw bits. */
        int[] bits() {
            int n = shape.elementCountAsInt();
            short[] ys = new short[n];
            short[] dxs = new short[n];
            dev.copyToHost(y.at(offset), ys, 0, n, dev.defaultStream());
            dev.copyToHost(dx.at(offset), dxs, 0, n, dev.defaultStream());
            float[] per = new float[8 * shape.channels()];
            dev.copyToHost(channels.pointer(), per, 0, per.length, dev.defaultStream());
            int[] out = new int[2 * n + per.length];
            for (int i = 0; i < n; i++) {
                out[i] = ys[i];
                out[n + i] = dxs[i];
            }
            for (int i = 0; i < per.length; i++) out[2 * n + i] = Float.floatToRawIntBits(per[i]);
            return out;
        }

        @Override
        public void close() {
            for (DeviceBuffer b : new DeviceBuffer[] {x, dy, y, dx, channels}) b.close();
        }
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("splitCases")
    void resultsAreBitwiseIdenticalUnderEveryBlockOrder(DType dtype, Shape shape, boolean vec) {
        List<int[]> runs = new ArrayList<>();
        List<EmulatorOptions> orders = List.of(EmulatorOptions.defaults().withSequentialBlocks(),
                EmulatorOptions.defaults().withBlockOrderSeed(1), EmulatorOptions.defaults().withBlockOrderSeed(2),
                EmulatorOptions.defaults().withBlockOrderSeed(12345));
        for (EmulatorOptions o : orders) {
            try (EmulatedDevice dev = new EmulatedDevice(o);
                 DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev);
                 Step st = new Step(dev, shape, dtype, 99, 0)) {
                st.train(bn);
                runs.add(st.bits());
                List<String> kernels = dev.launchHistory().stream().map(LaunchRecord::kernel).distinct().toList();
                String suffix = (dtype == DType.FLOAT16 ? "_f16" : "_bf16") + (vec ? "_vec8" : "");
                assertTrue(kernels.stream().allMatch(k -> k.equals("bn_prepare") || k.endsWith(suffix)),
                        "every streaming kernel is the " + suffix + " one: " + kernels);
                long statsBlocks = dev.launchHistory().stream().filter(r -> r.kernel().startsWith("bn_stats"))
                        .mapToLong(r -> r.grid().volume()).max().orElse(0);
                assertTrue(statsBlocks > shape.channels() || shape.layout() != io.github.batchnorm4j.Layout
                        .CHANNELS_FIRST && statsBlocks > 1, "the shape must split channels across blocks: "
                        + statsBlocks + " blocks");
            }
        }
        for (int i = 1; i < runs.size(); i++) {
            assertArrayEquals(runs.get(0), runs.get(i), "outputs differ between block order 0 and " + i);
        }
    }

    /** A 2-byte offset keeps 16-bit tensors valid but not 16-byte aligned: the scalar kernels run, same values. */
    @Test
    void misalignedSixteenBitTensorsTakeTheScalarPathWithTheSameValues() {
        Shape shape = Shape.channelsFirst(2, 3, 8, 16);
        for (DType dtype : new DType[] {DType.FLOAT16, DType.BFLOAT16}) {
            int[][] bits = new int[2][];
            for (int offset : new int[] {0, 2}) {
                try (EmulatedDevice dev = new EmulatedDevice(EmulatorOptions.defaults());
                     DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev);
                     Step st = new Step(dev, shape, dtype, 5, offset)) {
                    st.train(bn);
                    bits[offset / 2] = st.bits();
                    boolean vec8 = dev.launchHistory().stream().anyMatch(r -> r.kernel().endsWith("_vec8"));
                    assertEquals(offset == 0, vec8, dtype + " offset " + offset + ": vector path only when aligned");
                }
            }
            // The two paths add in other orders: statistics may differ in the last float32 bits; y and dx rarely.
            int n = shape.elementCountAsInt();
            int differ = 0;
            for (int i = 0; i < 2 * n; i++) {
                float a = dtype.decode((short) bits[0][i]);
                float b = dtype.decode((short) bits[1][i]);
                if (a != b) {
                    differ++;
                    assertEquals(a, b, io.github.batchnorm4j.testing.HalfTolerances.ulp(dtype, a), "element " + i);
                }
            }
            assertTrue(differ < n / 10, dtype + ": " + differ + " of " + 2 * n + " values differ by an ulp");
        }
    }

    /**
     * y written over x (allowed: y may be exactly x): the apply cannot read the centers from row 0 of x, which it
     * overwrites, so they travel in the coefficients; the results equal those of distinct buffers, bit for bit.
     */
    @Test
    void inPlaceForwardTrainingGivesTheSameBitsAsDistinctBuffers() {
        for (DType dtype : new DType[] {DType.FLOAT16, DType.BFLOAT16}) {
            for (Shape shape : new Shape[] {Shape.channelsFirst(2, 3, 16, 16), Shape.channelsLast(64, 24),
                    Shape.channelsFirst(2, 3, 13, 13), Shape.channelsLast(64, 5)}) {   // _vec8 and scalar, both views
                try (EmulatedDevice dev = new EmulatedDevice(EmulatorOptions.defaults());
                     DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev);
                     Step st = new Step(dev, shape, dtype, 21, 0)) {
                    int n = shape.elementCountAsInt();
                    bn.forwardTraining(shape, dtype, st.x.pointer(), st.ch(0), st.ch(1), EPS, null, null, 0,
                            st.y.pointer(), st.ch(4), st.ch(5), null);
                    short[] apart = new short[n];
                    dev.copyToHost(st.y.pointer(), apart, 0, n, dev.defaultStream());
                    bn.forwardTraining(shape, dtype, st.x.pointer(), st.ch(0), st.ch(1), EPS, null, null, 0,
                            st.x.pointer(), st.ch(4), st.ch(5), null);
                    short[] inPlace = new short[n];
                    dev.copyToHost(st.x.pointer(), inPlace, 0, n, dev.defaultStream());
                    assertArrayEquals(apart, inPlace, dtype + " " + shape);
                }
            }
        }
    }

    @Test
    void sixteenBitPointersAreCheckedForAlignmentAndRoomInElements() {
        Shape shape = Shape.channelsLast(4, 6);
        try (EmulatedDevice dev = new EmulatedDevice(EmulatorOptions.defaults());
             DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev);
             DeviceBuffer t = dev.allocate(64); DeviceBuffer c = dev.allocate(64)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> bn.forwardInference(shape,
                    DType.FLOAT16, t.at(1), null, null, c.pointer(), c.pointer(), EPS, t.at(16), null));
            assertTrue(e.getMessage().contains("x: expected a 2-byte aligned address"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> bn.forwardInference(shape, DType.BFLOAT16,
                    t.at(32), null, null, c.pointer(), c.pointer(), EPS, t.pointer(), null));
            assertTrue(e.getMessage().contains("x: expected room for 24 bfloat16 elements"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> bn.forwardInference(shape, DType.FLOAT16,
                    t.pointer(), null, null, c.at(2), c.pointer(), EPS, t.at(16), null));
            assertTrue(e.getMessage().contains("runningMean: expected a 4-byte aligned address"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> bn.forwardInference(shape, null,
                    t.pointer(), null, null, c.pointer(), c.pointer(), EPS, t.at(16), null));
            assertTrue(e.getMessage().contains("dtype must not be null"), e.getMessage());
        }
    }
}
