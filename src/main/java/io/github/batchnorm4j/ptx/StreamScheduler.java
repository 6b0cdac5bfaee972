package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.gpu.DeviceException;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * The streams of an {@link EmulatedDevice}: independent queues of operations, executed in a seeded interleaving, with
 * events, host synchronization and CUDA's legacy default stream; and the check that no buffer region is touched by
 * two streams without something ordering the two accesses.
 *
 * <p><b>Execution.</b> An operation on the default stream first runs everything queued on every stream, then runs at
 * once (the legacy NULL stream waits for all earlier work and all later work waits for it; running it before the call
 * returns is one schedule a GPU may pick). An operation on a created stream is queued; after each such call the
 * scheduler runs a random number of ready queue heads (possibly none), chosen by a {@link Random} seeded from the
 * device's options, so unsynchronized streams interleave differently from seed to seed but the same way for the same
 * seed and the same calls. Synchronizing a stream, an event or the device runs ready heads in the same random way until
 * what is waited for is done. A queued wait on an event is ready once the operations the event captured have run.
 *
 * <p><b>Errors.</b> An operation of a created stream that fails marks its stream failed: what was queued behind it is
 * dropped, events recorded behind it fail (and so do streams waiting on them), and the failure is thrown by the next
 * call that waits for the stream (its synchronize, an event or device synchronize, a copy to the host, any operation on
 * the default stream) and, as "failed earlier", by every later call on that stream: a failed stream stays unusable,
 * like a GPU context after a kernel fault. Failures of the default stream's operations are thrown by the call itself.
 *
 * <p><b>The cross-stream check</b> (with {@link EmulatorOptions#orderCheck()}). Every stream, the host and every
 * event capture carry a vector clock; an operation's clock is its stream's clock when it was queued, joined with what
 * it waits for (events, the host's synchronizations, the default stream). Each operation on a created stream records
 * its footprint (per buffer, the byte range it read and the range it wrote: exact for copies and memset, the bounding
 * range of the addresses a kernel touched for launches). When it runs, its ranges are compared with those of the
 * operations of other streams not ordered before or after it: a write and any other access to a common byte is an
 * error naming both streams, both operations and the region. The history is dropped whenever everything in it is
 * ordered before everything that can follow (device synchronize, default-stream operations) and pruned when the host
 * synchronizes with a stream.
 */
final class StreamScheduler {
    /** Work of a queued operation; writes what it touched into {@code footprint} (null when not tracked). */
    interface Work {
        void run(Footprint footprint);
    }

    /** The buffer ranges an operation touched: per allocation one read and one write bounding range. */
    static final class Footprint {
        final Map<Allocation, long[]> ranges = new HashMap<>();   // {readLo, readHi, writeLo, writeHi}

        void add(Allocation a, long lo, long hi, boolean write) {
            long[] r = ranges.computeIfAbsent(a, k -> new long[]{Long.MAX_VALUE, Long.MIN_VALUE, Long.MAX_VALUE,
                    Long.MIN_VALUE});
            int k = write ? 2 : 0;
            if (lo < r[k]) r[k] = lo;
            if (hi > r[k + 1]) r[k + 1] = hi;
        }
    }

    /** A capture of a stream by an event record: its clock, and whether the captured work ran (or failed). */
    static final class Token {
        final Queue stream;
        int[] clock;
        boolean done;
        DeviceException failure;

        Token(Queue stream, int[] clock) {
            this.stream = stream;
            this.clock = clock;
        }
    }

    private static final int WORK = 0, RECORD = 1, WAIT = 2;

    private static final class Op {
        final int kind;
        final String what;
        final Work work;
        final Token token;
        int[] clock;

        Op(int kind, String what, Work work, Token token) {
            this.kind = kind;
            this.what = what;
            this.work = work;
            this.token = token;
        }
    }

    /** A stream's queue: id 0 is the default stream. */
    static final class Queue {
        final int id;
        final ArrayDeque<Op> ops = new ArrayDeque<>();
        int[] clock;
        DeviceException failure;
        boolean reported;

        Queue(int id, int[] clock) {
            this.id = id;
            this.clock = clock;
        }

        String name() {
            return id == 0 ? "the default stream" : "stream #" + id;
        }
    }

    /** One recorded access of an operation of a created stream. */
    private record Access(Queue stream, String what, int[] clock, long lo, long hi, boolean write) {
    }

    private final boolean check;
    private final Random random;
    private final List<Queue> queues = new ArrayList<>();
    private final Queue defaultQueue;
    private int[] host = new int[1];
    private final Map<Allocation, List<Access>> history = new HashMap<>();
    /** Accesses kept per allocation before the oldest are dropped (a bound on memory; races with those go unseen). */
    private static final int HISTORY_LIMIT = 512;

    StreamScheduler(boolean check, long seed) {
        this.check = check;
        this.random = new Random(seed * 0x9E3779B97F4A7C15L + 0x5DEECE66DL);
        this.defaultQueue = new Queue(0, new int[1]);
        queues.add(defaultQueue);
    }

    Queue defaultQueue() {
        return defaultQueue;
    }

    Queue newQueue() {
        Queue q = new Queue(queues.size(), new int[queues.size() + 1]);
        queues.add(q);
        return q;
    }

    // ------------------------------------------------------------------ queueing

    /**
     * Queues {@code work} on {@code q} (runs it now on the default stream). {@code fixed} is the footprint of a copy
     * or memset, known in advance; null for a launch, whose footprint is recorded while it runs.
     */
    void submit(Queue q, String what, Work work, Footprint fixed) {
        if (q == defaultQueue) {
            drainAll();
            throwUnreported();
            tick(q, everything());
            runDefault(what, work);
            return;
        }
        usable(q);
        Op op = new Op(WORK, what, fixed == null ? work : fp -> {
            work.run(null);
            if (fp != null) fp.ranges.putAll(fixed.ranges);
        }, null);
        enqueue(q, op);
        progress();
    }

    /** Records an event on {@code q}: returns the token later waits wait for. */
    Token record(Queue q) {
        if (q == defaultQueue) {
            drainAll();
            throwUnreported();
            tick(q, everything());
            Token t = new Token(q, q.clock.clone());
            t.done = true;
            return t;
        }
        usable(q);
        Token t = new Token(q, null);
        Op op = new Op(RECORD, "event record", null, t);
        enqueue(q, op);
        return t;
    }

    /** Makes later work on {@code q} wait for {@code t} (null: an event never recorded, nothing to wait for). */
    void waitFor(Queue q, Token t) {
        if (t == null) return;
        if (q == defaultQueue) {
            syncToken(t);
            return;
        }
        usable(q);
        if (t.failure != null) fail(q, new DeviceException(q.name() + " waits for an event recorded after a failed"
                + " operation of " + t.stream.name() + ": " + t.failure.getMessage()));
        usable(q);
        q.clock = join(q.clock, t.clock);
        if (!t.done) q.ops.add(new Op(WAIT, "event wait", null, t));
    }

    // ------------------------------------------------------------------ synchronization

    /** Runs until {@code q} is empty; throws its failure. */
    void syncQueue(Queue q) {
        if (q == defaultQueue) {
            drainAll();
            throwUnreported();
            return;
        }
        while (!q.ops.isEmpty() && q.failure == null) step();
        usable(q);
        host = join(host, q.clock);
        prune();
    }

    /** Runs until the work {@code t} captured is done; throws if it failed. */
    void syncToken(Token t) {
        while (!t.done && t.failure == null) step();
        if (t.failure != null) {
            throw new DeviceException("an event recorded on " + t.stream.name() + " after a failed operation: "
                    + t.failure.getMessage(), t.failure);
        }
        host = join(host, t.clock);
        prune();
    }

    /** Runs everything; throws the first failure no call has reported yet. */
    void syncAll() {
        drainAll();
        throwUnreported();
        host = join(host, everything());
        history.clear();
    }

    /** Runs everything queued, without throwing the failures (they stay on their streams). */
    void drainAll() {
        while (true) {
            boolean pending = false;
            for (Queue q : queues) pending |= !q.ops.isEmpty();
            if (!pending) return;
            step();
        }
    }

    /** The failure of any stream not yet thrown to a caller, marked reported; null if none. */
    DeviceException takeUnreported() {
        for (Queue q : queues) {
            if (q.failure != null && !q.reported) {
                q.reported = true;
                return q.failure;
            }
        }
        return null;
    }

    // ------------------------------------------------------------------ internals

    private void throwUnreported() {
        DeviceException e = takeUnreported();
        if (e != null) throw e;
    }

    /** Throws if {@code q} failed: its first failure once as itself, afterwards as "failed earlier". */
    private void usable(Queue q) {
        if (q.failure == null) return;
        if (!q.reported) {
            q.reported = true;
            throw q.failure;
        }
        throw new DeviceException(q.name() + " failed earlier and cannot be used: " + q.failure.getMessage(), q.failure);
    }

    private void enqueue(Queue q, Op op) {
        tick(q, join(host, defaultQueue.clock));
        op.clock = q.clock.clone();
        if (op.kind == RECORD) op.token.clock = op.clock;
        q.ops.add(op);
    }

    /** Advances q's clock past {@code joined} and by one own tick. */
    private void tick(Queue q, int[] joined) {
        q.clock = join(q.clock, joined);
        if (q.clock.length <= q.id) q.clock = Arrays.copyOf(q.clock, q.id + 1);
        q.clock[q.id]++;
    }

    private int[] everything() {
        int[] all = host;
        for (Queue q : queues) all = join(all, q.clock);
        return all;
    }

    /** After queueing on a created stream: run a random number (often 0) of ready operations. */
    private void progress() {
        while (random.nextInt(3) == 0) {
            if (!step()) return;
        }
    }

    /** Runs the head of one randomly chosen ready queue; false if nothing is ready. */
    private boolean step() {
        List<Queue> ready = new ArrayList<>(2);
        for (Queue q : queues) {
            Op head = q.ops.peek();
            if (head == null) continue;
            if (head.kind == WAIT && head.token.failure != null) {
                fail(q, new DeviceException(q.name() + " waits for an event recorded after a failed operation of "
                        + head.token.stream.name() + ": " + head.token.failure.getMessage(), head.token.failure));
                return true;
            }
            if (head.kind != WAIT || head.token.done) ready.add(q);
        }
        if (ready.isEmpty()) {
            for (Queue q : queues) if (!q.ops.isEmpty()) throw new IllegalStateException("internal: streams deadlocked");
            return false;
        }
        Queue q = ready.get(ready.size() == 1 ? 0 : random.nextInt(ready.size()));
        Op op = q.ops.poll();
        if (op.kind == RECORD) {
            op.token.done = true;
        } else if (op.kind == WORK) {
            Footprint fp = check ? new Footprint() : null;
            try {
                op.work.run(fp);
            } catch (DeviceException e) {
                fail(q, new DeviceException(op.what + " on " + q.name() + " failed: " + e.getMessage(), e));
                return true;
            } catch (RuntimeException e) {
                fail(q, new DeviceException(op.what + " on " + q.name() + " failed: " + e, e));
                return true;
            }
            if (fp != null) {
                DeviceException race = race(q, op, fp);
                if (race != null) fail(q, race);
            }
        }
        return true;
    }

    private void runDefault(String what, Work work) {
        work.run(null);
        history.clear();   // everything so far is ordered before everything that follows
    }

    private void fail(Queue q, DeviceException e) {
        if (q.failure != null) return;
        q.failure = e;
        for (Op op : q.ops) {
            if (op.kind == RECORD) op.token.failure = e;
        }
        q.ops.clear();
    }

    /** Compares the footprint of {@code op} (just run on {@code q}) with unordered accesses of other streams. */
    private DeviceException race(Queue q, Op op, Footprint fp) {
        DeviceException found = null;
        for (Map.Entry<Allocation, long[]> e : fp.ranges.entrySet()) {
            Allocation a = e.getKey();
            long[] r = e.getValue();
            List<Access> h = history.computeIfAbsent(a, k -> new ArrayList<>());
            for (int k = 0; k < 2 && found == null; k++) {
                long lo = r[2 * k], hi = r[2 * k + 1];
                if (lo >= hi) continue;
                boolean write = k == 1;
                for (Access x : h) {
                    if (x.stream == q || !(write || x.write) || x.hi <= lo || hi <= x.lo) continue;
                    if (before(x.clock, x.stream.id, op.clock) || before(op.clock, q.id, x.clock)) continue;
                    long from = Math.max(lo, x.lo), to = Math.min(hi, x.hi);
                    found = new DeviceException("streams race on " + a.label + " bytes [" + from + ", " + to + "): "
                            + x.what + " on " + x.stream.name() + " " + (x.write ? "writes" : "reads") + " them and "
                            + op.what + " on " + q.name() + " " + (write ? "writes" : "reads") + " them, with nothing"
                            + " ordering the two (record an event on one stream and make the other wait for it,"
                            + " synchronize in between, or use one stream)");
                    break;
                }
            }
            for (int k = 0; k < 2; k++) {
                if (r[2 * k] < r[2 * k + 1]) h.add(new Access(q, op.what, op.clock, r[2 * k], r[2 * k + 1], k == 1));
            }
            if (h.size() > HISTORY_LIMIT) h.subList(0, h.size() - HISTORY_LIMIT).clear();
        }
        return found;
    }

    /** Whether the operation with clock {@code a} of stream {@code s} happens before one with clock {@code b}. */
    private static boolean before(int[] a, int s, int[] b) {
        return s < b.length && a[s] <= b[s];
    }

    /**
     * Drops accesses ordered before everything the host can queue from now on, when nothing is queued (work queued
     * before the synchronization may still be unordered with them).
     */
    private void prune() {
        for (Queue q : queues) if (!q.ops.isEmpty()) return;
        for (Iterator<List<Access>> it = history.values().iterator(); it.hasNext(); ) {
            List<Access> h = it.next();
            h.removeIf(x -> before(x.clock, x.stream.id, host));
            if (h.isEmpty()) it.remove();
        }
    }

    static int[] join(int[] a, int[] b) {
        int[] r = Arrays.copyOf(a, Math.max(a.length, b.length));
        for (int i = 0; i < b.length; i++) if (b[i] > r[i]) r[i] = b[i];
        return r;
    }
}
