package io.github.batchnorm4j.distributed;

import io.github.batchnorm4j.gpu.Device;
import io.github.batchnorm4j.gpu.DeviceChecks;
import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.gpu.DeviceStream;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * A {@link Collective} for ranks that live in one JVM, one thread per rank: several GPUs of one machine, several
 * {@code EmulatedDevice}s (how CI tests data-parallel code), or CPU backends. Make the whole group at once with
 * {@link #group}, hand member r to the thread of rank r.
 *
 * <p>An all-gather is two barriers: every rank publishes its buffer and waits for the others; every rank copies all
 * buffers, in rank order, and waits until all have copied (so a buffer is never overwritten while another rank reads
 * it). Device buffers travel through the host: the send buffer is copied to the host (which waits for the work queued
 * on the stream before it), the gathered buffer back to the device on the same stream; the buffers of batch norm are
 * a few floats per channel, so this costs two small copies per call.
 *
 * <p>Failure: when the ranks pass buffers of different lengths, every rank throws the same
 * {@link CollectiveException} and the group stays usable. When a rank waits longer than the timeout, is interrupted,
 * or a member is {@link #close() closed}, the group is broken: every waiting rank fails at once with a
 * CollectiveException saying why, and every later call fails too (make a new group, as after an NCCL abort).
 */
public final class InProcessCollective implements Collective {
    /** How long a rank waits for the others by default. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofMinutes(10);

    private final Group group;
    private final int rank;
    private volatile boolean closed;

    private InProcessCollective(Group group, int rank) {
        this.group = group;
        this.rank = rank;
    }

    /** A group of {@code worldSize} members with {@link #DEFAULT_TIMEOUT}; member r is rank r. */
    public static List<Collective> group(int worldSize) {
        return group(worldSize, DEFAULT_TIMEOUT);
    }

    /**
     * A group of {@code worldSize} members; member r is rank r.
     *
     * @param timeout how long a rank waits for the others before it breaks the group (&gt; 0)
     */
    public static List<Collective> group(int worldSize, Duration timeout) {
        if (worldSize < 1) throw new IllegalArgumentException("worldSize: expected >= 1, got " + worldSize);
        if (timeout == null || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("timeout: expected a positive duration, got " + timeout);
        }
        Group g = new Group(worldSize, timeout);
        List<Collective> members = new ArrayList<>(worldSize);
        for (int r = 0; r < worldSize; r++) members.add(new InProcessCollective(g, r));
        return Collections.unmodifiableList(members);
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int worldSize() {
        return group.size;
    }

    @Override
    public void allGather(double[] send, double[] recv) {
        checkOpen();
        if (send == null) throw new IllegalArgumentException("send must not be null");
        if (recv == null) throw new IllegalArgumentException("recv must not be null");
        int n = send.length;
        // A wrong recv is this rank's own error: it still takes part, so that the others are not left waiting.
        String own = recv.length == (long) n * group.size ? null
                : "recv: expected worldSize·send.length = " + group.size + "·" + n + " doubles, got " + recv.length;
        exchange(send, n, own == null ? slots -> {
            for (int r = 0; r < slots.length; r++) System.arraycopy(slots[r], 0, recv, r * n, n);
        } : slots -> { });
        if (own != null) throw new IllegalArgumentException(own);
    }

    @Override
    public void allGather(DevicePointer send, DevicePointer recv, int count, DeviceStream stream) {
        checkOpen();
        if (send == null) throw new IllegalArgumentException("send must not be null");
        if (recv == null) throw new IllegalArgumentException("recv must not be null");
        if (stream == null) throw new IllegalArgumentException("stream must not be null");
        if (count < 1) throw new IllegalArgumentException("count: expected >= 1, got " + count);
        Device device = send.buffer().device();
        if (recv.buffer().device() != device) {
            throw new IllegalArgumentException("recv: expected a buffer of the send buffer's device '" + device.name()
                    + "', got one of '" + recv.buffer().device().name() + "'");
        }
        long total = (long) count * group.size;
        if (total > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("count: worldSize·count = " + total + " floats is more than one host array holds");
        }
        DeviceChecks.room("recv", recv, total, "(worldSize·count = " + group.size + "·" + count + ")");
        float[] mine = new float[count];
        device.copyToHost(send, mine, 0, count, stream);   // complete on return: waits for the kernels before it
        float[] all = new float[(int) total];
        exchange(mine, count, slots -> {
            for (int r = 0; r < slots.length; r++) System.arraycopy(slots[r], 0, all, r * count, count);
        });
        device.copyToDevice(all, 0, recv, all.length, stream);
    }

    /** Leaves the group: it is broken for every member (waiting ranks fail now, later calls fail). Idempotent. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        group.breakWith("rank " + rank + " closed the group");
    }

    // ---- the exchange ------------------------------------------------------------------------------------------

    /**
     * Publishes {@code payload} (an array of {@code length} elements), waits for every rank, hands the payloads in
     * rank order to {@code read}, and waits until every rank has read them.
     */
    private void exchange(Object payload, int length, Consumer<Object[]> read) {
        group.publish(rank, payload, length);
        await(group.arrived, "publishing its buffer");
        String mismatch = group.mismatch();
        if (mismatch == null) read.accept(group.payloads());
        await(group.left, "waiting for the others to read");
        if (mismatch != null) throw new CollectiveException("all-gather on rank " + rank + ": " + mismatch);
    }

    private void await(Group.Barrier barrier, String phase) {
        String reason = group.await(barrier, rank, phase);
        if (reason != null) throw brokenGroup(reason);
    }

    private CollectiveException brokenGroup(String reason) {
        return new CollectiveException("all-gather on rank " + rank + " of " + group.size + " failed: the group is"
                + " broken (" + reason + "); make a new group");
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("collective of rank " + rank + " is closed");
    }

    @Override
    public String toString() {
        return "InProcessCollective{rank=" + rank + ", worldSize=" + group.size + "}";
    }

    /** The state the members of one group share; one monitor guards it. */
    private static final class Group {
        final int size;
        final long timeoutNanos;
        final Object[] slots;
        final int[] lengths;
        final Barrier arrived = new Barrier();
        final Barrier left = new Barrier();
        private String broken;

        /** A reusable barrier: the generation advances each time all ranks have arrived. */
        static final class Barrier {
            int waiting;
            long generation;
        }

        Group(int size, Duration timeout) {
            this.size = size;
            this.timeoutNanos = timeout.toNanos();
            this.slots = new Object[size];
            this.lengths = new int[size];
        }

        /**
         * Waits until every rank has arrived at {@code b}; returns null when they have, else why the group broke
         * (then or earlier). A rank that times out or is interrupted breaks the group.
         */
        synchronized String await(Barrier b, int rank, String phase) {
            if (broken != null) return broken;
            long generation = b.generation;
            if (++b.waiting == size) {
                b.waiting = 0;
                b.generation++;
                notifyAll();
                return null;
            }
            long deadline = System.nanoTime() + timeoutNanos;
            while (b.generation == generation && broken == null) {
                long rest = deadline - System.nanoTime();
                if (rest <= 0) {
                    breakWith("rank " + rank + " waited " + Duration.ofNanos(timeoutNanos) + " for the other ranks ("
                            + phase + ")");
                    break;
                }
                try {
                    TimeUnit.NANOSECONDS.timedWait(this, rest);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    breakWith("rank " + rank + " was interrupted (" + phase + ")");
                }
            }
            return b.generation != generation ? null : broken;
        }

        /** The same description on every rank when the ranks passed different lengths, else null. */
        synchronized String mismatch() {
            for (int r = 1; r < size; r++) {
                if (lengths[r] != lengths[0] || slots[r].getClass() != slots[0].getClass()) {
                    StringBuilder b = new StringBuilder("the ranks passed different buffers (");
                    for (int q = 0; q < size; q++) {
                        b.append(q == 0 ? "" : ", ").append("rank ").append(q).append(": ").append(lengths[q])
                                .append(slots[q] instanceof double[] ? " doubles" : " floats");
                    }
                    return b.append("); every rank must gather the same number of elements").toString();
                }
            }
            return null;
        }

        synchronized void publish(int rank, Object payload, int length) {
            slots[rank] = payload;
            lengths[rank] = length;
        }

        synchronized Object[] payloads() {
            return slots.clone();
        }

        /** Breaks the group for good: records why (the first reason wins) and releases every waiting rank. */
        synchronized void breakWith(String reason) {
            if (broken == null) broken = reason;
            notifyAll();
        }
    }
}
