package io.github.batchnorm4j.distributed;

import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class InProcessCollectiveTest {

    /** Rank r's payload: distinct per rank and per element, with the awkward values (−0, NaN, subnormal) bit for bit. */
    private static double[] payload(int r, int n, int round) {
        double[] a = new double[n];
        for (int i = 0; i < n; i++) a[i] = 1000.0 * r + i + 0.25 * round;
        a[0] = r == 1 ? -0.0 : Double.longBitsToDouble(0x7ff8_0000_0000_1234L + r);   // NaN with a payload
        a[n - 1] = Double.MIN_VALUE * (r + 1);
        return a;
    }

    @Test
    void gathersEveryRanksBufferInRankOrderBitForBitRoundAfterRound() {
        int k = 3;
        int n = 5;
        List<Collective> group = InProcessCollective.group(k);
        List<double[][]> got = Ranks.run(k, r -> {
            Collective c = group.get(r);
            assertEquals(r, c.rank());
            assertEquals(k, c.worldSize());
            double[][] rounds = new double[4][];
            for (int round = 0; round < rounds.length; round++) {
                rounds[round] = new double[k * n];
                c.allGather(payload(r, n, round), rounds[round]);
            }
            return rounds;
        });
        for (int r = 0; r < k; r++) {
            for (int round = 0; round < 4; round++) {
                for (int q = 0; q < k; q++) {
                    double[] want = payload(q, n, round);
                    for (int i = 0; i < n; i++) {
                        assertEquals(Double.doubleToRawLongBits(want[i]),
                                Double.doubleToRawLongBits(got.get(r)[round][q * n + i]),
                                "rank " + r + " round " + round + " element " + i + " of rank " + q);
                    }
                }
            }
        }
    }

    @Test
    void differentLengthsFailOnEveryRankWithOneMessageAndTheGroupStaysUsable() {
        List<Collective> group = InProcessCollective.group(2);
        List<String> messages = Ranks.run(2, r -> {
            CollectiveException e = assertThrows(CollectiveException.class,
                    () -> group.get(r).allGather(new double[3 + r], new double[2 * (3 + r)]));
            double[] recv = new double[4];
            group.get(r).allGather(new double[] {r, r + 0.5}, recv);
            assertArrayEquals(new double[] {0, 0.5, 1, 1.5}, recv);
            return e.getMessage().substring(e.getMessage().indexOf(':'));
        });
        assertEquals(messages.get(0), messages.get(1));
        assertTrue(messages.get(0).contains("rank 0: 3 doubles, rank 1: 4 doubles"), messages.get(0));
    }

    @Test
    void aWrongRecvFailsOnlyItsOwnRankAndLeavesTheOthersTheirData() {
        List<Collective> group = InProcessCollective.group(2);
        List<String> out = Ranks.run(2, r -> {
            if (r == 0) {
                double[] recv = new double[3];
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> group.get(0).allGather(new double[] {7}, recv));
                assertArrayEquals(new double[3], recv, "recv left unchanged");
                return e.getMessage();
            }
            double[] recv = new double[2];
            group.get(1).allGather(new double[] {8}, recv);
            assertArrayEquals(new double[] {7, 8}, recv);
            return "ok";
        });
        assertEquals("recv: expected worldSize·send.length = 2·1 doubles, got 3", out.get(0));
    }

    @Test
    void aRankThatNeverComesBreaksTheGroupAfterTheTimeoutForEveryone() {
        List<Collective> group = InProcessCollective.group(3, Duration.ofMillis(150));
        List<String> out = Ranks.run(2, r -> assertThrows(CollectiveException.class,
                () -> group.get(r).allGather(new double[1], new double[3])).getMessage());
        for (String m : out) {
            assertTrue(m.contains("the group is broken (rank ") && m.contains("waited PT0.15S for the other ranks"), m);
        }
        // Broken for good: even the late rank fails at once.
        CollectiveException late = assertThrows(CollectiveException.class,
                () -> group.get(2).allGather(new double[1], new double[3]));
        assertTrue(late.getMessage().startsWith("all-gather on rank 2 of 3 failed: the group is broken"), late.getMessage());
    }

    @Test
    void closingAMemberReleasesTheRanksWaitingForIt() {
        List<Collective> group = InProcessCollective.group(2);   // default timeout: minutes; close must not wait for it
        long t0 = System.nanoTime();
        List<String> out = Ranks.run(2, r -> {
            if (r == 1) {
                sleep(100);
                group.get(1).close();
                group.get(1).close();   // idempotent
                assertThrows(IllegalStateException.class, () -> group.get(1).allGather(new double[1], new double[2]));
                return "closed";
            }
            return assertThrows(CollectiveException.class,
                    () -> group.get(0).allGather(new double[1], new double[2])).getMessage();
        });
        assertTrue(out.get(0).contains("rank 1 closed the group"), out.get(0));
        assertTrue(System.nanoTime() - t0 < 30_000_000_000L);
    }

    @Test
    void deviceAllGatherMovesFloatsBetweenEmulatedDevicesOnTheirStreams() {
        int k = 3;
        int n = 4;
        List<Collective> group = InProcessCollective.group(k);
        List<float[]> got = Ranks.run(k, r -> {
            try (EmulatedDevice d = new EmulatedDevice();
                 DeviceBuffer send = d.allocate(4L * n);
                 DeviceBuffer recv = d.allocate(4L * n * k + 64)) {
                float[] mine = new float[n];
                for (int i = 0; i < n; i++) mine[i] = 10 * r + i + 0.5f;
                d.copyToDevice(mine, 0, send.pointer(), n, d.defaultStream());
                group.get(r).allGather(send.pointer(), recv.at(16), n, d.defaultStream());
                float[] all = new float[n * k];
                d.copyToHost(recv.at(16), all, 0, all.length, d.defaultStream());
                return all;
            }
        });
        float[] want = new float[n * k];
        for (int q = 0; q < k; q++) for (int i = 0; i < n; i++) want[q * n + i] = 10 * q + i + 0.5f;
        for (float[] g : got) assertArrayEquals(want, g);
    }

    @Test
    void rejectsBadArgumentsBeforeTakingPart() {
        Collective c = InProcessCollective.group(1).get(0);
        assertThrows(IllegalArgumentException.class, () -> c.allGather(null, new double[1]));
        assertThrows(IllegalArgumentException.class, () -> InProcessCollective.group(0));
        assertThrows(IllegalArgumentException.class, () -> InProcessCollective.group(2, Duration.ZERO));
        double[] recv = new double[2];
        c.allGather(new double[] {1, 2}, recv);   // a group of one gathers its own buffer
        assertArrayEquals(new double[] {1, 2}, recv);
        try (EmulatedDevice d = new EmulatedDevice(); DeviceBuffer b = d.allocate(16)) {
            assertThrows(IllegalArgumentException.class, () -> c.allGather(b.pointer(), b.pointer(), 0, d.defaultStream()));
            IllegalArgumentException room = assertThrows(IllegalArgumentException.class,
                    () -> c.allGather(b.pointer(), b.at(8), 4, d.defaultStream()));
            assertTrue(room.getMessage().startsWith("recv"), room.getMessage());
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
