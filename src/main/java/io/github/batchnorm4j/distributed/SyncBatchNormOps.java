package io.github.batchnorm4j.distributed;

import io.github.batchnorm4j.ArgumentChecks;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.ChannelStatistics;
import io.github.batchnorm4j.GradientSums;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.SplitBatchNormOps;

import static io.github.batchnorm4j.ArgumentChecks.HOST;

/**
 * Synchronized (data-parallel) batch norm on host arrays: each rank passes its own slice of the batch, and training
 * mode normalizes every slice with the statistics of the whole batch, as if one device held it all (PyTorch's
 * {@code SyncBatchNorm}). As a {@link BatchNormOps} it plugs into the {@link io.github.batchnorm4j.BatchNorm} layer:
 * <pre>{@code
 * BatchNorm bn = BatchNorm.builder(64).build(new SyncBatchNormOps(cpu, collective));   // one per rank
 * }</pre>
 *
 * <p><b>Forward, training.</b> Each rank computes its slice's per-channel (count, mean, M2) with the local backend,
 * all-gathers them through the {@link Collective} (2C + 1 doubles per rank), and merges them with Chan's formula in
 * rank order, in double. Every rank thus holds the same merged statistics, bit for bit, and normalizes its slice with
 * them: the variance is M2/M and the running variance M2/(M − 1) with M the count of the whole batch, so ranks with
 * unequal slices weigh by their counts (PyTorch once used the per-rank counts wrongly there, pytorch#22192). The
 * variance is carried as M2, never rebuilt from 1/invstd² − eps. M = 1 is refused only when the whole batch has one
 * value per channel; a rank may hold a single row.
 *
 * <p><b>Backward, training.</b> Each rank computes (count, Σdy, Σdy·xhat) of its slice with the shared mean and
 * invstd, all-gathers them, adds them in rank order, and computes its dx from the totals. dgamma and dbeta are the
 * totals, i.e. the gradient of the whole batch, the same on every rank (they need no further reduction).
 *
 * <p><b>Eval mode</b> ({@link #forwardInference}, {@link #backwardInference}) and {@link #normalize} are local: running
 * statistics are the same on every rank, so there is nothing to exchange.
 *
 * <p><b>Determinism.</b> The gathered records are bitwise the same on every rank and the merge order is fixed, so y,
 * dx, dgamma, dbeta and the running statistics are identical on every rank and from run to run, for any thread or
 * message timing.
 *
 * <p>Arguments are validated locally before anything is exchanged; a rank whose call throws before the exchange
 * leaves the other ranks waiting in the collective (which fails them after its timeout, or when it is closed). A
 * failing call changes no state on the rank that throws. Every rank must call the same operations in the same order
 * with the same channel count. Does not own the backend or the collective. One thread per rank.
 */
public final class SyncBatchNormOps implements BatchNormOps {
    private final SplitBatchNormOps local;
    private final Collective collective;

    /**
     * @param local      this rank's backend (CPU, or our kernels on this rank's device)
     * @param collective this rank's member of the group
     */
    public SyncBatchNormOps(SplitBatchNormOps local, Collective collective) {
        if (local == null) throw new IllegalArgumentException("local must not be null");
        if (collective == null) throw new IllegalArgumentException("collective must not be null");
        this.local = local;
        this.collective = collective;
    }

    /** "sync-" followed by the local backend's name, e.g. "sync-cpu". */
    @Override
    public String name() {
        return "sync-" + local.name();
    }

    /** The local backend. */
    public SplitBatchNormOps local() {
        return local;
    }

    /** The collective. */
    public Collective collective() {
        return collective;
    }

    /** The statistics of the whole batch (every rank's slice merged in rank order); the same on every rank. */
    @Override
    public ChannelStatistics statistics(Shape shape, float[] x) {
        return gatherStatistics(local.statistics(shape, x));
    }

    @Override
    public void forwardTraining(Shape shape, float[] x, float[] gamma, float[] beta, double eps,
                                float[] runningMean, float[] runningVar, double momentum,
                                float[] y, float[] saveMean, float[] saveInvstd) {
        HOST.forwardTrainingPiece(shape, x, gamma, beta, eps, runningMean, runningVar, momentum, y, saveMean,
                saveInvstd);
        distinct("y", y, "x", x);
        ChannelStatistics all = gatherStatistics(local.statistics(shape, x));
        ArgumentChecks.mergedCount("statistics over all " + collective.worldSize() + " ranks", all.count());
        local.forwardWithStatistics(shape, x, all, gamma, beta, eps, runningMean, runningVar, momentum, y, saveMean,
                saveInvstd);
    }

