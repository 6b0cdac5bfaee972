package io.github.batchnorm4j.distributed;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.IntFunction;

/** Runs one body per rank, each on its own thread (as data-parallel code runs), and returns the results in rank order. */
final class Ranks {
    private Ranks() {
    }

    /**
     * Runs {@code body.apply(r)} for r in [0, k) on k threads and waits up to a minute; rethrows the first failure (by
     * rank) with the others suppressed.
     */
    static <T> List<T> run(int k, IntFunction<T> body) {
        ExecutorService pool = Executors.newFixedThreadPool(k, r -> {
            Thread t = new Thread(r, "rank");
            t.setDaemon(true);
            return t;
        });
        try {
            List<Future<T>> futures = new ArrayList<>();
            for (int r = 0; r < k; r++) {
                int rank = r;
                futures.add(pool.submit(() -> body.apply(rank)));
            }
            List<T> out = new ArrayList<>();
            RuntimeException failure = null;
            for (Future<T> f : futures) {
                try {
                    out.add(f.get(60, TimeUnit.SECONDS));
                } catch (ExecutionException e) {
                    RuntimeException r = e.getCause() instanceof RuntimeException re ? re
                            : new RuntimeException(e.getCause());
                    if (failure == null) failure = r;
                    else failure.addSuppressed(r);
                    out.add(null);
                } catch (InterruptedException | TimeoutException e) {
                    throw new AssertionError("a rank did not finish: " + e, e);
                }
            }
            if (failure != null) throw failure;
            return out;
        } finally {
            pool.shutdownNow();
        }
    }
}
