package io.github.batchnorm4j.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

/** The CPU backend's worker pool: every task exactly once, failures after all tasks ended, calls from many threads. */
class SpinPoolTest {
    @Test
    void everyTaskRunsExactlyOnceAndItsWritesAreVisible() {
        SpinPool pool = new SpinPool(2, "test");
        try {
            for (int call = 0; call < 2000; call++) {
                int tasks = 1 + call % 3;
                int[] out = new int[3]; // plain writes: visible to the caller after run returns
                AtomicIntegerArray runs = new AtomicIntegerArray(3);
                int c = call;
                pool.run(tasks, t -> {
                    runs.incrementAndGet(t);
                    out[t] = c + t;
                });
                for (int t = 0; t < 3; t++) {
                    assertEquals(t < tasks ? 1 : 0, runs.get(t), "call " + call + " task " + t);
                    assertEquals(t < tasks ? c + t : 0, out[t], "call " + call + " task " + t);
                }
            }
        } finally {
            pool.close();
        }
    }

    @Test
    void aFailureIsRethrownAfterEveryTaskEndedAndThePoolStaysUsable() {
        SpinPool pool = new SpinPool(2, "test");
        try {
            for (int failing = 0; failing < 3; failing++) {
                int f = failing;
                AtomicIntegerArray started = new AtomicIntegerArray(3);
                AtomicIntegerArray ended = new AtomicIntegerArray(3);
                IllegalStateException e = assertThrows(IllegalStateException.class, () -> pool.run(3, t -> {
                    started.incrementAndGet(t);
                    try {
                        if (t == f) throw new IllegalStateException("task " + t);
                        busy();
                    } finally {
                        ended.incrementAndGet(t);
                    }
                }));
                assertEquals("task " + f, e.getMessage());
                // A task not yet started when task 0 failed is dropped; none may still run after the throw.
                for (int t = 0; t < 3; t++) {
                    assertTrue(started.get(t) <= 1, "task " + t + " at most once");
                    assertEquals(started.get(t), ended.get(t), "task " + t + " ended before the throw");
                }
                if (f != 0) assertEquals(1, ended.get(0), "task 0 runs whatever the others do");
                int[] out = new int[3];
                pool.run(3, t -> out[t] = t + 1);
                assertArrayEquals(new int[] {1, 2, 3}, out, "usable after a failure");
            }
            assertThrows(IllegalArgumentException.class, () -> pool.run(4, t -> { }));
        } finally {
            pool.close();
        }
    }

    @Test
    void callsFromSeveralThreadsAtOnceAllComplete() throws Exception {
        SpinPool pool = new SpinPool(1, "test");
        try {
            List<Thread> threads = new ArrayList<>();
            ConcurrentHashMap<String, Throwable> failures = new ConcurrentHashMap<>();
            for (int k = 0; k < 4; k++) {
                Thread th = new Thread(() -> {
                    try {
                        for (int call = 0; call < 500; call++) {
                            long[] sums = new long[2];
                            pool.run(2, t -> sums[t] = t + 10);
                            if (sums[0] != 10 || sums[1] != 11) throw new AssertionError(sums[0] + " " + sums[1]);
                        }
                    } catch (Throwable e) {
                        failures.put(Thread.currentThread().getName(), e);
                    }
                });
                threads.add(th);
                th.start();
            }
            for (Thread th : threads) th.join(60_000);
            assertTrue(failures.isEmpty(), failures.toString());
        } finally {
            pool.close();
        }
    }

    @Test
    void afterCloseTasksRunOnTheCallingThread() {
        SpinPool pool = new SpinPool(1, "test");
        pool.close();
        Thread[] ran = new Thread[2];
        pool.run(2, t -> ran[t] = Thread.currentThread());
        assertSame(Thread.currentThread(), ran[0]);
        assertSame(Thread.currentThread(), ran[1]);
    }

    private static volatile long sink;

    private static void busy() {
        long s = 0;
        for (int i = 0; i < 100_000; i++) s += i ^ s;
        sink = s;
    }
}
