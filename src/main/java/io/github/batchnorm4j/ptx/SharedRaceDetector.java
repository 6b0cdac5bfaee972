package io.github.batchnorm4j.ptx;

/**
 * Detects shared-memory data races between barriers.
 *
 * <p><b>Between warps:</b> two threads of different warps touch the same byte in one barrier interval, at least one of
 * them with a plain write, or one with a plain access and the other with an atomic. Atomics against atomics never race.
 *
 * <p><b>Within a warp</b> (Volta and later schedule the lanes of a warp independently, so lockstep is not guaranteed):
 * <ul>
 * <li>a byte plainly written by lane A and later read, written or atomically updated by another lane B of the same warp
 * with no warp synchronization covering both lanes in between: a {@code bar.warp.sync} ({@code __syncwarp}), a
 * {@code shfl/vote/match .sync} whose member mask holds both lanes, or a block barrier (which starts a new interval).
 * Lane-local reuse (A == B) is fine. Read-then-write by another lane (a WAR hazard) is not checked.</li>
 * <li>two active lanes of one warp-level store instruction writing the same byte with <em>different</em> values (a
 * write-write conflict: which value lands is undefined). Equal values are accepted: compute-sanitizer racecheck
 * reports those only as warnings, and code storing a broadcast value from several lanes is common and benign.</li>
 * </ul>
 *
 * <p>Per byte it keeps the last plain writer, a reader (or {@link #MANY} readers from several warps) and an atomic
 * updater (or MANY), each stamped with the barrier epoch, so a new epoch forgets everything without clearing arrays;
 * the last write is also stamped with a clock that advances at every warp-level store instruction and every warp
 * synchronization. Each warp keeps a ring of its recent synchronizations (clock and member mask); only when a lane
 * meets another lane's write of its own warp is the ring searched for a synchronization after that write covering both
 * lanes, so correct code pays one extra array store per written byte.
 * After a method returns false, {@link #otherThread}, {@link #otherAccess} and {@link #sameWarp} describe the earlier
 * access.
 */
final class SharedRaceDetector {
    static final int MANY = -2;
    private static final int RING = 64;
    private final int[] wTid, wEp, wClk, rTid, rEp, aTid, aEp;
    private final int[] syncClk, syncMask, syncCount;
    private int epoch = 1, clock = 1;
    private int okWriter = -1, okReader = -1, okSince, okEpoch;
    /** The earlier access of the last conflict: its thread (or MANY) and what it did ("written", "read", ...). */
    int otherThread, conflictOffset;
    String otherAccess;
    /** Whether the last conflict is between lanes of one warp. */
    boolean sameWarp;
    /**
     * After {@link #write}: bytes of the access (bit j = byte off+j) that another lane of the same warp wrote in this
     * same store instruction, with the first such writer; the caller compares values (only differing ones race).
     */
    long sameInsnBytes;
    int sameInsnThread;

    SharedRaceDetector(int bytes, int warps) {
        wTid = new int[bytes];
        wEp = new int[bytes];
        wClk = new int[bytes];
        rTid = new int[bytes];
        rEp = new int[bytes];
        aTid = new int[bytes];
        aEp = new int[bytes];
        syncClk = new int[warps * RING];
        syncMask = new int[warps * RING];
        syncCount = new int[warps];
    }

    /** Starts a new barrier interval (block start or a completed barrier). */
    void newEpoch() {
        epoch++;
    }

    /** Block start: a new interval, and the warps' synchronization histories are forgotten. */
    void newBlock() {
        epoch++;
        clock = 1;
        okWriter = -1;
        java.util.Arrays.fill(syncCount, 0);
    }

    /** A warp-level store instruction begins (distinguishes its lanes' writes from earlier ones). */
    void beginStore() {
        clock++;
    }

    /** Warp {@code w}'s lanes in {@code mask} synchronized with each other (__syncwarp, shfl/vote/match .sync). */
    void warpSync(int w, int mask) {
        if (Integer.bitCount(mask) < 2) return;
        int c = ++clock;
        int k = syncCount[w]++;
        int slot = w * RING + (k & (RING - 1));
        syncClk[slot] = c;
        syncMask[slot] = mask;
    }

