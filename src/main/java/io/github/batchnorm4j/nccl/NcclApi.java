package io.github.batchnorm4j.nccl;

/**
 * The NCCL calls {@link NcclCollective} makes, one method per call, each returning the raw {@code ncclResult_t}. It
 * exists so that everything above NCCL (argument checks, staging, error mapping, the rendezvous, context handling)
 * is tested against a fake; the real implementation, {@link JavaCppNcclApi}, is one line per call and is what only a
 * GPU machine exercises. Device memory and streams are passed as raw addresses (the numbers behind a CUdeviceptr and a
 * CUstream), which is what every binding of NCCL hands to the C library.
 */
interface NcclApi {
    /** ncclResult_t success. */
    int SUCCESS = 0;
    /** Bytes of an ncclUniqueId. */
    int UNIQUE_ID_BYTES = 128;

    /** The element types {@link #allGather} moves (NCCL's ncclDataType_t; all-gather only copies them). */
    enum DataType { FLOAT32, INT32 }

    /** ncclGetVersion: e.g. 22304 for 2.23.4. */
    int getVersion(int[] version);

    /** ncclGetUniqueId into 128 bytes. */
    int getUniqueId(byte[] id);

    /**
     * ncclCommInitRank with the calling thread's current CUDA device (the caller makes it current); blocks until every
     * rank has joined.
     *
     * @param comm receives the communicator at index 0
     */
    int commInitRank(Object[] comm, int worldSize, byte[] id, int rank);

    /** ncclAllGather of {@code count} elements per rank, queued on {@code stream} (0 = the legacy default stream). */
    int allGather(long sendAddress, long recvAddress, long count, DataType type, Object comm, long stream);

    /** ncclCommGetAsyncError. */
    int commGetAsyncError(Object comm, int[] error);

    /** ncclCommDestroy (waits for the communicator's pending work). */
    int commDestroy(Object comm);

    /** ncclCommAbort (cancels pending work; for a failed communicator). */
    int commAbort(Object comm);

    /** ncclGetErrorString. */
    String getErrorString(int result);
}
