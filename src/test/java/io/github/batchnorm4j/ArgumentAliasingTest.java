package io.github.batchnorm4j;

import static io.github.batchnorm4j.testing.Messages.assertMentions;
import static io.github.batchnorm4j.testing.Messages.assertRejected;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.batchnorm4j.cpu.CpuBatchNormOps;
import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.gpu.DeviceStream;
import io.github.batchnorm4j.gpu.DeviceResidentBatchNorm;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.testing.TestData;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * Memory shared between arguments: every output must have memory of its own, on the host API (arrays, ArgumentChecks)
 * and on the device-resident API (byte ranges of device buffers, gpu.Aliasing), where an elementwise output may be
 * exactly its input (y = x, dx = dy; EmulatorInPlaceTest checks the results). Property-style: many random aliasings,
 * with fixed seeds, against an oracle written here from the rule, not from the implementation; a rejected call must
 * leave every argument as it was.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ArgumentAliasingTest {
    /** One emulated device and one set of loaded kernels for the device tests (loading the PTX is the slow part). */
    private EmulatedDevice device;
    private DeviceResidentBatchNorm bn;

    @BeforeAll
    void openDevice() {
        device = new EmulatedDevice();
        bn = new DeviceResidentBatchNorm(device);
    }

    @AfterAll
    void closeDevice() {
        bn.close();
        device.close(); // throws on a leaked buffer
    }

    /** One argument slot of an operation, in ArgumentChecks' order. */
    record Slot(String name, boolean perElement, boolean output, boolean optional) {
    }

    /** The five operations with outputs, and their slots. */
    enum Op {
        FORWARD_TRAINING(s("x", true, false, false), s("gamma", false, false, true), s("beta", false, false, true),
                s("runningMean", false, true, true), s("runningVar", false, true, true), s("y", true, true, false),
                s("saveMean", false, true, false), s("saveInvstd", false, true, false)),
        FORWARD_INFERENCE(s("x", true, false, false), s("gamma", false, false, true), s("beta", false, false, true),
                s("runningMean", false, false, false), s("runningVar", false, false, false), s("y", true, true, false)),
        NORMALIZE(s("x", true, false, false), s("gamma", false, false, true), s("beta", false, false, true),
                s("mean", false, false, false), s("invstd", false, false, false), s("y", true, true, false)),
        BACKWARD_TRAINING(s("x", true, false, false), s("dy", true, false, false), s("gamma", false, false, true),
                s("saveMean", false, false, false), s("saveInvstd", false, false, false), s("dx", true, true, false),
                s("dgamma", false, true, true), s("dbeta", false, true, true)),
        BACKWARD_INFERENCE(s("x", true, false, false), s("dy", true, false, false), s("gamma", false, false, true),
                s("runningMean", false, false, false), s("runningVar", false, false, false), s("dx", true, true, false),
                s("dgamma", false, true, true), s("dbeta", false, true, true));

        final Slot[] slots;

        Op(Slot... slots) {
            this.slots = slots;
        }

        private static Slot s(String name, boolean perElement, boolean output, boolean optional) {
            return new Slot(name, perElement, output, optional);
        }

        int index(String name) {
            for (int i = 0; i < slots.length; i++) if (slots[i].name().equals(name)) return i;
            throw new AssertionError(name);
        }
    }

    private static final double EPS = 1e-5;
    private static final double MOMENTUM = 0.1;

    // ---- host arrays --------------------------------------------------------------------------------------------

    private static void callHost(BatchNormOps ops, Op op, Shape sh, float[][] a) {
        switch (op) {
            case FORWARD_TRAINING -> ops.forwardTraining(sh, a[0], a[1], a[2], EPS, a[3], a[4], MOMENTUM, a[5], a[6], a[7]);
            case FORWARD_INFERENCE -> ops.forwardInference(sh, a[0], a[1], a[2], a[3], a[4], EPS, a[5]);
            case NORMALIZE -> ops.normalize(sh, a[0], a[1], a[2], a[3], a[4], a[5]);
            case BACKWARD_TRAINING -> ops.backwardTraining(sh, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
            case BACKWARD_INFERENCE -> ops.backwardInference(sh, a[0], a[1], a[2], a[3], a[4], EPS, a[5], a[6], a[7]);
        }
    }

    /** Random valid arguments: every slot its own array; optional slots sometimes null (running stats in pairs). */
    private static float[][] hostArguments(Op op, Shape sh, SplittableRandom rng) {
        float[][] a = new float[op.slots.length][];
        int n = sh.elementCountAsInt();
        int c = sh.channels();
        boolean running = rng.nextBoolean();
        for (int i = 0; i < a.length; i++) {
            Slot s = op.slots[i];
            boolean given = !s.optional() || (s.name().startsWith("running") ? running : rng.nextInt(3) > 0);
            // Variances and invstd positive so that the accepted calls compute finite values.
            a[i] = !given ? null : TestData.uniform(rng, s.perElement() ? n : c, 0.5, 1.5);
        }
        return a;
    }

    private static Shape smallShape(SplittableRandom rng) {
        int c = 1 + rng.nextInt(4);
        return rng.nextBoolean() ? Shape.channelsFirst(2 + rng.nextInt(3), c, 1 + rng.nextInt(3))
                : Shape.channelsLast(2 + rng.nextInt(3), 1 + rng.nextInt(3), c);
    }

    @Test
    void hostRejectsEveryOutputThatSharesAnArray() {
        int rejected = 0;
        int accepted = 0;
        try (BatchNormOps ops = new CpuBatchNormOps(1)) {
            for (int variant = 0; variant < 400; variant++) {
                SplittableRandom rng = TestData.random(7000 + variant);
                Op op = Op.values()[rng.nextInt(Op.values().length)];
                Shape sh = smallShape(rng);
                float[][] a = hostArguments(op, sh, rng);
                if (variant % 8 == 0) { // control: the same arguments, nothing shared, succeed
                    callHost(ops, op, sh, a);
                    accepted++;
                    continue;
                }
                // Replace one output by another argument holding as many floats (so that only the overlap is wrong).
                List<int[]> pairs = new ArrayList<>();
                for (int o = 0; o < a.length; o++) {
                    if (!op.slots[o].output() || a[o] == null) continue;
                    for (int other = 0; other < a.length; other++) {
                        if (other != o && a[other] != null && a[other].length == a[o].length) pairs.add(new int[] {o, other});
                    }
                }
                if (pairs.isEmpty()) continue;
                int[] p = pairs.get(rng.nextInt(pairs.size()));
                a[p[0]] = a[p[1]];
                Map<float[], float[]> before = snapshot(a);
                String o = op.slots[p[0]].name();
                String other = op.slots[p[1]].name();
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> callHost(ops, op, sh, a),
                        op + " " + sh + ": " + o + " given as " + other);
                assertMentions(e, o, other, "must not be the same array as");
                assertUnchanged(before, op + " " + o + " = " + other);
                rejected++;
            }
        }
        assertTrue(rejected >= 300 && accepted >= 40, rejected + " rejected, " + accepted + " accepted");
    }

    private static Map<float[], float[]> snapshot(float[][] args) {
        Map<float[], float[]> m = new IdentityHashMap<>();
        for (float[] x : args) if (x != null) m.put(x, x.clone());
        return m;
    }

    private static void assertUnchanged(Map<float[], float[]> before, String what) {
        for (Map.Entry<float[], float[]> e : before.entrySet()) {
            assertArrayEquals(e.getValue(), e.getKey(), what + ": a rejected call changed an argument");
        }
    }

    @Test
    void namedHostPairsOfTheIssue() {
        try (BatchNormOps ops = new CpuBatchNormOps(1)) {
            Shape sh = Shape.channelsFirst(4, 3, 5);
            SplittableRandom rng = TestData.random(11);
            float[] x = TestData.normal(rng, 60, 0, 1);
            float[] y = new float[60];
            float[] stats = TestData.uniform(rng, 3, 0.5, 1.5);
            float[] other = TestData.uniform(rng, 3, 0.5, 1.5);
            assertRejected("runningVar must not be the same array as runningMean",
                    () -> ops.forwardTraining(sh, x, null, null, EPS, stats, stats, 0.1, y, other.clone(), other.clone()));
            assertRejected("saveInvstd must not be the same array as saveMean",
                    () -> ops.forwardTraining(sh, x, null, null, EPS, null, null, 0.1, y, stats, stats));
            float[] dy = TestData.normal(rng, 60, 0, 1);
            float[] grads = new float[3];
            assertRejected("dbeta must not be the same array as dgamma", () -> ops.backwardTraining(sh, x, dy, null,
                    other, stats, new float[60], grads, grads));
            assertRejected("y must not be the same array as x", () -> ops.forwardInference(sh, x, null, null, other,
                    stats, EPS, x));
        }
    }

    // ---- device pointers ----------------------------------------------------------------------------------------

    private static void callDevice(DeviceResidentBatchNorm bn, Op op, Shape sh, DevicePointer[] a, DeviceStream s) {
        switch (op) {
            case FORWARD_TRAINING -> bn.forwardTraining(sh, a[0], a[1], a[2], EPS, a[3], a[4], MOMENTUM, a[5], a[6], a[7], s);
            case FORWARD_INFERENCE -> bn.forwardInference(sh, a[0], a[1], a[2], a[3], a[4], EPS, a[5], s);
            case NORMALIZE -> bn.normalize(sh, a[0], a[1], a[2], a[3], a[4], a[5], s);
            case BACKWARD_TRAINING -> bn.backwardTraining(sh, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], s);
            case BACKWARD_INFERENCE -> bn.backwardInference(sh, a[0], a[1], a[2], a[3], a[4], EPS, a[5], a[6], a[7], s);
        }
    }

    /**
     * The rule, written from the contract: an output collides when its byte range intersects another given
     * argument's, unless it is an elementwise output given exactly as its elementwise input.
     */
    private static boolean collides(Op op, long[] start, long[] bytes, boolean[] given) {
        for (int o = 0; o < start.length; o++) {
            if (!op.slots[o].output() || !given[o]) continue;
            for (int other = 0; other < start.length; other++) {
                if (other == o || !given[other]) continue;
                boolean intersect = start[o] < start[other] + bytes[other] && start[other] < start[o] + bytes[o];
                String pair = op.slots[o].name() + "=" + op.slots[other].name();
                boolean inPlace = (pair.equals("y=x") || pair.equals("dx=dy")) && start[o] == start[other];
                if (intersect && !inPlace) return true;
            }
        }
        return false;
    }

    @Test
    void deviceRejectsEveryOutputWhoseBytesOverlapAnotherArgument() {
        int rejected = 0;
        int accepted = 0;
        {
            DeviceStream stream = device.defaultStream();
            for (int variant = 0; variant < 200; variant++) {
                SplittableRandom rng = TestData.random(9000 + variant);
                Op op = Op.values()[rng.nextInt(Op.values().length)];
                Shape sh = smallShape(rng);
                float[][] host = hostArguments(op, sh, rng);
                int k = op.slots.length;
                // Lay the slots out back to back in one buffer with small gaps, then move one output onto (or next
                // to) another argument: an overlap of 1 float up to the whole range, or just outside it.
                long[] start = new long[k];
                long[] bytes = new long[k];
                boolean[] given = new boolean[k];
                long pos = 0;
                for (int i = 0; i < k; i++) {
                    given[i] = host[i] != null;
                    bytes[i] = given[i] ? 4L * host[i].length : 0;
                    start[i] = pos;
                    pos += bytes[i] + 4L * rng.nextInt(3);
                }
                long total = pos + 64;
                List<Integer> outputs = new ArrayList<>();
                for (int i = 0; i < k; i++) if (given[i] && op.slots[i].output()) outputs.add(i);
                int o = outputs.get(rng.nextInt(outputs.size()));
                int target;
                do {
                    target = rng.nextInt(k);
                } while (target == o || !given[target]);
                long shiftFloats = rng.nextInt(8) == 0
                        ? (rng.nextBoolean() ? bytes[target] / 4 : -bytes[o] / 4)             // adjacent, not overlapping
                        : -(bytes[o] / 4 - 1) + rng.nextLong(bytes[o] / 4 + bytes[target] / 4 - 1); // overlapping
                start[o] = Math.max(0, Math.min(total - bytes[o], start[target] + 4 * shiftFloats));
                boolean expectReject = collides(op, start, bytes, given);

                try (DeviceBuffer buf = device.allocate(total)) {
                    float[] fill = TestData.uniform(rng, (int) (total / 4), 0.5, 1.5);
                    for (int i = 0; i < k; i++) {
                        if (given[i] && !op.slots[i].output()) {
                            System.arraycopy(host[i], 0, fill, (int) (start[i] / 4), host[i].length);
                        }
                    }
                    device.copyToDevice(fill, 0, buf.pointer(), fill.length, stream);
                    DevicePointer[] p = new DevicePointer[k];
                    for (int i = 0; i < k; i++) p[i] = given[i] ? buf.at(start[i]) : null;
                    String what = op + " " + sh + ": " + op.slots[o].name() + " at byte " + start[o] + " near "
                            + op.slots[target].name() + " at " + start[target];
                    if (expectReject) {
                        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                                () -> callDevice(bn, op, sh, p, stream), what);
                        assertMentions(e, op.slots[o].name(), "overlaps", "(bytes [");
                        float[] after = new float[fill.length];
                        device.copyToHost(buf.pointer(), after, 0, after.length, stream);
                        assertArrayEquals(fill, after, what + ": a rejected call wrote to the buffer");
                        rejected++;
                    } else {
                        callDevice(bn, op, sh, p, stream);
                        device.synchronize();
                        accepted++;
                    }
                }
            }
        }
        assertTrue(rejected >= 150 && accepted >= 10, rejected + " rejected, " + accepted + " accepted");
    }

    // ---- the layer, shapes and nulls ------------------------------------------------------------------------------

    @Test
    void theLayerRefusesItsOwnArraysAsOutputs() {
        try (BatchNormOps ops = new CpuBatchNormOps(1)) {
            BatchNorm bn = BatchNorm.builder(3).build(ops);
            Shape sh = Shape.channelsLast(1, 3);  // 3 elements: as many as the layer's vectors
            Shape train = Shape.channelsLast(2, 3);
            float[] x = TestData.normal(TestData.random(3), 6, 0, 1);
            float[] rm = bn.runningMean().clone();
            assertRejected("runningMean()", () -> bn.forward(sh, new float[3], bn.runningMean()));
            assertArrayEquals(rm, bn.runningMean());
            bn.forward(train, x);
            assertRejected("gammaGrad()", () -> bn.backward(sh, new float[3], new float[3], bn.gammaGrad()));
        }
    }

    @Test
    void shapesWhoseElementCountOverflowsAreIllegalArguments() {
        assertRejected("expected at most", () -> Shape.channelsFirst(1L << 32, 1L << 32));
        assertRejected("expected at most", () -> Shape.channelsFirst(1L << 62, 4));
        assertRejected("larger than 2^63 - 1", () -> Shape.parse(Layout.CHANNELS_FIRST, "100000000000000000000,3"));
        // Property: random dimensions, small to huge; either a shape whose count is the exact product, or an IAE.
        int accepted = 0;
        for (int variant = 0; variant < 2000; variant++) {
            SplittableRandom rng = TestData.random(500 + variant);
            long[] dims = new long[2 + rng.nextInt(4)];
            for (int i = 0; i < dims.length; i++) {
                dims[i] = switch (rng.nextInt(4)) {
                    case 0 -> rng.nextLong(1, 8);
                    case 1 -> rng.nextLong(1, 1L << 20);
                    case 2 -> 1L << rng.nextInt(63);
                    default -> rng.nextLong(-2, Long.MAX_VALUE);
                };
            }
            java.math.BigInteger product = java.math.BigInteger.ONE;
            boolean positive = true;
            for (long d : dims) {
                product = product.multiply(java.math.BigInteger.valueOf(d));
                positive &= d >= 1;
            }
            boolean fits = positive && product.compareTo(java.math.BigInteger.valueOf(Shape.MAX_ELEMENTS)) <= 0
                    && dims[1] <= Integer.MAX_VALUE;
            Layout layout = Layout.CHANNELS_FIRST;
            if (fits) {
                assertEquals(product.longValueExact(), Shape.of(layout, dims).elementCount(), Arrays.toString(dims));
                accepted++;
            } else {
                assertThrows(IllegalArgumentException.class, () -> Shape.of(layout, dims), Arrays.toString(dims));
            }
        }
        assertTrue(accepted > 100, accepted + " accepted");
    }

    @Test
    void nullsAreIllegalArgumentsAsTheReadmeSays() {
        assertRejected("backend name must not be null", () -> Backends.open(null));
        assertRejected("backend name must not be null", () -> Backends.provider(null));
        assertRejected("backend must not be null", () -> BatchNorm.builder(3).build(null));
        assertRejected("buffer must not be null", () -> new DevicePointer(null, 0));
        // Every non-optional argument of every operation, null in turn.
        try (BatchNormOps ops = new CpuBatchNormOps(1)) {
            Shape sh = Shape.channelsFirst(2, 3, 2);
            for (Op op : Op.values()) {
                for (int i = 0; i < op.slots.length; i++) {
                    float[][] a = hostArguments(op, sh, TestData.random(i));
                    for (int j = 0; j < a.length; j++) {
                        if (a[j] == null) a[j] = TestData.uniform(TestData.random(j), op.slots[j].perElement() ? 12 : 3, 0.5, 1.5);
                    }
                    if (op.slots[i].optional()) continue;
                    a[i] = null;
                    assertRejected(op.slots[i].name(), () -> callHost(ops, op, sh, a));
                }
            }
            assertRejected("shape must not be null", () -> ops.statistics(null, new float[3]));
        }
    }
}
