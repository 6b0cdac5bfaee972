package io.github.batchnorm4j.nccl;

import io.github.batchnorm4j.cuda.CudaDevice;
import io.github.batchnorm4j.distributed.Collective;
import io.github.batchnorm4j.distributed.CollectiveException;
import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DeviceChecks;
import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.gpu.DeviceStream;

/**
 * A {@link Collective} over NCCL: one rank per GPU, in one or several processes, on one or several machines (NCCL picks
 * NVLink, PCIe, shared memory, InfiniBand or TCP). Each rank opens its {@link CudaDevice}, obtains the group's
 * {@link NcclUniqueId} (rank 0 creates it; {@link NcclRendezvous} passes it through a file, as {@code torchrun}'s file
 * rendezvous does) and calls {@link #create}, which returns once every rank has joined.
 *
 * <p>The device all-gather is {@code ncclAllGather} of floats queued on the caller's stream: no host round trip, and
 * it returns before the data arrives; work queued after it on the stream sees the gathered buffer. All-gather only moves
 * bytes, so every rank receives every rank's record bit for bit, and the merge each rank then runs in rank order gives
 * the same bits everywhere (NCCL's all-reduce would add in an order that depends on the algorithm and topology). The
 * host all-gather stages through two device buffers on the device's default stream.
 *
 * <p>Contexts and streams: NCCL runs in the thread's current CUDA context; every call first makes the device's primary
 * context current ({@link CudaDevice#makeCurrent()}), which is the context the CUDA runtime (and so NCCL) uses for that
 * device, and passes the CUstream JCuda created as the {@code cudaStream_t} it is (see {@link JavaCppNcclApi}).
 *
 * <p>Needs the optional dependency {@code org.bytedeco:cuda} (with its {@code linux-x86_64} natives) and, at run time,
 * libnccl.so.2 and libcudart.so.12 (both in the CUDA 12 runtime Docker image). Not thread-safe: one thread per rank.
 * Errors are {@link CollectiveException}s naming the NCCL call and NCCL's message; after one, {@link #close()} aborts
 * the communicator instead of waiting for it.
 */
public final class NcclCollective implements Collective {
    private final NcclApi api;
    private final CudaDevice device;
    private final int rank;
    private final int worldSize;
    private final Object comm;
    private DeviceBuffer stageSend;
    private DeviceBuffer stageRecv;
    private boolean failed;
    private boolean closed;

    private NcclCollective(NcclApi api, CudaDevice device, int rank, int worldSize, Object comm) {
        this.api = api;
        this.device = device;
        this.rank = rank;
        this.worldSize = worldSize;
        this.comm = comm;
    }

    /**
     * Creates a new unique id for a group (in the process of rank 0, which must then join it).
     *
     * @throws CollectiveException when NCCL is unavailable or fails, with the reason
     */
    public static NcclUniqueId createUniqueId() {
        return createUniqueId(real());
    }

    static NcclUniqueId createUniqueId(NcclApi api) {
        byte[] id = new byte[NcclApi.UNIQUE_ID_BYTES];
        check(api, api.getUniqueId(id), "ncclGetUniqueId");
        return new NcclUniqueId(id);
    }

    /**
     * Joins the group {@code id} as {@code rank} of {@code worldSize} on {@code device}; returns when every rank has
     * joined.
     *
     * @throws IllegalArgumentException for a rank outside [0, worldSize) or worldSize &lt; 1
     * @throws CollectiveException      when NCCL is unavailable or the communicator cannot be created
     */
    public static NcclCollective create(CudaDevice device, int rank, int worldSize, NcclUniqueId id) {
        return create(real(), device, rank, worldSize, id);
    }

