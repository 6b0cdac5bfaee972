package io.github.batchnorm4j.nccl;

import io.github.batchnorm4j.distributed.CollectiveException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** torchrun-style settings from the environment, and the NCCL id's trip through a file from rank 0 to the others. */
class NcclRendezvousTest {
    @TempDir
    Path dir;

    private Map<String, String> env(String... kv) {
        Map<String, String> m = new HashMap<>();
        for (int i = 0; i < kv.length; i += 2) m.put(kv[i], kv[i + 1]);
        return m;
    }

    @Test
    void readsTorchrunsVariables() {
        NcclRendezvous.Settings s = NcclRendezvous.fromEnvironment(env("RANK", "2", "WORLD_SIZE", "4",
                "LOCAL_RANK", "0", "BATCHNORM4J_NCCL_ID_FILE", "/shared/id", "TORCHELASTIC_RUN_ID", "job7"));
        assertEquals(new NcclRendezvous.Settings(2, 4, 0, Path.of("/shared/id"), "job7", Duration.ofSeconds(300)), s);
        s = NcclRendezvous.fromEnvironment(env("RANK", "1", "WORLD_SIZE", "2", "BATCHNORM4J_NCCL_ID_FILE", "f",
                "BATCHNORM4J_RUN_ID", "a", "TORCHELASTIC_RUN_ID", "b", "BATCHNORM4J_NCCL_TIMEOUT_SECONDS", "9"));
        assertEquals(1, s.localRank(), "LOCAL_RANK defaults to RANK");
        assertEquals("a", s.runId(), "our variable wins");
        assertEquals(Duration.ofSeconds(9), s.timeout());
    }

    @Test
    void badSettingsNameTheVariable() {
        assertEquals("WORLD_SIZE: expected an integer in [1, 2147483647], got nothing (set it as torchrun does)",
                assertThrows(IllegalArgumentException.class, () -> NcclRendezvous.fromEnvironment(env("RANK", "0")))
                        .getMessage());
        assertEquals("RANK: expected an integer in [0, 1], got 2", assertThrows(IllegalArgumentException.class,
                () -> NcclRendezvous.fromEnvironment(env("RANK", "2", "WORLD_SIZE", "2"))).getMessage());
        assertEquals("RANK: expected an integer in [0, 1], got 'x'", assertThrows(IllegalArgumentException.class,
                () -> NcclRendezvous.fromEnvironment(env("RANK", "x", "WORLD_SIZE", "2"))).getMessage());
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> NcclRendezvous.fromEnvironment(env("RANK", "0", "WORLD_SIZE", "2"))).getMessage()
                .startsWith("BATCHNORM4J_NCCL_ID_FILE: expected the path of a file every rank can read"));
    }

    @Test
    void rankZerosIdReachesEveryRankThroughTheFileAndAStaleFileIsIgnored() throws Exception {
        Path file = dir.resolve("job.nccl-id");
        NcclUniqueId stale = new NcclUniqueId(new byte[128]);
        Files.writeString(file, "old-run " + stale + "\n");   // left over from an earlier run
        byte[] b = new byte[128];
        b[0] = 42;
        b[127] = 7;
        NcclUniqueId fresh = new NcclUniqueId(b);
        AtomicInteger created = new AtomicInteger();
        int k = 3;
        ExecutorService pool = Executors.newFixedThreadPool(k);
        try {
            List<Future<NcclUniqueId>> f = new ArrayList<>();
            for (int r = k - 1; r >= 0; r--) {   // the others start first and must wait for rank 0
                NcclRendezvous.Settings s = new NcclRendezvous.Settings(r, k, r, file, "new-run", Duration.ofSeconds(20));
                f.add(pool.submit(() -> {
                    if (s.rank() == 0) Thread.sleep(200);
                    return NcclRendezvous.exchangeId(s, () -> {
                        created.incrementAndGet();
                        return fresh;
                    });
                }));
            }
            for (Future<NcclUniqueId> x : f) assertEquals(fresh, x.get(30, TimeUnit.SECONDS));
        } finally {
            pool.shutdownNow();
        }
        assertEquals(1, created.get(), "only rank 0 creates the id");
        assertEquals("new-run " + fresh + "\n", Files.readString(file));
        try (var files = Files.list(dir)) {
            assertEquals(List.of(file), files.toList(), "no temporary file left behind");
        }
    }

    @Test
    void waitingRanksGiveUpAfterTheTimeoutWithWhatTheyRead() throws Exception {
        Path file = dir.resolve("id");
        Files.writeString(file, "other x\n");
        NcclRendezvous.Settings s = new NcclRendezvous.Settings(1, 2, 1, file, "", Duration.ofSeconds(1));
        CollectiveException e = assertThrows(CollectiveException.class, () -> NcclRendezvous.exchangeId(s, () -> {
            throw new AssertionError("only rank 0 creates");
        }));
        assertTrue(e.getMessage().startsWith("rank 1 of 2 waited PT1S for rank 0 to write the NCCL id of run '' to "),
                e.getMessage());
        assertTrue(e.getMessage().endsWith("(last read: 'other x')"), e.getMessage());
    }
}
