package io.github.batchnorm4j.distributed;

import io.github.batchnorm4j.BatchNorm;
import io.github.batchnorm4j.SplitBatchNormOps;

/**
 * The synchronized batch-norm layer: a {@link BatchNorm} (parameters, running statistics, train/eval) computing
 * through {@link SyncBatchNormOps}, one per rank. Every rank builds its layer with the same options; since the
 * statistics and gradients are merged in a fixed order, the layers' running statistics and gradients stay identical.
 * <pre>{@code
 * List<Collective> group = InProcessCollective.group(2);        // or an NcclCollective per process
 * // on the thread of rank r:
 * BatchNorm bn = SyncBatchNorm.create(BatchNorm.builder(64).momentum(0.1), cpu, group.get(r));
 * float[] y = bn.forward(shape, xSliceOfRankR);                // normalized with the whole batch's statistics
 * float[] dx = bn.backward(shape, xSliceOfRankR, dySliceOfRankR);
 * }</pre>
 * Device-resident training loops use {@code gpu.GpuSyncBatchNorm} instead.
 */
public final class SyncBatchNorm {
    private SyncBatchNorm() {
    }

    /** A layer over {@code numFeatures} channels with default options (PyTorch's), synchronized over the group. */
    public static BatchNorm create(int numFeatures, SplitBatchNormOps local, Collective collective) {
        return create(BatchNorm.builder(numFeatures), local, collective);
    }

    /** The layer {@code builder} describes, synchronized over the group. */
    public static BatchNorm create(BatchNorm.Builder builder, SplitBatchNormOps local, Collective collective) {
        if (builder == null) throw new IllegalArgumentException("builder must not be null");
        return builder.build(new SyncBatchNormOps(local, collective));
    }
}
