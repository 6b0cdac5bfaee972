package io.github.batchnorm4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.batchnorm4j.cpu.FloatCopy;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** The bench harness: medians, bandwidth arithmetic, warm-up and repeat counts, the copy measurement. */
class BenchHarnessTest {

    @Test
    void medianOfOddAndEvenCounts() {
        assertEquals(3.0, BenchHarness.median(new double[] {9, 1, 3}));
        assertEquals(2.5, BenchHarness.median(new double[] {4, 1, 3, 2}));
        assertEquals(7.0, BenchHarness.median(new double[] {7}));
        assertThrows(IllegalArgumentException.class, () -> BenchHarness.median(new double[0]));
    }

    @Test
    void gbpsIsBytesPerSecondInUnitsOf1e9() {
        // 3 S of S = 1e9 bytes in 1500 ms: 2 GB/s.
        assertEquals(2.0, BenchHarness.gbps(3e9, 1500), 1e-12);
    }

    @Test
    void timeWarmsUpThenTimesExactlyTheRepeats() {
        AtomicInteger calls = new AtomicInteger();
        BenchHarness.Timing t = BenchHarness.time(() -> {
            calls.incrementAndGet();
            busy(200_000);
        }, 5, 20_000_000L);
        assertEquals(5, t.repeats());
        assertTrue(t.warmups() >= BenchHarness.MIN_WARMUP_RUNS, "warm-ups: " + t.warmups());
        assertEquals(t.warmups() + 5, calls.get(), "each warm-up and each timed run calls the op once");
        assertTrue(t.minMs() > 0 && t.minMs() <= t.medianMs(), t.toString());
        assertThrows(IllegalArgumentException.class, () -> BenchHarness.time(() -> { }, 0));
    }

    @Test
    void warmUpIsByTimeWhateverTheRunCount() {
        AtomicInteger calls = new AtomicInteger();
        long t0 = System.nanoTime();
        BenchHarness.Timing t = BenchHarness.time(calls::incrementAndGet, 3, 50_000_000L);
        assertTrue(System.nanoTime() - t0 >= 50_000_000L, "at least the warm-up time passed");
        assertTrue(t.warmups() > 1000, "a fast op warms up for the whole time, not a fixed count: " + t);
        BenchHarness.Timing none = BenchHarness.time(calls::incrementAndGet, 3, 0);
        assertEquals(BenchHarness.MIN_WARMUP_RUNS, none.warmups(), "no warm-up time: the minimum run count");
        assertThrows(IllegalArgumentException.class, () -> BenchHarness.time(() -> { }, 1, -1));
    }

    /**
     * After the warm-up time the runs go on while the JIT finishes compilations: until JIT_QUIET_RUNS runs and
     * JIT_QUIET_NANOS without one (a stand-in for the JVM's compilation time that moves on the first 50 runs); no
     * wait when the warm-up time is 0; no wait beyond the time when the JVM does not report compilation time.
     */
    @Test
    void warmUpWaitsForTheJitToFallQuiet() {
        AtomicInteger calls = new AtomicInteger();
        long[] t = new long[2]; // the stand-in compilation time; when it last moved
        int warmups = BenchHarness.warmUp(() -> {
            busy(200_000);
            if (calls.incrementAndGet() <= 50) {
                t[0]++; // a compilation ended during this run
                t[1] = System.nanoTime();
            }
        }, 1_000_000L, () -> t[0]);
        long quiet = System.nanoTime() - t[1];
        assertTrue(warmups >= 50 + BenchHarness.JIT_QUIET_RUNS, "runs after the last compilation: " + warmups);
        assertTrue(quiet >= BenchHarness.JIT_QUIET_NANOS, "quiet for JIT_QUIET_NANOS after it: " + quiet + " ns");
        assertEquals(calls.get(), warmups, "each warm-up run calls the op once");
        calls.set(0);
        assertEquals(BenchHarness.MIN_WARMUP_RUNS, BenchHarness.warmUp(calls::incrementAndGet, 0, () -> calls.get()),
                "no warm-up time: no wait for the JIT either");
        long t1 = System.nanoTime();
        int byTime = BenchHarness.warmUp(calls::incrementAndGet, 1_000_000L, null);
        assertTrue(System.nanoTime() - t1 < BenchHarness.JIT_QUIET_NANOS && byTime >= BenchHarness.MIN_WARMUP_RUNS,
                "no compilation time known: by time only (" + byTime + " runs)");
    }

    @Test
    void copyBandwidthIsTheFastestCopyAndCountsReadAndWrittenBytes() {
        BenchHarness.CopyBandwidth c = BenchHarness.measureCopy((4 << 20) + 3, 2, 3, 10_000_000L);
        assertEquals(4 << 20, c.bytes(), "whole floats of the size asked for");
        assertTrue(FloatCopy.vectorized(), "the tests run with the Vector API (pom.xml)");
        assertEquals(3, c.others().size(), "four ways tried, the slower ones listed: " + c);
        assertTrue(c.method().matches("(System.arraycopy|vector copy), " + c.threads() + " threads?"), c.toString());
        assertTrue(c.threads() == 1 || c.threads() == 2, c.toString());
        for (String other : c.others()) assertTrue(!other.startsWith(c.method()), c.toString());
        assertEquals(2.0 * c.bytes() / (c.timing().medianMs() * 1e-3) / 1e9, c.gbps(), 1e-9 * c.gbps());
        assertTrue(c.gbps() > 0.1 && c.gbps() < 10_000, "plausible: " + c.gbps());
        assertThrows(IllegalArgumentException.class, () -> BenchHarness.measureCopy(2, 1, 1));
        BenchHarness.CopyBandwidth tiny = BenchHarness.measureCopy(1000, 8, 3, 0);
        assertEquals(1, tiny.threads(), "a small copy is not split across threads");
        assertEquals(1, tiny.others().size(), "the other one-thread copy: " + tiny);
        assertTrue(tiny.others().get(0).contains(", 1 thread:"), tiny.toString());
        assertEquals(1000, tiny.bytes());
    }

    private static long sink;

    private static void busy(int n) {
        long s = 0;
        for (int i = 0; i < n; i++) s += i * 31L ^ s;
        sink += s;
    }
}