    @Override
    public void forwardInference(Shape shape, float[] x, float[] gamma, float[] beta, float[] runningMean,
                                 float[] runningVar, double eps, float[] y) {
        local.forwardInference(shape, x, gamma, beta, runningMean, runningVar, eps, y);
    }

    @Override
    public void normalize(Shape shape, float[] x, float[] gamma, float[] beta, float[] mean, float[] invstd,
                          float[] y) {
        local.normalize(shape, x, gamma, beta, mean, invstd, y);
    }

    /** dx of this rank's slice; dgamma and dbeta of the whole batch (the same on every rank). */
    @Override
    public void backwardTraining(Shape shape, float[] x, float[] dy, float[] gamma, float[] saveMean,
                                 float[] saveInvstd, float[] dx, float[] dgamma, float[] dbeta) {
        HOST.backwardTrainingPiece(shape, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
        distinct("dx", dx, "x", x);
        distinct("dx", dx, "dy", dy);
        GradientSums all = gatherSums(local.gradientSums(shape, x, dy, saveMean, saveInvstd));
        ArgumentChecks.mergedCount("gradient sums over all " + collective.worldSize() + " ranks", all.count());
        local.backwardWithSums(shape, x, dy, gamma, saveMean, saveInvstd, all, dx);
        for (int c = 0; c < all.channels(); c++) {
            if (dgamma != null) dgamma[c] = (float) all.sumDyXhat(c);
            if (dbeta != null) dbeta[c] = (float) all.sumDy(c);
        }
    }

    @Override
    public void backwardInference(Shape shape, float[] x, float[] dy, float[] gamma, float[] runningMean,
                                  float[] runningVar, double eps, float[] dx, float[] dgamma, float[] dbeta) {
        local.backwardInference(shape, x, dy, gamma, runningMean, runningVar, eps, dx, dgamma, dbeta);
    }

    /** Closes nothing: the backend and the collective belong to the caller. */
    @Override
    public void close() {
    }

    // ---- the exchange: one record per rank, merged in rank order ---------------------------------------------

    /** Gathers every rank's (count, mean[C], M2[C]) and merges them with Chan's formula in rank order. */
    ChannelStatistics gatherStatistics(ChannelStatistics mine) {
        int c = mine.channels();
        double[] record = new double[1 + 2 * c];
        record[0] = mine.count();
        System.arraycopy(mine.means(), 0, record, 1, c);
        System.arraycopy(mine.m2s(), 0, record, 1 + c, c);
        double[] all = gather(record);
        ChannelStatistics merged = ChannelStatistics.empty(c);
        for (int r = 0; r < collective.worldSize(); r++) {
            int o = r * record.length;
            double[] mean = new double[c];
            double[] m2 = new double[c];
            System.arraycopy(all, o + 1, mean, 0, c);
            System.arraycopy(all, o + 1 + c, m2, 0, c);
            merged = merged.merge(new ChannelStatistics((long) all[o], mean, m2));
        }
        return merged;
    }

    /** Gathers every rank's (count, Σdy[C], Σdy·xhat[C]) and adds them in rank order. */
    GradientSums gatherSums(GradientSums mine) {
        int c = mine.channels();
        double[] record = new double[1 + 2 * c];
        record[0] = mine.count();
        System.arraycopy(mine.sumDys(), 0, record, 1, c);
        System.arraycopy(mine.sumDyXhats(), 0, record, 1 + c, c);
        double[] all = gather(record);
        GradientSums total = GradientSums.empty(c);
        for (int r = 0; r < collective.worldSize(); r++) {
            int o = r * record.length;
            double[] a = new double[c];
            double[] b = new double[c];
            System.arraycopy(all, o + 1, a, 0, c);
            System.arraycopy(all, o + 1 + c, b, 0, c);
            total = total.add(new GradientSums((long) all[o], a, b));
        }
        return total;
    }

    /** The local backend refuses in-place calls too, but only after the exchange: refuse them before it. */
    private static void distinct(String outName, float[] out, String inName, float[] in) {
        if (out == in) {
            throw new IllegalArgumentException(outName + " must not be the same array as " + inName
                    + " (in-place operation is not supported)");
        }
    }

    private double[] gather(double[] record) {
        double[] all = new double[record.length * collective.worldSize()];
        collective.allGather(record, all);
        return all;
    }
}
