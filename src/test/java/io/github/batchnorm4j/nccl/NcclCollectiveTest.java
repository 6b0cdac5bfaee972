package io.github.batchnorm4j.nccl;

import io.github.batchnorm4j.cuda.CudaDevice;
import io.github.batchnorm4j.cuda.FakeCuda;
import io.github.batchnorm4j.distributed.CollectiveException;
import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DeviceStream;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The NCCL adapter behind the seam: NcclCollective over a fake NCCL and CudaDevices over the fake driver, one thread
 * per rank. Checks what reaches NCCL (raw addresses with offsets, the stream JCuda created, the device's context
 * current on the thread even after a foreign switch, the element type and count), the data path, staging for the host
 * all-gather, and error handling (NCCL's message, abort instead of destroy after a failure).
 */
class NcclCollectiveTest {
    private static final int K = 3;
    private final FakeCuda cuda = new FakeCuda(K);
    private final FakeNcclApi nccl = new FakeNcclApi(cuda);

    private static <T> List<T> ranks(int k, IntFunction<T> body) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(k);
        try {
            List<Future<T>> f = new ArrayList<>();
            for (int r = 0; r < k; r++) {
                int rank = r;
                f.add(pool.submit(() -> body.apply(rank)));
            }
            List<T> out = new ArrayList<>();
            for (Future<T> x : f) out.add(x.get(30, TimeUnit.SECONDS));
            return out;
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void deviceAllGatherPassesRawAddressesTheStreamAndTheDevicesContext() throws Exception {
        NcclUniqueId id = NcclCollective.createUniqueId(nccl);
        int n = 5;
        List<float[]> got = ranks(K, r -> {
            try (CudaDevice d = cuda.open(r);
                 NcclCollective c = NcclCollective.create(nccl, d, r, K, id);
                 DeviceBuffer send = d.allocate(256);
                 DeviceBuffer recv = d.allocate(1024);
                 DeviceStream s = d.createStream()) {
                float[] mine = new float[n];
                for (int i = 0; i < n; i++) mine[i] = 100 * r + i + 0.5f;
                mine[0] = Float.intBitsToFloat(0x7fc0_0000 + r);   // a NaN with a payload: bits must survive
                d.copyToDevice(mine, 0, send.at(16), n, s);
                cuda.foreignSetCurrent(0xBAD0_0000L);              // another library switched the context
                c.allGather(send.at(16), recv.at(32), n, s);
                synchronized (nccl) {
                    FakeNcclApi.Gather g = nccl.gathers.stream().filter(x -> x.rank() == r).findFirst().orElseThrow();
                    assertEquals(CudaDevice.rawStreamHandle(s), g.stream(), "the stream JCuda created");
                }
                float[] all = new float[n * K];
                d.copyToHost(recv.at(32), all, 0, all.length, s);
                return all;
            }
        });
        for (float[] all : got) {
            for (int q = 0; q < K; q++) {
                assertEquals(0x7fc0_0000 + q, Float.floatToRawIntBits(all[q * n]));
                for (int i = 1; i < n; i++) assertEquals(100 * q + i + 0.5f, all[q * n + i]);
            }
        }
        for (FakeNcclApi.Gather g : nccl.gathers) {
            assertEquals(FakeCuda.primaryContext(g.rank()), g.context(), "NCCL ran in the device's primary context");
            assertEquals(n, g.count());
            assertEquals(NcclApi.DataType.FLOAT32, g.type());
            assertTrue(g.stream() != 0, "a created stream, not the default one");
        }
        for (int r = 0; r < K; r++) assertEquals(FakeCuda.primaryContext(r), nccl.initContexts.get(r));
        assertEquals(K, nccl.count("ncclCommDestroy"));
        assertEquals(0, nccl.count("ncclCommAbort"));
    }

    @Test
    void hostAllGatherStagesDoublesBitForBit() throws Exception {
        NcclUniqueId id = NcclCollective.createUniqueId(nccl);
        List<double[]> got = ranks(K, r -> {
            try (CudaDevice d = cuda.open(r); NcclCollective c = NcclCollective.create(nccl, d, r, K, id)) {
                double[] recv = new double[3 * K];
                for (int round = 0; round < 2; round++) {
                    c.allGather(new double[] {r + round, -0.0, Double.longBitsToDouble(0x7ff8_0000_dead_0000L + r)},
                            recv);
                }
                return recv;
            }
        });
        for (double[] all : got) {
            for (int q = 0; q < K; q++) {
                assertEquals(q + 1.0, all[3 * q]);
                assertEquals(Double.doubleToRawLongBits(-0.0), Double.doubleToRawLongBits(all[3 * q + 1]));
                assertEquals(0x7ff8_0000_dead_0000L + q, Double.doubleToRawLongBits(all[3 * q + 2]));
            }
        }
        assertTrue(nccl.gathers.stream().allMatch(g -> g.type() == NcclApi.DataType.INT32 && g.count() == 6
                && g.stream() == 0), "two int32 words per double, on the default stream");
    }

    @Test
    void anNcclFailureNamesTheCallAndCloseAborts() {
        nccl.failures.put("ncclAllGather", 5);
        NcclUniqueId id = NcclCollective.createUniqueId(nccl);
        try (CudaDevice d = cuda.open(0); DeviceBuffer b = d.allocate(64)) {
            NcclCollective c = NcclCollective.create(nccl, d, 0, 1, id);
            CollectiveException e = assertThrows(CollectiveException.class,
                    () -> c.allGather(b.at(0), b.at(32), 2, d.defaultStream()));
            assertEquals("ncclAllGather(count=2, rank=0 of 1) failed: ncclInvalidUsage (fake NCCL error 5)",
                    e.getMessage());
            c.close();
            c.close();
            assertEquals(1, nccl.count("ncclCommAbort"));
            assertEquals(0, nccl.count("ncclCommDestroy"));
            assertThrows(IllegalStateException.class, () -> c.allGather(new double[1], new double[1]));
        }
        nccl.failures.put("ncclCommInitRank", 2);
        try (CudaDevice d = cuda.open(0)) {
            CollectiveException e = assertThrows(CollectiveException.class,
                    () -> NcclCollective.create(nccl, d, 0, 1, id));
            assertTrue(e.getMessage().startsWith("ncclCommInitRank(rank=0, worldSize=1, device=0) failed: ncclSystemError"),
                    e.getMessage());
        }
    }

    @Test
    void badArgumentsAreRefusedBeforeNccl() {
        NcclUniqueId id = NcclCollective.createUniqueId(nccl);
        try (CudaDevice d0 = cuda.open(0); CudaDevice d1 = cuda.open(1);
             DeviceBuffer a = d0.allocate(64); DeviceBuffer other = d1.allocate(64);
             NcclCollective c = NcclCollective.create(nccl, d0, 0, 1, id)) {
            DeviceStream s = d0.defaultStream();
            assertThrows(IllegalArgumentException.class, () -> c.allGather(a.at(0), other.at(0), 2, s));
            assertThrows(IllegalArgumentException.class, () -> c.allGather(a.at(0), a.at(32), 2, d1.defaultStream()));
            assertThrows(IllegalArgumentException.class, () -> c.allGather(a.at(0), a.at(32), 0, s));
            IllegalArgumentException overlap = assertThrows(IllegalArgumentException.class,
                    () -> c.allGather(a.at(0), a.at(4), 2, s));
            assertEquals("send and recv overlap", overlap.getMessage());
            IllegalArgumentException room = assertThrows(IllegalArgumentException.class,
                    () -> c.allGather(a.at(0), a.at(56), 4, s));
            assertTrue(room.getMessage().startsWith("recv"), room.getMessage());
            assertThrows(IllegalArgumentException.class, () -> c.allGather(new double[2], new double[3]));
            assertEquals(0, nccl.count("ncclAllGather"));
        }
        try (CudaDevice d0 = cuda.open(0)) {
            assertThrows(IllegalArgumentException.class, () -> NcclCollective.create(nccl, d0, 2, 2, id));
            assertThrows(IllegalArgumentException.class, () -> NcclCollective.create(nccl, d0, 0, 0, id));
        }
    }

    @Test
    void uniqueIdsTravelAsHex() {
        NcclUniqueId id = NcclCollective.createUniqueId(nccl);
        assertEquals(256, id.toString().length());
        assertEquals(id, NcclUniqueId.parse("  " + id + "\n"));
        assertArrayEquals(id.bytes(), NcclUniqueId.parse(id.toString()).bytes());
        assertThrows(IllegalArgumentException.class, () -> NcclUniqueId.parse("abc"));
        assertThrows(IllegalArgumentException.class, () -> NcclUniqueId.parse("zz".repeat(128)));
        assertThrows(IllegalArgumentException.class, () -> new NcclUniqueId(new byte[127]));
        assertEquals("2.23.4", NcclCollective.versionString(22304));
        assertEquals("2.8.3", NcclCollective.versionString(2803));
    }
}
