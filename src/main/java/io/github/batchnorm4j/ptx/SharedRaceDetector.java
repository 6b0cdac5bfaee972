package io.github.batchnorm4j.ptx;

/**
 * Detects shared-memory data races between barriers: two threads of different warps touch the same byte in one barrier
 * interval, at least one of them with a plain write, or one with a plain access and the other with an atomic.
 * Atomics against atomics never race. Conflicts between lanes of one warp are not reported (the emulator runs a warp
 * in lockstep; nvcc's warp-synchronous code orders them with {@code __syncwarp}).
 *
 * <p>Per byte it keeps the last plain writer, a reader (or {@link #MANY} readers from several warps) and an atomic
 * updater (or MANY), each stamped with the barrier epoch, so a new epoch forgets everything without clearing arrays.
 * After a method returns false, {@link #otherThread} and {@link #otherAccess} describe the earlier access.
 */
final class SharedRaceDetector {
    static final int MANY = -2;
    private final int[] wTid, wEp, rTid, rEp, aTid, aEp;
    private int epoch = 1;
    /** The earlier access of the last conflict: its thread (or MANY) and what it did ("written", "read", ...). */
    int otherThread, conflictOffset;
    String otherAccess;

    SharedRaceDetector(int bytes) {
        wTid = new int[bytes];
        wEp = new int[bytes];
        rTid = new int[bytes];
        rEp = new int[bytes];
        aTid = new int[bytes];
        aEp = new int[bytes];
    }

    /** Starts a new barrier interval (block start or a completed barrier). */
    void newEpoch() {
        epoch++;
    }

    private boolean otherWarp(int recorded, int t) {
        return recorded == MANY || (recorded >> 5) != (t >> 5);
    }

    private boolean conflict(int off, int tid, String what) {
        conflictOffset = off;
        otherThread = tid;
        otherAccess = what;
        return false;
    }

    /** A plain read of [off, off+n) by block-linear thread t; false on a conflict. */
    boolean read(int t, int off, int n) {
        int ep = epoch;
        for (int i = off; i < off + n; i++) {
            if (wEp[i] == ep && otherWarp(wTid[i], t)) return conflict(i, wTid[i], "written");
            if (aEp[i] == ep && otherWarp(aTid[i], t)) return conflict(i, aTid[i], "atomically updated");
            if (rEp[i] != ep) {
                rEp[i] = ep;
                rTid[i] = t;
            } else if (otherWarp(rTid[i], t)) {
                rTid[i] = MANY;
            }
        }
        return true;
    }

    /** A plain write; false on a conflict. */
    boolean write(int t, int off, int n) {
        int ep = epoch;
        for (int i = off; i < off + n; i++) {
            if (wEp[i] == ep && otherWarp(wTid[i], t)) return conflict(i, wTid[i], "written");
            if (rEp[i] == ep && otherWarp(rTid[i], t)) return conflict(i, rTid[i], "read");
            if (aEp[i] == ep && otherWarp(aTid[i], t)) return conflict(i, aTid[i], "atomically updated");
            wTid[i] = t;
            wEp[i] = ep;
        }
        return true;
    }

    /** An atomic read-modify-write; false on a conflict with a plain access of another warp. */
    boolean atomic(int t, int off, int n) {
        int ep = epoch;
        for (int i = off; i < off + n; i++) {
            if (wEp[i] == ep && otherWarp(wTid[i], t)) return conflict(i, wTid[i], "written");
            if (rEp[i] == ep && otherWarp(rTid[i], t)) return conflict(i, rTid[i], "read");
            if (aEp[i] != ep) {
                aEp[i] = ep;
                aTid[i] = t;
            } else if (otherWarp(aTid[i], t)) {
                aTid[i] = MANY;
            }
        }
        return true;
    }
}