    static NcclCollective create(NcclApi api, CudaDevice device, int rank, int worldSize, NcclUniqueId id) {
        if (device == null) throw new IllegalArgumentException("device must not be null");
        if (id == null) throw new IllegalArgumentException("id must not be null");
        if (worldSize < 1) throw new IllegalArgumentException("worldSize: expected >= 1, got " + worldSize);
        if (rank < 0 || rank >= worldSize) {
            throw new IllegalArgumentException("rank: expected [0, " + worldSize + "), got " + rank);
        }
        device.makeCurrent();   // NCCL binds the communicator to the current device
        Object[] comm = new Object[1];
        check(api, api.commInitRank(comm, worldSize, id.bytes(), rank),
                "ncclCommInitRank(rank=" + rank + ", worldSize=" + worldSize + ", device=" + device.ordinal() + ")");
        return new NcclCollective(api, device, rank, worldSize, comm[0]);
    }

    /** NCCL's version, e.g. "2.23.4". */
    public static String version() {
        NcclApi api = real();
        int[] v = new int[1];
        check(api, api.getVersion(v), "ncclGetVersion");
        return versionString(v[0]);
    }

    /** NCCL encodes 2.23.4 as 22304 (and 2.8.3 as 2803 before 2.9). */
    static String versionString(int code) {
        if (code >= 20900) return code / 10000 + "." + code / 100 % 100 + "." + code % 100;
        return code / 1000 + "." + code / 100 % 10 + "." + code % 100;
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int worldSize() {
        return worldSize;
    }

    /** The device this rank runs on. */
    public CudaDevice device() {
        return device;
    }

    @Override
    public void allGather(DevicePointer send, DevicePointer recv, int count, DeviceStream stream) {
        checkOpen();
        if (send == null) throw new IllegalArgumentException("send must not be null");
        if (recv == null) throw new IllegalArgumentException("recv must not be null");
        if (stream == null) throw new IllegalArgumentException("stream must not be null");
        if (count < 1) throw new IllegalArgumentException("count: expected >= 1, got " + count);
        for (Object[] arg : new Object[][] {{"send", send.buffer().device()}, {"recv", recv.buffer().device()}}) {
            if (arg[1] != device) {
                throw new IllegalArgumentException(arg[0] + ": expected a buffer of this rank's device (CUDA device "
                        + device.ordinal() + "), got one of " + arg[1]);
            }
        }
        if (CudaDevice.of(stream) != device) {
            throw new IllegalArgumentException("stream: expected a stream of CUDA device " + device.ordinal());
        }
        long total = (long) count * worldSize;
        DeviceChecks.room("send", send, count, "(count)");
        DeviceChecks.room("recv", recv, total, "(worldSize·count = " + worldSize + "·" + count + ")");
        if (send.buffer() == recv.buffer() && send.byteOffset() < recv.byteOffset() + 4 * total
                && recv.byteOffset() < send.byteOffset() + 4L * count) {
            throw new IllegalArgumentException("send and recv overlap");
        }
        device.makeCurrent();
        gather(CudaDevice.rawAddress(send), CudaDevice.rawAddress(recv), count, NcclApi.DataType.FLOAT32,
                CudaDevice.rawStreamHandle(stream));
    }

    /** Stages through device buffers: each double as two 32-bit words, gathered as int32 (bits unchanged). */
    @Override
    public void allGather(double[] send, double[] recv) {
        checkOpen();
        if (send == null) throw new IllegalArgumentException("send must not be null");
        if (recv == null) throw new IllegalArgumentException("recv must not be null");
        int n = send.length;
        if (recv.length != (long) n * worldSize) {
            throw new IllegalArgumentException("recv: expected worldSize·send.length = " + worldSize + "·" + n
                    + " doubles, got " + recv.length);
        }
        if (n == 0) return;
        int[] words = new int[2 * n];
        for (int i = 0; i < n; i++) {
            long bits = Double.doubleToRawLongBits(send[i]);
            words[2 * i] = (int) bits;
            words[2 * i + 1] = (int) (bits >>> 32);
        }
        ensureStaging(4L * words.length, 4L * words.length * worldSize);
        DeviceStream s = device.defaultStream();
        device.copyToDevice(words, 0, stageSend.pointer(), words.length, s);
        device.makeCurrent();
        gather(CudaDevice.rawAddress(stageSend.pointer()), CudaDevice.rawAddress(stageRecv.pointer()), words.length,
                NcclApi.DataType.INT32, CudaDevice.rawStreamHandle(s));
        int[] all = new int[words.length * worldSize];
        device.copyToHost(stageRecv.pointer(), all, 0, all.length, s);   // waits for the gather
        for (int i = 0; i < recv.length; i++) {
            recv[i] = Double.longBitsToDouble((all[2 * i] & 0xFFFF_FFFFL) | ((long) all[2 * i + 1] << 32));
        }
    }

    private void gather(long send, long recv, long count, NcclApi.DataType type, long stream) {
        int r = api.allGather(send, recv, count, type, comm, stream);
        if (r != NcclApi.SUCCESS) {
            failed = true;
            check(api, r, "ncclAllGather(count=" + count + ", rank=" + rank + " of " + worldSize + ")");
        }
    }

    /**
     * Destroys the communicator (waits for its pending work), or aborts it after a failure; frees the staging
     * buffers. Idempotent. Every rank should close its member.
     */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        RuntimeException first = null;
        try {
            if (stageSend != null) stageSend.close();
            if (stageRecv != null) stageRecv.close();
        } catch (RuntimeException e) {
            first = e;
        }
        device.makeCurrent();
        int r = failed ? api.commAbort(comm) : api.commDestroy(comm);
        if (r != NcclApi.SUCCESS && first == null) {
            first = new CollectiveException((failed ? "ncclCommAbort" : "ncclCommDestroy") + " failed: "
                    + describe(api, r));
        }
        if (first != null) throw first;
    }