    /** Whether a synchronization of warp {@code w} after clock {@code since} covers both lanes. */
    private boolean synced(int w, int laneA, int laneB, int since) {
        int both = (1 << laneA) | (1 << laneB);
        int n = syncCount[w];
        int stop = Math.max(0, n - RING);
        for (int k = n - 1; k >= stop; k--) {
            int slot = w * RING + (k & (RING - 1));
            if (syncClk[slot] <= since) return false;
            if ((syncMask[slot] & both) == both) return true;
        }
        // history older than the ring: assume synchronized rather than report a race we cannot prove
        return n > RING;
    }

    private boolean otherWarp(int recorded, int t) {
        return recorded == MANY || (recorded >> 5) != (t >> 5);
    }

    private boolean conflict(int off, int tid, String what) {
        conflictOffset = off;
        otherThread = tid;
        otherAccess = what;
        sameWarp = false;
        return false;
    }

    /** A write of byte i by another lane of t's warp not ordered before t's access: a race. */
    private boolean intraWarpRace(int i, int wt, int t) {
        int since = wClk[i];
        // an ordered (writer, since, accessor) stays ordered: the bytes of one access, and repeated accesses, skip the scan
        if (wt == okWriter && t == okReader && since == okSince && epoch == okEpoch) return false;
        if (!synced(t >> 5, wt & 31, t & 31, since)) return true;
        okWriter = wt;
        okReader = t;
        okSince = since;
        okEpoch = epoch;
        return false;
    }

    private boolean warpConflict(int off, int tid) {
        conflictOffset = off;
        otherThread = tid;
        otherAccess = "written";
        sameWarp = true;
        return false;
    }

    /**
     * Whether a read or atomic of byte i by thread t is ordered after the last plain write of i in this epoch (always,
     * when t wrote it itself or nobody did); false, with the conflict recorded, otherwise.
     */
    private boolean orderedAfterWrite(int i, int t) {
        int wt = wTid[i];
        if (wEp[i] != epoch || wt == t) return true;
        if (otherWarp(wt, t)) return conflict(i, wt, "written");
        if (intraWarpRace(i, wt, t)) return warpConflict(i, wt);
        return true;
    }

    /** Records an access of byte i by t in (ep, tid): the thread, or MANY once threads of two warps accessed it. */
    private void record(int[] ep, int[] tid, int i, int t) {
        if (ep[i] != epoch) {
            ep[i] = epoch;
            tid[i] = t;
        } else if (otherWarp(tid[i], t)) {
            tid[i] = MANY;
        }
    }

    /** A plain read of [off, off+n) by block-linear thread t; false on a conflict. */
    boolean read(int t, int off, int n) {
        int ep = epoch;
        for (int i = off; i < off + n; i++) {
            if (!orderedAfterWrite(i, t)) return false;
            if (aEp[i] == ep && otherWarp(aTid[i], t)) return conflict(i, aTid[i], "atomically updated");
            record(rEp, rTid, i, t);
        }
        return true;
    }

    /** A plain write; false on a conflict. Sets {@link #sameInsnBytes} (see there). */
    boolean write(int t, int off, int n) {
        int ep = epoch, c = clock;
        long same = 0;
        for (int i = off; i < off + n; i++) {
            if (wEp[i] == ep) {
                int wt = wTid[i];
                if (wt != t) {
                    if (otherWarp(wt, t)) return conflict(i, wt, "written");
                    if (wClk[i] == c) {
                        if (same == 0) sameInsnThread = wt;
                        same |= 1L << (i - off);
                    } else if (intraWarpRace(i, wt, t)) {
                        return warpConflict(i, wt);
                    }
                }
            }
            if (rEp[i] == ep && otherWarp(rTid[i], t)) return conflict(i, rTid[i], "read");
            if (aEp[i] == ep && otherWarp(aTid[i], t)) return conflict(i, aTid[i], "atomically updated");
            wTid[i] = t;
            wEp[i] = ep;
            wClk[i] = c;
        }
        sameInsnBytes = same;
        return true;
    }

    /** An atomic read-modify-write; false on a conflict with a plain access of another warp or unordered lane. */
    boolean atomic(int t, int off, int n) {
        int ep = epoch;
        for (int i = off; i < off + n; i++) {
            if (!orderedAfterWrite(i, t)) return false;
            if (rEp[i] == ep && otherWarp(rTid[i], t)) return conflict(i, rTid[i], "read");
            record(aEp, aTid, i, t);
        }
        return true;
    }
}
