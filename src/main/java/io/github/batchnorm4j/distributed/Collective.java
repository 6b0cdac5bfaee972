package io.github.batchnorm4j.distributed;

import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.gpu.DeviceStream;

/**
 * The one collective operation data-parallel batch norm needs: an <em>all-gather</em> of a small buffer among the
 * {@link #worldSize()} ranks of a group, each rank being one device (or one CPU backend) with its own slice of the
 * batch. Every rank receives every rank's buffer, in rank order; the merge that follows is done by each rank itself in
 * that fixed order, so every rank computes the same bits, run after run. (A floating-point all-reduce would let the
 * library choose the order of the additions: NCCL's ring and tree algorithms do, and they differ with the topology.)
 *
 * <p>Implementations: {@link InProcessCollective} for several ranks in one JVM (one thread per rank: several GPUs of
 * a machine, several emulated devices in tests, CPU backends), and {@code nccl.NcclCollective} for GPUs in several
 * processes and on several machines.
 *
 * <p>Rules, as for every collective library: every rank calls the same operations in the same order with the same
 * element counts; a call returns only when every rank has made it (or the group failed). A rank that throws before
 * calling leaves the others waiting: implementations fail them after a timeout or when the group is
 * {@link #close() closed} or aborted. One rank's methods are called from one thread at a time.
 */
public interface Collective extends AutoCloseable {

    /** This rank, in [0, worldSize). */
    int rank();

    /** The number of ranks in the group (≥ 1). */
    int worldSize();

    /**
     * Host all-gather: {@code recv[r·n .. (r+1)·n)} receives rank r's {@code send} (n = send.length, the same on every
     * rank), bit for bit. Blocks until every rank has contributed.
     *
     * @param recv output, worldSize·n doubles
     * @throws IllegalArgumentException when recv has the wrong length
     * @throws CollectiveException      when the ranks disagree on n, another rank failed or closed the group, or the
     *                                  implementation's timeout passed
     */
    void allGather(double[] send, double[] recv);

    /**
     * Device all-gather of {@code count} floats (as 32-bit words, copied bit for bit): {@code recv + r·count} receives
     * rank r's {@code send}, ordered on {@code stream} after the work queued before it (the caller's kernels that
     * wrote {@code send}), and before the work queued after it. May return before the data has arrived (NCCL queues it
     * on the stream); the in-process implementation completes it before returning.
     *
     * @param send  count floats on this rank's device
     * @param recv  worldSize·count floats on the same device; must not overlap send
     * @param count floats per rank (≥ 1)
     */
    void allGather(DevicePointer send, DevicePointer recv, int count, DeviceStream stream);

    /**
     * Leaves the group and releases this rank's resources. Ranks still waiting for this one fail (in-process) or
     * must be closed too (NCCL). Idempotent.
     */
    @Override
    void close();
}