    private void ensureStaging(long sendBytes, long recvBytes) {
        if (stageSend == null || stageSend.bytes() < sendBytes) {
            if (stageSend != null) stageSend.close();
            stageSend = null;
            stageSend = device.allocate(sendBytes);
        }
        if (stageRecv == null || stageRecv.bytes() < recvBytes) {
            if (stageRecv != null) stageRecv.close();
            stageRecv = null;
            stageRecv = device.allocate(recvBytes);
        }
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("NCCL collective of rank " + rank + " is closed");
    }

    private static void check(NcclApi api, int result, String call) {
        if (result != NcclApi.SUCCESS) throw new CollectiveException(call + " failed: " + describe(api, result));
    }

    private static String describe(NcclApi api, int result) {
        String name = switch (result) {
            case 1 -> "ncclUnhandledCudaError";
            case 2 -> "ncclSystemError";
            case 3 -> "ncclInternalError";
            case 4 -> "ncclInvalidArgument";
            case 5 -> "ncclInvalidUsage";
            case 6 -> "ncclRemoteError";
            case 7 -> "ncclInProgress";
            default -> "ncclResult " + result;
        };
        String text;
        try {
            text = api.getErrorString(result);
        } catch (RuntimeException | LinkageError e) {
            text = null;
        }
        return text == null || text.isEmpty() ? name : name + " (" + text + ")";
    }

    /** The JavaCPP binding, or a CollectiveException saying what is missing. */
    private static NcclApi real() {
        try {
            JavaCppNcclApi api = new JavaCppNcclApi();
            int[] v = new int[1];
            api.getVersion(v);   // loads the natives now, so that a missing library is reported here
            return api;
        } catch (NoClassDefFoundError e) {
            throw new CollectiveException("NCCL is unavailable: the optional dependency org.bytedeco:cuda ("
                    + "JavaCPP's CUDA presets, with its linux-x86_64 natives) is not on the classpath (" + e + ")", e);
        } catch (UnsatisfiedLinkError e) {
            throw new CollectiveException("NCCL is unavailable: its native libraries do not load (libnccl.so.2, "
                    + "libcudart.so.12 and the NVIDIA driver are needed; the CUDA 12 runtime Docker image has them): "
                    + e.getMessage(), e);
        }
    }
}
