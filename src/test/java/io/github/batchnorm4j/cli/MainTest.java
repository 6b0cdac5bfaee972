package io.github.batchnorm4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.batchnorm4j.BackendInfo;
import io.github.batchnorm4j.BackendProvider;
import io.github.batchnorm4j.BackendUnavailableException;
import io.github.batchnorm4j.Backends;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.DeviceResidentTiming;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.gpu.MeasuredOps;
import io.github.batchnorm4j.gpu.TrafficMetrics;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Exit-code mapping, and runs of {@link Main#run} in this JVM with planted backends, which only this JVM can register
 * (every other CLI test goes through the launcher): an unavailable backend (exit 3), a backend that measures its
 * traffic (bench's traffic_ratio and sector_efficiency, validation against the CPU backend) and a wrong one (bench
 * refuses to time it). Each test takes its planted backends out of the registry again, and checks that it did.
 */
class MainTest {
    @TempDir
    Path dir;

    private final List<Backends.Registration> planted = new ArrayList<>();
    private List<String> before;

    @BeforeEach
    void rememberTheRegistry() {
        before = names();
    }

    @AfterEach
    void removeThePlantedBackends() {
        for (int i = planted.size() - 1; i >= 0; i--) planted.get(i).close();
        assertEquals(before, names(), "the registry after the test, as before it");
    }

    private static List<String> names() {
        return Backends.providers().stream().map(BackendProvider::name).toList();
    }

    private static String errOf(Exception e, int expectedCode) {
        StringWriter sw = new StringWriter();
        assertEquals(expectedCode, Main.exitCodeOf(e, new PrintWriter(sw)));
        return sw.toString();
    }

    @Test
    void exceptionsMapToTheDocumentedExitCodes() {
        assertEquals("error: backend 'cuda' is unavailable: no driver\n",
                errOf(new BackendUnavailableException("cuda", "no driver"), Main.UNAVAILABLE).replace("\r", ""));
        assertEquals("error: eps: bad value on two lines\n",
                errOf(new IllegalArgumentException("eps: bad value\n  on two lines"), Main.BAD_INPUT).replace("\r", ""));
        assertTrue(errOf(new NpyFormatException("x.npy: big-endian"), Main.BAD_INPUT).startsWith("error: x.npy"));
        assertTrue(errOf(new IllegalStateException("boom"), Main.FAILED).startsWith("error: internal error: "));
    }

    /** A registered backend that is never available. */
    private static final class Unavailable implements BackendProvider {
        @Override
        public String name() {
            return "unavailable-for-test";
        }

        @Override
        public BackendInfo probe() {
            return new BackendInfo(name(), false, "planted by MainTest");
        }

        @Override
        public BatchNormOps open() {
            throw new BackendUnavailableException(name(), "planted by MainTest");
        }
    }

    private record Run(int code, String out, String err) {
    }

    private static Run inProcess(String... args) {
        PrintStream oldOut = System.out;
        PrintStream oldErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            int code = Main.run(args);
            return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }

    @Test
    void anUnavailableBackendIsExitThreeWithTheReason() throws Exception {
        planted.add(Backends.register(new Unavailable()));
        Path x = dir.resolve("x.npy");
        Npy.write(x, new long[] {2, 3}, new float[] {1, 2, 3, 4, 5, 7});

        Run fwd = inProcess("forward", "--x", x.toString(), "--backend", "unavailable-for-test", "--out",
                dir.resolve("out").toString());
        assertEquals(Main.UNAVAILABLE, fwd.code(), fwd.toString());
        assertEquals("error: backend 'unavailable-for-test' is unavailable: planted by MainTest", fwd.err().strip());

        Run named = inProcess("check", "--backends", "cpu,unavailable-for-test");
        assertEquals(Main.UNAVAILABLE, named.code(), named.toString());
        assertTrue(named.err().strip().startsWith("error: backend 'unavailable-for-test' is unavailable"), named.err());

        // With 'all', it is listed with its reason and skipped; the CPU backend is still checked.
        Run all = inProcess("check");
        assertEquals(Main.OK, all.code(), all.toString());
        assertTrue(all.out().contains("skipped unavailable-for-test: unavailable (planted by MainTest)"), all.out());
        assertTrue(all.out().contains("check: PASS"), all.out());
    }

    /** A registered, available backend made by {@code factory}, for this test only. */
    private void register(String name, Supplier<BatchNormOps> factory) {
        planted.add(Backends.register(new BackendProvider() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public BackendInfo probe() {
                return new BackendInfo(name, true, "planted by MainTest");
            }

            @Override
            public BatchNormOps open() {
                return factory.get();
            }
        }));
    }

    /** CPU results, and fixed traffic: 3 S moved (S = 1440 bytes for 4,3,5,6), 80% sector efficiency. */
    private static final class Measured extends DelegatingOps implements MeasuredOps {
        @Override
        public String name() {
            return "measured-for-test";
        }

        @Override
        public Optional<TrafficMetrics> lastOperationMetrics() {
            return Optional.of(new TrafficMetrics(2, 1000, 2 * 1440, 1440, 4000, 5000, 0));
        }
    }

    @Test
    void benchReportsTrafficOfMeasuredBackendsAndValidatesAgainstTheCpu() {
        register("measured-for-test", Measured::new);
        Run r = inProcess("bench", "--backend", "measured-for-test", "--shape", "4,3,5,6", "--op", "forward-train",
                "--repeat", "2", "--warmup", "0", "--json");
        assertEquals(Main.OK, r.code(), r.toString());
        List<String> lines = r.out().strip().lines().toList();
        assertEquals(2, lines.size(), "one row per layout and no copy row off the CPU backend: " + r.out());
        for (String l : lines) {
            assertTrue(l.contains("\"backend\":\"measured-for-test\""), l);
            assertTrue(l.contains("\"traffic_ratio\":3,") || l.contains("\"traffic_ratio\":3.0"), l);
            assertTrue(l.contains("\"sector_efficiency\":0.8"), l);
            assertTrue(l.contains("\"max_rel_error\":0,") || l.contains("\"max_rel_error\":0.0"),
                    "same results as the CPU backend it is validated against: " + l);
        }
    }

    @Test
    void benchRefusesToTimeAWrongBackend() {
        register("wrong-for-test", () -> new DelegatingOps() {
            @Override
            public String name() {
                return "wrong-for-test";
            }

            @Override
            public void forwardInference(Shape shape, float[] x, float[] gamma, float[] beta, float[] runningMean,
                                         float[] runningVar, double eps, float[] y) {
                super.forwardInference(shape, x, gamma, beta, runningMean, runningVar, eps, y);
                y[0] += 1e-3f;
            }
        });
        Run r = inProcess("bench", "--backend", "wrong-for-test", "--shape", "4,3,5,6", "--op", "forward-eval",
                "--repeat", "2", "--warmup", "0", "--json");
        assertEquals(Main.FAILED, r.code(), r.toString());
        assertTrue(r.err().strip().startsWith("error: bench wrong-for-test forward-eval"), r.err());
        assertTrue(r.err().contains("validation failed before timing"), r.err());
        assertEquals("", r.out().strip(), "nothing timed");
    }

    /** A "device" backend: its device-resident operations run the CPU backend on private copies, and are counted. */
    private static final class DeviceTimed extends DelegatingOps implements DeviceResidentTiming {
        static final AtomicInteger PREPARED = new AtomicInteger();
        static final AtomicInteger RUNS = new AtomicInteger();
        static final AtomicInteger COPIES = new AtomicInteger();

        @Override
        public String name() {
            return "device-for-test";
        }

        @Override
        public Timed prepareTiming(Op op, Shape shape, float[] x, float[] dy, float[] gamma, float[] beta,
                                   float[] runningMean, float[] runningVar, float[] saveMean, float[] saveInvstd,
                                   double eps, double momentum) {
            PREPARED.incrementAndGet();
            float[] dx = new float[x.length];
            float[] rm = runningMean.clone();
            float[] rv = runningVar.clone();
            float[] c1 = new float[shape.channels()];
            float[] c2 = new float[shape.channels()];
            return new Timed() {
                @Override
                public void run() {
                    RUNS.incrementAndGet();
                    switch (op) {
                        case FORWARD_TRAINING -> cpu.forwardTraining(shape, x, gamma, beta, eps, rm, rv, momentum, dx,
                                c1, c2);
                        case FORWARD_INFERENCE -> cpu.forwardInference(shape, x, gamma, beta, rm, rv, eps, dx);
                        case BACKWARD_TRAINING -> cpu.backwardTraining(shape, x, dy, gamma, saveMean, saveInvstd, dx,
                                c1, c2);
                    }
                }

                @Override
                public void close() {
                }
            };
        }

        @Override
        public Timed prepareCopy(long bytes) {
            float[] a = new float[(int) (bytes / 4)];
            float[] b = new float[a.length];
            return new Timed() {
                @Override
                public void run() {
                    COPIES.incrementAndGet();
                    System.arraycopy(a, 0, b, 0, a.length);
                }

                @Override
                public void close() {
                }
            };
        }
    }

    @Test
    void benchTimesTheDeviceResidentOperationsAndTheDeviceCopy() {
        register("device-for-test", DeviceTimed::new);
        Run r = inProcess("bench", "--backend", "device-for-test", "--shape", "4,3,5,6", "--repeat", "3",
                "--warmup", "0", "--json");
        assertEquals(Main.OK, r.code(), r.toString());
        List<String> lines = r.out().strip().lines().toList();
        assertEquals(1 + 2 * BenchCommand.ALL_OPS.size(), lines.size(), r.out());
        assertTrue(lines.get(0).contains("\"op\":\"copy\"") && lines.get(0).contains("\"timed\":\"device\"")
                && !lines.get(0).contains("threads"), lines.get(0));
        for (String l : lines.subList(1, lines.size())) {
            // The fused ops have no device-resident timing in DeviceResidentTiming: host API.
            assertTrue(l.contains(l.contains("relu") ? "\"timed\":\"host\"" : "\"timed\":\"device\""), l);
            assertTrue(l.contains("\"pct_of_copy\":"), l);
        }
        assertEquals(6, DeviceTimed.PREPARED.get(), "one prepared operation per op and layout");
        assertTrue(DeviceTimed.RUNS.get() >= 6 * (BenchHarness.MIN_WARMUP_RUNS + 3), "warm-ups and timed runs");
        assertTrue(DeviceTimed.COPIES.get() >= BenchHarness.MIN_WARMUP_RUNS + 3, "the device copy was timed");
    }

    @Test
    void checkCountsABackendThatCannotBeOpenedAsAFailure() {
        register("broken-for-test", () -> {
            throw new IllegalStateException("kernel module failed to load");
        });
        Run r = inProcess("check", "--backends", "broken-for-test");
        assertEquals(Main.FAILED, r.code(), r.toString());
        assertTrue(r.out().contains("FAIL broken-for-test: could not be opened: java.lang.IllegalStateException: "
                + "kernel module failed to load"), r.out());
        assertTrue(r.out().contains("check: FAIL, 1 of 1 checks failed"), r.out());
    }

    @Test
    void checkPrintsThePairwiseTableWithFailuresAndUnsupportedOps() {
        // The CPU backend with no statistics() and forward eval off by 1e-3 relative at one element.
        register("partial-for-test", () -> new DelegatingOps() {
            @Override
            public String name() {
                return "partial-for-test";
            }

            @Override
            public io.github.batchnorm4j.ChannelStatistics statistics(Shape shape, float[] x) {
                throw new UnsupportedOperationException("no statistics here");
            }

            @Override
            public void forwardInference(Shape shape, float[] x, float[] gamma, float[] beta, float[] runningMean,
                                         float[] runningVar, double eps, float[] y) {
                cpu.forwardInference(shape, x, gamma, beta, runningMean, runningVar, eps, y);
                y[0] += 1e-3f * Math.max(1f, Math.abs(y[0]));
            }
        });
        Run r = inProcess("check", "--backends", "cpu,partial-for-test");
        assertEquals(Main.FAILED, r.code(), r.toString());
        List<String> out = r.out().lines().toList();
        int shapes = CrossCheck.shapes().size();
        assertEquals(shapes, out.stream().filter(l -> l.matches("partial-for-test\\s+statistics\\s.*"
                + "\\s-\\s+1e-05\\s+UNSUPPORTED\\s+unsupported: no statistics here")).count(), r.out());
        assertEquals(shapes, out.stream().filter(l -> l.matches("partial-for-test\\s+forward-eval\\s.*\\sFAIL\\s+y"))
                .count(), r.out());
        int header = out.indexOf(out.stream().filter(l -> l.matches("op\\s+layout\\s+shape\\s+tolerance\\s+"
                + "cpu~partial-for-test")).findFirst().orElse("(no pairwise header)"));
        assertTrue(header > 0, r.out());
        List<String> pairRows = out.subList(header + 1, header + 1 + shapes * CrossCheck.OPS.size());
        for (String row : pairRows) {
            if (row.startsWith("statistics ")) assertTrue(row.endsWith(" unsupported"), row);
            // 1e-3·max(1, |y|) apart: 1e-3 relative to max(|a|, |b|, 1), or 1e-3/1.001 where |y| > 1
            else if (row.startsWith("forward-eval ")) assertTrue(row.matches(".*\\sFAIL (1\\.00e-03|9\\.99e-04)"), row);
            else assertTrue(row.endsWith(" 0.00e+00"), "same code, same inputs: " + row);
        }
        assertEquals("check: FAIL, " + 2 * shapes + " of " + 2 * shapes * CrossCheck.OPS.size() * 3 / 2
                + " checks failed (" + 2 * shapes * CrossCheck.OPS.size() + " against float64, "
                + shapes * CrossCheck.OPS.size() + " pairwise) on cpu, partial-for-test", out.get(out.size() - 1));
    }
}
