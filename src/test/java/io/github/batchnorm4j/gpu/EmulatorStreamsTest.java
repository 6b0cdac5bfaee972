package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.ptx.EmulatorOptions;
import io.github.batchnorm4j.testing.TestData;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static io.github.batchnorm4j.testing.Messages.assertMentions;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link DeviceResidentBatchNorm} on several streams of the emulator, whose streams run in a seeded interleaving with
 * the cross-stream check on: one instance serves two streams correctly (a workspace per stream), a tensor passed from
 * one stream to another needs an event (without one the emulator names both streams, both kernels and the region),
 * and the arrival counters are zero again after a reduction that failed halfway.
 */
class EmulatorStreamsTest {
    private static final Shape SHAPE = Shape.channelsFirst(8, 3, 32, 32);   // 2 float4 blocks per channel: counters in use
    private static final int N = SHAPE.elementCountAsInt(), C = SHAPE.channels();

    /** The tensors of one training step on one stream. */
    private static final class Step implements AutoCloseable {
        final DeviceBuffer x, dy, y, dx, ch;

        Step(Device d, long seed, DeviceStream s) {
            SplittableRandom rng = TestData.random(seed);
            x = d.allocate(4L * N);
            dy = d.allocate(4L * N);
            y = d.allocate(4L * N);
            dx = d.allocate(4L * N);
            ch = d.allocate(4L * 256 * 4);
            d.copyToDevice(TestData.perChannelNormal(rng, SHAPE), 0, x.pointer(), N, s);
            d.copyToDevice(TestData.normal(rng, N, 0, 1), 0, dy.pointer(), N, s);
        }

        void train(DeviceResidentBatchNorm bn, DeviceStream s) {
            bn.forwardTraining(SHAPE, x.pointer(), null, null, 1e-5, null, null, 0.1, y.pointer(), ch.at(0),
                    ch.at(1024), s);
            bn.backwardTraining(SHAPE, x.pointer(), dy.pointer(), null, ch.at(0), ch.at(1024), dx.pointer(),
                    ch.at(2048), ch.at(3072), s);
        }

        /** y, saved mean and saved invstd. */
        float[] forwardOutputs(Device d, DeviceStream s) {
            float[] out = TestData.poisoned(N + 2 * C);
            d.copyToHost(y.pointer(), out, 0, N, s);
            d.copyToHost(ch.at(0), out, N, C, s);
            d.copyToHost(ch.at(1024), out, N + C, C, s);
            return out;
        }

        float[] outputs(Device d, DeviceStream s) {
            float[] out = TestData.poisoned(2 * N + 4 * C);
            d.copyToHost(y.pointer(), out, 0, N, s);
            d.copyToHost(dx.pointer(), out, N, N, s);
            for (int k = 0; k < 4; k++) d.copyToHost(ch.at(1024L * k), out, 2 * N + k * C, C, s);
            return out;
        }

        @Override
        public void close() {
            x.close();
            dy.close();
            y.close();
            dx.close();
            ch.close();
        }
    }

    /** Outputs of one training step on the default stream of a fresh device. */
    private static float[] reference(long seed) {
        try (EmulatedDevice d = new EmulatedDevice(); DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(d);
             Step st = new Step(d, seed, d.defaultStream())) {
            st.train(bn, d.defaultStream());
            return st.outputs(d, d.defaultStream());
        }
    }

    @Test
    void oneInstanceServesTwoStreamsWithAWorkspaceEach() {
        float[] ea = reference(1), eb = reference(2);
        for (long seed = 1; seed <= 4; seed++) {
            try (EmulatedDevice d = new EmulatedDevice(EmulatorOptions.defaults().withBlockOrderSeed(seed));
                 DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(d);
                 DeviceStream a = d.createStream(); DeviceStream b = d.createStream();
                 Step sa = new Step(d, 1, a); Step sb = new Step(d, 2, b)) {
                for (int step = 0; step < 2; step++) {   // interleaved calls, no synchronization between the streams
                    sa.train(bn, a);
                    sb.train(bn, b);
                }
                assertArrayEquals(ea, sa.outputs(d, a), "stream a, seed " + seed);
                assertArrayEquals(eb, sb.outputs(d, b), "stream b, seed " + seed);
                long both = bn.workspaceBytes();
                a.close();
                sb.train(bn, b);   // a closed stream's workspace is freed at the next call
                assertTrue(bn.workspaceBytes() < both, bn.workspaceBytes() + " >= " + both);
                d.synchronize();
            }
        }
    }

