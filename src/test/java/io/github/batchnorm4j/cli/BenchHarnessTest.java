package io.github.batchnorm4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
        }, 5);
        assertEquals(5, t.repeats());
        assertTrue(t.warmups() >= BenchHarness.MIN_WARMUP_RUNS, "warm-ups: " + t.warmups());
        assertEquals(t.warmups() + 5, calls.get(), "each warm-up and each timed run calls the op once");
        assertTrue(t.minMs() > 0 && t.minMs() <= t.medianMs(), t.toString());
        assertThrows(IllegalArgumentException.class, () -> BenchHarness.time(() -> { }, 0));
    }

    @Test
    void copyBandwidthCountsReadAndWrittenBytes() {
        BenchHarness.CopyBandwidth c = BenchHarness.measureCopy((4 << 20) + 3, 2, 3);
        assertEquals(4 << 20, c.bytes(), "whole floats of the size asked for");
        assertEquals(2, c.threads());
        assertEquals(2.0 * c.bytes() / (c.timing().medianMs() * 1e-3) / 1e9, c.gbps(), 1e-9 * c.gbps());
        assertTrue(c.gbps() > 0.1 && c.gbps() < 10_000, "plausible: " + c.gbps());
        assertThrows(IllegalArgumentException.class, () -> BenchHarness.measureCopy(2, 1, 1));
        BenchHarness.CopyBandwidth tiny = BenchHarness.measureCopy(1000, 8, 3);
        assertEquals(1, tiny.threads(), "a small copy is not split across threads");
        assertEquals(1000, tiny.bytes());
    }

    private static long sink;

    private static void busy(int n) {
        long s = 0;
        for (int i = 0; i < n; i++) s += i * 31L ^ s;
        sink += s;
    }
}
