package io.github.batchnorm4j.nccl;

import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.global.nccl;
import org.bytedeco.cuda.nccl.ncclComm;
import org.bytedeco.cuda.nccl.ncclUniqueId;
import org.bytedeco.javacpp.Pointer;

import java.util.List;

/**
 * The real {@link NcclApi}: one call of JavaCPP's NCCL binding ({@code org.bytedeco:cuda}, class
 * {@code org.bytedeco.cuda.global.nccl}) per method, nothing else. Only a machine with libnccl.so.2, libcudart.so.12
 * and an NVIDIA driver runs this; review it line by line.
 *
 * <p>Addresses: JavaCPP passes a {@link Pointer}'s {@code address} to C unchanged, so a device address from JCuda
 * travels as a Pointer whose address is set to it ({@link Raw}). A stream: JCuda's CUstream holds the driver's
 * {@code struct CUstream_st*}; NCCL takes a {@code cudaStream_t}, which is the same type, so JavaCPP's
 * {@link CUstream_st} wrapping that address is the very stream JCuda created (0 = the legacy default stream). The
 * CUDA context: NCCL uses the runtime API, which runs in the thread's current context; CudaDevice works in the
 * device's primary context, which is the runtime's context for that device, so NCCL's memory and streams and ours are
 * the same objects once the caller has made the device current.
 *
 * <p>Loading: the first use of these classes loads {@code libjnicudart.so} (the preset inherits the CUDA runtime's:
 * it needs libcudart.so.12 and libcuda.so.1) and {@code libjninccl.so} (needs libnccl.so.2) from the natives jar; a
 * missing library is an {@link UnsatisfiedLinkError}, a missing jar a {@link NoClassDefFoundError}.
 */
final class JavaCppNcclApi implements NcclApi {
    /** Every NCCL function this class calls; NcclPairingTest checks each against the natives jar. */
    static final List<String> FUNCTIONS = List.of("ncclGetVersion", "ncclGetUniqueId", "ncclCommInitRank",
            "ncclAllGather", "ncclCommGetAsyncError", "ncclCommDestroy", "ncclCommAbort", "ncclGetErrorString");

    /** A JavaCPP pointer at a raw address (JavaCPP has no public constructor for one; its subclasses set it). */
    static final class Raw extends Pointer {
        Raw(long address) {
            this.address = address;
        }
    }

    @Override public int getVersion(int[] version) { return nccl.ncclGetVersion(version); }

    @Override
    public int getUniqueId(byte[] id) {
        ncclUniqueId u = new ncclUniqueId();
        int r = nccl.ncclGetUniqueId(u);
        for (int i = 0; i < UNIQUE_ID_BYTES; i++) id[i] = u.internal(i);
        return r;
    }

    @Override
    public int commInitRank(Object[] comm, int worldSize, byte[] id, int rank) {
        ncclUniqueId u = new ncclUniqueId();
        for (int i = 0; i < UNIQUE_ID_BYTES; i++) u.internal(i, id[i]);
        ncclComm c = new ncclComm();
        int r = nccl.ncclCommInitRank(c, worldSize, u, rank);
        comm[0] = c;
        return r;
    }

    @Override
    public int allGather(long sendAddress, long recvAddress, long count, DataType type, Object comm, long stream) {
        int t = type == DataType.FLOAT32 ? nccl.ncclFloat32 : nccl.ncclInt32;
        return nccl.ncclAllGather(new Raw(sendAddress), new Raw(recvAddress), count, t, (ncclComm) comm,
                new CUstream_st(new Raw(stream)));
    }

    @Override public int commGetAsyncError(Object comm, int[] error) { return nccl.ncclCommGetAsyncError((ncclComm) comm, error); }
    @Override public int commDestroy(Object comm) { return nccl.ncclCommDestroy((ncclComm) comm); }
    @Override public int commAbort(Object comm) { return nccl.ncclCommAbort((ncclComm) comm); }
    @Override public String getErrorString(int result) { return nccl.ncclGetErrorString(result).getString(); }
}
