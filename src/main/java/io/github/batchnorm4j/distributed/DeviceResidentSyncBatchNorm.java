package io.github.batchnorm4j.distributed;

import io.github.batchnorm4j.ArgumentChecks;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.gpu.Device;
import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.gpu.DeviceResidentBatchNorm;
import io.github.batchnorm4j.gpu.DeviceStream;

/**
 * Synchronized (data-parallel) batch norm on device memory, for GPU training loops: {@link SyncBatchNormOps}' method
 * with the exchange on the device. One instance per rank, over that rank's {@link DeviceResidentBatchNorm} and its
 * member of the {@link Collective}.
 *
 * <p>Forward, training: the statistics kernel writes this rank's record (count; per channel center, mean − center,
 * M2: 2 + 3C floats), the collective all-gathers the records (NCCL: on the stream, no host round trip), and a merge
 * kernel on every rank combines them with Chan's formula in rank order and finishes exactly like the single-device
 * forward: saved mean and invstd, running statistics with the whole batch's M − 1, the coefficients of the apply
 * pass, which then normalizes this rank's slice. Backward: the reduction kernel writes (count, Σdy, Σdy·xhat)
 * (2 + 2C floats), the records are gathered, and a merge kernel adds them in rank order and prepares the dx pass with
 * the whole batch's M; dgamma and dbeta are the totals (the same on every rank). Every rank runs the same kernels on
 * the same gathered bits, so shared results are identical on every rank and every run.
 *
 * <p>Host work per call: two count floats copied to the device; no host synchronization, except when this rank's
 * slice has a single value per channel: then it reads the gathered counts back (a wait on the stream) to refuse a
 * whole batch of one value before anything is written (every rank takes that path then, so all refuse together).
 * Arguments are validated before the exchange; see {@link SyncBatchNormOps} for the rules every rank follows.
 *
 * <p>Owns only its two record buffers (grown to the largest channel count); not the batch norm or the collective.
 * Not thread-safe, like the {@link DeviceResidentBatchNorm} it drives.
 */
public final class DeviceResidentSyncBatchNorm implements AutoCloseable {
    private final DeviceResidentBatchNorm local;
    private final Collective collective;
    private final Device device;
    private DeviceBuffer send;
    private DeviceBuffer recv;
    private int channelCap;
    private boolean closed;

    public DeviceResidentSyncBatchNorm(DeviceResidentBatchNorm local, Collective collective) {
        if (local == null) throw new IllegalArgumentException("local must not be null");
        if (collective == null) throw new IllegalArgumentException("collective must not be null");
        this.local = local;
        this.collective = collective;
        this.device = local.device();
    }

    /** The local batch norm. */
    public DeviceResidentBatchNorm local() {
        return local;
    }

    /**
     * Training forward of this rank's slice with the statistics of the whole batch (see
     * {@link io.github.batchnorm4j.SplitBatchNormOps#forwardWithStatistics} for the outputs).
     *
     * @param stream the stream to queue on, or null for the device's default stream
     */
    public void forwardTraining(Shape shape, DevicePointer x, DevicePointer gamma, DevicePointer beta, double eps,
                                DevicePointer runningMean, DevicePointer runningVar, double momentum,
                                DevicePointer y, DevicePointer saveMean, DevicePointer saveInvstd,
                                DeviceStream stream) {
        DeviceStream s = begin(stream);
        local.checks().forwardTrainingPiece(shape, x, gamma, beta, eps, runningMean, runningVar, momentum, y,
                saveMean, saveInvstd);
        int floats = DeviceResidentBatchNorm.statisticsRecordFloats(shape.channels());
        ensure(shape.channels());
        local.statisticsRecord(shape, x, send.pointer(), s);
        collective.allGather(send.pointer(), recv.pointer(), floats, s);
        if (shape.reductionSize() < 2) checkMergedCount("statistics", floats, s);
        local.forwardWithRecords(shape, x, recv.pointer(), collective.worldSize(), gamma, beta, eps, runningMean,
                runningVar, momentum, y, saveMean, saveInvstd, s);
    }

    /**
     * Training backward of this rank's slice: dx from the sums of the whole batch; dgamma and dbeta (each optional)
     * receive the whole batch's sums, the same on every rank.
     *
     * @param stream the stream to queue on, or null for the device's default stream
     */
    public void backwardTraining(Shape shape, DevicePointer x, DevicePointer dy, DevicePointer gamma,
                                 DevicePointer saveMean, DevicePointer saveInvstd, DevicePointer dx,
                                 DevicePointer dgamma, DevicePointer dbeta, DeviceStream stream) {
        DeviceStream s = begin(stream);
        local.checks().backwardTrainingPiece(shape, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
        int floats = DeviceResidentBatchNorm.gradientRecordFloats(shape.channels());
        ensure(shape.channels());
        local.gradientRecord(shape, x, dy, saveMean, saveInvstd, send.pointer(), s);
        collective.allGather(send.pointer(), recv.pointer(), floats, s);
        if (shape.reductionSize() < 2) checkMergedCount("gradient sums", floats, s);
        local.backwardWithRecords(shape, x, dy, gamma, saveMean, saveInvstd, recv.pointer(), collective.worldSize(),
                dx, dgamma, dbeta, s);
    }

    /** Eval-mode forward: local (running statistics are the same on every rank). */
    public void forwardInference(Shape shape, DevicePointer x, DevicePointer gamma, DevicePointer beta,
                                 DevicePointer runningMean, DevicePointer runningVar, double eps, DevicePointer y,
                                 DeviceStream stream) {
        checkOpen();
        local.forwardInference(shape, x, gamma, beta, runningMean, runningVar, eps, y, stream);
    }

    /** Eval-mode backward: local (dgamma and dbeta of this rank's slice). */
    public void backwardInference(Shape shape, DevicePointer x, DevicePointer dy, DevicePointer gamma,
                                  DevicePointer runningMean, DevicePointer runningVar, double eps, DevicePointer dx,
                                  DevicePointer dgamma, DevicePointer dbeta, DeviceStream stream) {
        checkOpen();
        local.backwardInference(shape, x, dy, gamma, runningMean, runningVar, eps, dx, dgamma, dbeta, stream);
    }

    /** Frees the record buffers (not the batch norm, not the collective). Idempotent. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        freeRecords();
    }

    private DeviceStream begin(DeviceStream stream) {
        checkOpen();
        return stream != null ? stream : device.defaultStream();
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("DeviceResidentSyncBatchNorm is closed");
    }

    /** Record buffers for C channels: one record to send, worldSize records to receive (the larger record kind). */
    private void ensure(int channels) {
        if (send != null && channels <= channelCap) return;
        freeRecords();
        long floats = DeviceResidentBatchNorm.statisticsRecordFloats(channels);
        send = device.allocate(4 * floats);
        recv = device.allocate(4 * floats * collective.worldSize());
        channelCap = channels;
    }

    private void freeRecords() {
        if (send != null) send.close();
        if (recv != null) recv.close();
        send = recv = null;
        channelCap = 0;
    }

    /** Reads the gathered counts (waits for the stream) and refuses a whole batch of fewer than 2 values. */
    private void checkMergedCount(String what, int recordFloats, DeviceStream s) {
        long total = 0;
        float[] words = new float[2];
        for (int r = 0; r < collective.worldSize(); r++) {
            device.copyToHost(recv.at(4L * r * recordFloats), words, 0, 2, s);
            total += DeviceResidentBatchNorm.countOf(words[0], words[1]);
        }
        ArgumentChecks.mergedCount(what + " over all " + collective.worldSize() + " ranks", total);
    }
}