    @Test
    void aTensorPassedBetweenStreamsNeedsAnEvent() {
        for (boolean event : new boolean[]{true, false}) {
            try (EmulatedDevice d = new EmulatedDevice(); DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(d);
                 DeviceStream a = d.createStream(); DeviceStream b = d.createStream(); DeviceEvent e = d.createEvent();
                 Step st = new Step(d, 3, a); DeviceBuffer z = d.allocate(4L * N)) {
                Runnable pipeline = () -> {
                    st.train(bn, a);                                  // y on stream a
                    if (event) {
                        e.record(a);
                        b.waitFor(e);
                    }
                    bn.normalize(SHAPE, st.y.pointer(), null, null, st.ch.at(0), st.ch.at(1024), z.pointer(), b);
                    d.synchronize();
                };
                if (event) {
                    pipeline.run();
                } else {
                    DeviceException x = assertThrows(DeviceException.class, pipeline::run);
                    assertMentions(x.getMessage(), "streams race on buffer #", "on stream #1", "on stream #2",
                            "with nothing ordering the two", "launch of bn_");
                }
            }
        }
    }

    /**
     * The shipped forward module with a trap right after the arrival atomic of every bn_stats kernel, taken when the
     * eps argument is 0.25: a reduction that dies after some blocks have counted themselves.
     */
    private static String trapAfterArrival(String module) {
        String ptx = PtxModules.read(module);
        if (!module.equals(PtxModules.FORWARD)) return ptx;
        StringBuilder out = new StringBuilder();
        String entry = null;
        for (String line : ptx.split("\n", -1)) {
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("^\\.visible \\.entry (\\w+)\\(").matcher(line);
            if (m.find()) entry = m.group(1);
            out.append(line).append('\n');
            if (entry != null && entry.startsWith("bn_stats") && line.contains("atom.global.add.u32")) {
                out.append("\t{\n\t.reg .f32 %ftrap;\n\t.reg .pred %ptrap;\n\tld.param.f32 %ftrap, [").append(entry)
                        .append("_param_9];\n\tsetp.eq.f32 %ptrap, %ftrap, 0f3E800000;\n\t@%ptrap trap;\n\t}\n");
            }
        }
        return out.toString();
    }

    @Test
    void countersAreZeroAgainAfterAReductionThatFailedHalfway() {
        float[] expected;
        try (EmulatedDevice d = new EmulatedDevice(); DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(d);
             Step st = new Step(d, 4, d.defaultStream())) {
            bn.forwardTraining(SHAPE, st.x.pointer(), null, null, 1e-5, null, null, 0.1, st.y.pointer(), st.ch.at(0),
                    st.ch.at(1024), d.defaultStream());
            expected = st.forwardOutputs(d, d.defaultStream());
        }
        try (EmulatedDevice d = new EmulatedDevice();
             DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(d, EmulatorStreamsTest::trapAfterArrival);
             Step st = new Step(d, 4, d.defaultStream())) {
            DeviceException failed = assertThrows(DeviceException.class, () -> bn.forwardTraining(SHAPE,
                    st.x.pointer(), null, null, 0.25, null, null, 0.1, st.y.pointer(), st.ch.at(0), st.ch.at(1024),
                    d.defaultStream()));
            assertMentions(failed.getMessage(), "trap executed", "kernel bn_stats_cf");
            // the next call starts with zero counters: same results as a clean device, and the emulator's
            // self-resetting check (zero after every launch) holds
            bn.forwardTraining(SHAPE, st.x.pointer(), null, null, 1e-5, null, null, 0.1, st.y.pointer(), st.ch.at(0),
                    st.ch.at(1024), d.defaultStream());
            assertArrayEquals(expected, st.forwardOutputs(d, d.defaultStream()), "y, saved mean and invstd");
        }
    }
}
