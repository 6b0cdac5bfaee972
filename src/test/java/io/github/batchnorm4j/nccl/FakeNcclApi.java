package io.github.batchnorm4j.nccl;

import io.github.batchnorm4j.cuda.FakeCuda;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BrokenBarrierException;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * NCCL without GPUs, for the ranks of one test (one thread each) over one {@link FakeCuda}: ncclCommInitRank joins
 * the group of its unique id (and waits for all ranks, as NCCL does); ncclAllGather copies every rank's bytes, found by
 * raw device address in the fake driver's memory, into every rank's receive buffer. Each call records the rank, the
 * stream handle and the CUDA context current on the calling thread, so a test can check what the adapter passed.
 */
final class FakeNcclApi implements NcclApi {
    private final FakeCuda cuda;
    private final Map<String, Group> groups = new HashMap<>();
    final List<String> calls = new ArrayList<>();
    final Map<String, Integer> failures = new HashMap<>();
    int idCounter;

    /** One recorded ncclAllGather. */
    record Gather(int rank, long count, DataType type, long stream, long context) {
    }

    final List<Gather> gathers = new ArrayList<>();
    /** The context current at each ncclCommInitRank, by rank. */
    final Map<Integer, Long> initContexts = new HashMap<>();

    FakeNcclApi(FakeCuda cuda) {
        this.cuda = cuda;
    }

    record Comm(Group group, int rank) {
    }

    static final class Group {
        final int size;
        final CyclicBarrier arrived;
        final CyclicBarrier left;
        final long[] send;

        Group(int size) {
            this.size = size;
            arrived = new CyclicBarrier(size);
            left = new CyclicBarrier(size);
            send = new long[size];
        }
    }

    private synchronized int call(String name) {
        calls.add(name);
        return failures.getOrDefault(name, SUCCESS);
    }

    synchronized long count(String name) {
        return calls.stream().filter(name::equals).count();
    }

    @Override public int getVersion(int[] version) {
        version[0] = 22304;
        return call("ncclGetVersion");
    }

    @Override public int getUniqueId(byte[] id) {
        int r = call("ncclGetUniqueId");
        synchronized (this) {
            Arrays.fill(id, (byte) 0);
            id[0] = (byte) ++idCounter;
            id[127] = (byte) 0x5A;
        }
        return r;
    }

    @Override public int commInitRank(Object[] comm, int worldSize, byte[] id, int rank) {
        int r = call("ncclCommInitRank");
        if (r != SUCCESS) return r;
        Group g;
        synchronized (this) {
            initContexts.put(rank, cuda.currentContext());
            g = groups.computeIfAbsent(Arrays.toString(id), k -> new Group(worldSize));
        }
        if (g.size != worldSize) return 4;   // ncclInvalidArgument
        comm[0] = new Comm(g, rank);
        return await(g.arrived);
    }

    @Override public int allGather(long sendAddress, long recvAddress, long count, DataType type, Object comm, long stream) {
        int r = call("ncclAllGather");
        Comm c = (Comm) comm;
        synchronized (this) {
            gathers.add(new Gather(c.rank(), count, type, stream, cuda.currentContext()));
        }
        if (r != SUCCESS) return r;
        Group g = c.group();
        g.send[c.rank()] = sendAddress;
        int a = await(g.arrived);
        if (a != SUCCESS) return a;
        long bytes = 4 * count;
        for (int q = 0; q < g.size; q++) {
            ByteBuffer from = cuda.at(g.send[q], bytes);
            ByteBuffer to = cuda.at(recvAddress + q * bytes, bytes);
            for (long i = 0; i < bytes; i++) to.put(from.get());
        }
        return await(g.left);
    }

    private static int await(CyclicBarrier b) {
        try {
            b.await(20, TimeUnit.SECONDS);
            return SUCCESS;
        } catch (InterruptedException | BrokenBarrierException | TimeoutException e) {
            return 6;   // ncclRemoteError
        }
    }

    @Override public int commGetAsyncError(Object comm, int[] error) {
        error[0] = SUCCESS;
        return call("ncclCommGetAsyncError");
    }

    @Override public int commDestroy(Object comm) { return call("ncclCommDestroy"); }
    @Override public int commAbort(Object comm) { return call("ncclCommAbort"); }
    @Override public String getErrorString(int result) { return "fake NCCL error " + result; }
}
