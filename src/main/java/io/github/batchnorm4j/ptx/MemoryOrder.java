package io.github.batchnorm4j.ptx;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The memory-ordering check of one launch: a read of global bytes that another block of the same launch wrote must be
 * ordered after that write the way the PTX memory model orders it, and bytes read through the non-coherent path must
 * not be written in the same launch. Blocks run one at a time, so the emulator itself would always show the reader
 * the written value; this check reports the reads that a GPU, where blocks run concurrently and L1 caches are not
 * coherent, may serve stale.
 *
 * <p><b>The rule</b> (a simplification of the PTX ISA memory consistency model to the patterns CUDA code uses:
 * {@code __threadfence} and an atomic counter, or a release/acquire flag). A read by thread r of block B' of a 4-byte
 * word last stored in this launch by thread t of block B ≠ B' is ordered when
 * <ol>
 *   <li><i>release</i>: t executed a gpu- or sys-scope fence after the store ({@code membar.gl}, {@code membar.sys},
 *       {@code fence.sc/.acq_rel.gpu/.sys}, or a {@code .release} access), and after that fence a thread p of B performed
 *       a morally strong write P to some location A (an atomic, or {@code st.relaxed/.release/.volatile} at gpu scope):
 *       p = t in program order, or via a barrier of B that completed between t's fence and P;</li>
 *   <li><i>acquire</i>: a thread q of B' performed a morally strong read Q of A (an atomic, or
 *       {@code ld.relaxed/.acquire/.volatile} at gpu scope) after P, with no plain store to A in between (which would
 *       end P's release sequence); and r is ordered after Q by a gpu-scope fence: r = q with a fence after Q, or a
 *       barrier of B' after Q followed by a fence in r, or a fence in q after Q followed by a barrier;</li>
 *   <li><i>coherent load</i>: the read bypasses L1: {@code ld.global.cg}, {@code .cv}, {@code .volatile}, a morally
 *       strong {@code ld.relaxed/.acquire} at gpu scope, or an atomic.</li>
 * </ol>
 * A weak read of a word that another block updated with an atomic in this launch is reported as well (it may be served
 * from a stale L1 line). Whatever the order, a {@code ld.global.nc}/{@code ldu} of bytes stored in this launch, and a
 * store to bytes that this launch read through {@code ld.global.nc}, are errors: the non-coherent path requires data
 * that is read-only for the lifetime of the kernel ({@code const __restrict__} promises it).
 *
 * <p>Two blocks storing to the same word (stores of 4 bytes or more) are reported the same way unless the earlier
 * store is ordered before the later one by that chain (write-write conflict: on a GPU either may land last).
 *
 * <p><b>What it cannot see.</b> Accesses within one block (ordered by barriers at CTA scope, not checked here); a
 * write to bytes that another block read earlier in the launch (write-after-read); stores of less than 4 bytes are tracked per 4-byte word; named barriers with a thread count are treated as
 * if every thread of the block took part. Everything is reset at the end of the launch: the kernel boundary orders all
 * of a launch's accesses before the next launch on the same stream.
 *
 * <p>Cost: nothing for reads of memory no block of the launch wrote (one null test), one int store per word stored,
 * one bit per word read through .nc; the ordering itself is evaluated only for the rare cross-block reads.
 */
final class MemoryOrder {
    // Allocation.shadow holds, per 4-byte word written in this launch, e + 1 for store epoch e, or -(block + 1) for a
    // word last updated by an atomic of that block.
    private final Interpreter it;

    // Store epochs: the stores of one thread between two of its fences (one entry per thread and fence interval).
    private int epCount;
    private int[] epBlock = new int[1024], epThread = new int[1024], epFirstLine = new int[1024],
            epLastLine = new int[1024], epVerBlock = new int[1024], epVerThread = new int[1024];
    private long[] epFence = new long[1024];

    // The running block.
    private int block = -1;
    private int[] curEpoch;
    private long[] lastFence;
    private long lastBar = -1;
    private boolean blockFenced;
    private List<Acquire> acquires = new ArrayList<>();

    /** Logical time: every fence, barrier completion and strong access is one tick (blocks run one at a time). */
    private long now;
    private final Map<Long, SyncVar> sync = new HashMap<>();
    private final List<Allocation> touched = new ArrayList<>();
    /** The last atomic (block, thread, line) on each word of a region declared zero between launches. */
    private final Map<Long, int[]> lastAtomic = new HashMap<>();

    /** A location written by strong writes (atomics, release stores): the releases made to it, per block. */
    private static final class SyncVar {
        long lastBreak = -1;
        final Map<Integer, List<Release>> releases = new HashMap<>();
    }

    /** P: a strong write of block {@code block} by {@code thread} at {@code time}; {@code lastBar}: B's last barrier. */
    private record Release(long time, long lastBar, int thread, int line) {
    }

    /** Q: a strong read of {@code addr} by {@code thread} of the running block at {@code time}. */
    private static final class Acquire {
        final long addr, time, minTime;
        final int thread, line;
        long threadFence = -1, firstBarrier = -1;

        Acquire(long addr, long time, long minTime, int thread, int line) {
            this.addr = addr;
            this.time = time;
            this.minTime = minTime;
            this.thread = thread;
            this.line = line;
        }
    }

    MemoryOrder(Interpreter it, int nthreads) {
        this.it = it;
        this.curEpoch = new int[nthreads];
        this.lastFence = new long[nthreads];
    }

    // ------------------------------------------------------------------ block and thread events

    void newBlock(int linear) {
        block = linear;
        curEpoch = new int[curEpoch.length];   // fresh arrays: a suspended block of a cooperative launch keeps its own
        lastFence = new long[lastFence.length];
        Arrays.fill(curEpoch, -1);
        Arrays.fill(lastFence, -1);
        lastBar = -1;
        blockFenced = false;
        acquires = new ArrayList<>();
    }

    /** The running block's state, for a cooperative launch that interleaves blocks (time and epochs stay global). */
    private record BlockState(int block, int[] curEpoch, long[] lastFence, long lastBar, boolean blockFenced,
                              List<Acquire> acquires) {
    }

    /** Takes the running block's state out (see {@link #resumeBlock}). */
    Object suspendBlock() {
        return new BlockState(block, curEpoch, lastFence, lastBar, blockFenced, acquires);
    }

    /** Makes a block suspended by {@link #suspendBlock} the running block again. */
    void resumeBlock(Object state) {
        BlockState s = (BlockState) state;
        block = s.block;
        curEpoch = s.curEpoch;
        lastFence = s.lastFence;
        lastBar = s.lastBar;
        blockFenced = s.blockFenced;
        acquires = s.acquires;
    }

    /** A gpu-scope fence by the lanes of {@code mask} of warp {@code warp}. */
    void fence(int warp, int mask) {
        long f = ++now;
        for (int x = mask; x != 0; x &= x - 1) {
            int t = warp * 32 + Integer.numberOfTrailingZeros(x);
            fenceThread(t, f);
        }
    }

    private void fenceThread(int t, long f) {
        blockFenced = true;
        lastFence[t] = f;
        int e = curEpoch[t];
        if (e >= 0) {
            epFence[e] = f;
            curEpoch[t] = -1;
        }
        for (int i = 0; i < acquires.size(); i++) {
            Acquire a = acquires.get(i);
            if (a.thread == t && a.threadFence < 0) a.threadFence = f;
        }
    }

    /** A barrier of the running block completed. */
    void barrier() {
        long b = ++now;
        lastBar = b;
        for (int i = 0; i < acquires.size(); i++) {
            Acquire a = acquires.get(i);
            if (a.firstBarrier < 0) a.firstBarrier = b;
        }
    }

    // ------------------------------------------------------------------ accesses (per lane)

    /** A store of {@code n} bytes at {@code off} of {@code a} by thread {@code t}. */
    void store(Allocation a, int off, int n, int t, Insn in) {
        if ((in.order & Op.ORD_RELEASE) != 0) fenceThread(t, ++now);
        int e = curEpoch[t];
        if (e < 0) {
            e = newEpoch(t, in.line);
            curEpoch[t] = e;
        } else {
            if (in.line < epFirstLine[e]) epFirstLine[e] = in.line;
            if (in.line > epLastLine[e]) epLastLine[e] = in.line;
        }
        int[] sh = shadow(a);
        int w0 = off >>> 2, w1 = (off + n - 1) >>> 2;
        for (int w = w0; w <= w1; w++) {
            int v = sh[w];
            // Words are the unit: two blocks' 2-byte stores to the halves of one word are no conflict, so narrower
            // stores are not compared.
            if (v > 0 && v != e + 1 && n >= 4) checkOverwrite(a, w, v - 1, t, in);
            sh[w] = e + 1;
        }
        if (w0 < a.orderLo) a.orderLo = w0;
        if (w1 >= a.orderHi) a.orderHi = w1 + 1;
        if (a.ncRead != null) checkNcWritten(a, w0, w1, t, in);
        if (a.syncVars > 0) {
            SyncVar v = sync.get(a.base + off);
            if (v != null) v.lastBreak = ++now; // a plain or relaxed store ends every release sequence of the location
        }
        if ((in.order & Op.ORD_STRONG) != 0) release(a, off, t, in);
    }

    /**
     * A load of {@code n} bytes at {@code off} of {@code a} by thread {@code t}. A .nc load must also be passed to
     * {@link #markNc} (once per warp-level instruction, after its lanes).
     */
    void load(Allocation a, int off, int n, int t, Insn in) {
        int w0 = off >>> 2, w1 = (off + n - 1) >>> 2;
        boolean nc = (in.order & Op.ORD_NC) != 0;
        int[] sh = a.shadow;
        if (sh != null && w0 < a.orderHi && w1 >= a.orderLo) {
            for (int w = w0; w <= w1; w++) {
                int v = sh[w];
                if (v != 0) checkRead(a, w, v, t, in, nc, (in.order & Op.ORD_BYPASS) != 0);
            }
        }
        if ((in.order & Op.ORD_STRONG) != 0) {
            acquire(a.base + off, t, in);
            if ((in.order & Op.ORD_ACQUIRE) != 0) fenceThread(t, ++now);
        }
    }

    /** An atomic read-modify-write of {@code n} bytes at {@code off} of {@code a} by thread {@code t}. */
    void atomic(Allocation a, int off, int n, int t, Insn in) {
        int w0 = off >>> 2, w1 = (off + n - 1) >>> 2;
        int[] sh = a.shadow;
        if (sh != null && w0 < a.orderHi && w1 >= a.orderLo) {
            for (int w = w0; w <= w1; w++) {
                int v = sh[w];
                if (v > 0) checkRead(a, w, v, t, in, false, true);
            }
        }
        if (a.ncRead != null) checkNcWritten(a, w0, w1, t, in);
        if ((in.order & Op.ORD_STRONG) == 0) return; // a CTA-scoped atomic synchronizes nothing across blocks
        if ((in.order & Op.ORD_RELEASE) != 0) fenceThread(t, ++now);
        acquire(a.base + off, t, in);
        release(a, off, t, in);
        if ((in.order & Op.ORD_ACQUIRE) != 0) fenceThread(t, ++now);
        sh = shadow(a);
        for (int w = w0; w <= w1; w++) sh[w] = -(block + 1);
        if (a.zeroBetweenLaunches != null) lastAtomic.put(a.base + 4L * w0, new int[]{block, t, in.line});
        if (w0 < a.orderLo) a.orderLo = w0;
        if (w1 >= a.orderHi) a.orderHi = w1 + 1;
    }

    private void release(Allocation a, int off, int t, Insn in) {
        long time = ++now;
        if (!blockFenced) return; // nothing of this block was fenced yet: nothing to publish
        SyncVar v = sync.get(a.base + off);
        if (v == null) {
            v = new SyncVar();
            sync.put(a.base + off, v);
            a.syncVars++;
            touch(a);
        }
        v.releases.computeIfAbsent(block, k -> new ArrayList<>(1)).add(new Release(time, lastBar, t, in.line));
    }

    private void acquire(long addr, int t, Insn in) {
        long time = ++now;
        SyncVar v = sync.get(addr);
        if (v == null || v.releases.isEmpty()) return; // nothing to acquire (yet)
        // A spin-wait reads the same location again and again: a read by the same thread of the same location, with
        // no fence or barrier since the last one and the same release sequence, only moves that acquire later (it
        // sees every release the earlier one saw, and more), so it replaces it instead of growing the list.
        if (!acquires.isEmpty()) {
            Acquire last = acquires.get(acquires.size() - 1);
            if (last.addr == addr && last.thread == t && last.threadFence < 0 && last.firstBarrier < 0
                    && last.minTime == v.lastBreak) {
                acquires.set(acquires.size() - 1, new Acquire(addr, time, v.lastBreak, t, in.line));
                return;
            }
        }
        acquires.add(new Acquire(addr, time, v.lastBreak, t, in.line));
    }

    // ------------------------------------------------------------------ checks

    private void checkRead(Allocation a, int w, int v, int t, Insn in, boolean nc, boolean bypass) {
        if (v < 0) { // updated by an atomic
            int writer = -v - 1;
            if (nc) throw ncOfWritten(a, w, t, in, "updated atomically by block " + it.blockNameOf(writer));
            if (writer == block || bypass) return;
            throw it.fail(in, lane(t), "weak read of global address " + address(a, w) + ", which block "
                    + it.blockNameOf(writer) + " updated with an atomic in this launch: the load may be served from a"
                    + " stale L1 line (read it with an atomic, ld.volatile or ld.relaxed.gpu/ld.acquire.gpu)");
        }
        int e = v - 1;
        if (nc) throw ncOfWritten(a, w, t, in, writerName(e));
        if (epBlock[e] == block) return; // within one block: ordered by barriers at CTA scope, not checked here
        if (!bypass) {
            throw it.fail(in, lane(t), "read of global address " + address(a, w) + " that " + writerName(e)
                    + " in this launch, with a load that may be served from a stale L1 line: read data written by"
                    + " other blocks with ld.global.cg, .cv, .volatile or ld.relaxed/.acquire.gpu"
                    + blocks(e));
        }
        if (epVerBlock[e] == block && epVerThread[e] == t) return;
        String why = unordered(e, t);
        if (why != null) {
            throw it.fail(in, lane(t), "read of global address " + address(a, w) + " that " + writerName(e)
                    + " in this launch, not ordered after that store: " + why + blocks(e));
        }
        epVerBlock[e] = block;
        epVerThread[e] = t;
    }

    /**
     * A plain store over a word that another block stored to in this launch: unless the earlier store is ordered before
     * this one (the same release/acquire chain a read would need), the two may land in either order on a GPU, where
     * the blocks run concurrently. (A store over a word another block updated with an atomic is the counter-reset
     * pattern, ordered by the atomics' coherence, and not reported.)
     */
    private void checkOverwrite(Allocation a, int w, int e, int t, Insn in) {
        if (epBlock[e] == block) return; // within one block: ordered by barriers at CTA scope, not checked here
        if (epVerBlock[e] == block && epVerThread[e] == t) return;
        String why = unordered(e, t);
        if (why != null) {
            throw it.fail(in, lane(t), "store to global address " + address(a, w) + " that " + writerName(e)
                    + " in this launch, not ordered after that store (write-write conflict: on a GPU either store may"
                    + " land last): " + why + blocks(e));
        }
        epVerBlock[e] = block;
        epVerThread[e] = t;
    }

    /** Null when the read of epoch e's store by thread t of the running block is ordered; else the reason. */
    private String unordered(int e, int t) {
        long f = epFence[e];
        if (f < 0) {
            return "the writer executed no gpu-scope fence (membar.gl / fence.sc.gpu / fence.acq_rel.gpu, "
                    + "__threadfence()) after its store";
        }
        int wb = epBlock[e], wt = epThread[e];
        Acquire unfenced = null;
        for (Acquire q : acquires) {
            SyncVar v = sync.get(q.addr);
            List<Release> rs = v == null ? null : v.releases.get(wb);
            if (rs == null) continue;
            for (Release p : rs) {
                boolean published = p.time > q.minTime && p.time < q.time && (p.thread == wt ? f < p.time : f < p.lastBar);
                if (!published) continue;
                if (acquired(q, t)) return null;
                unfenced = q;
            }
        }
        if (unfenced != null) {
            return "this block's atomic at line " + unfenced.line + " synchronized with the writer's block, but this"
                    + " thread's load is not ordered after it by a gpu-scope fence (the atomic, a barrier and a fence,"
                    + " e.g. __syncthreads() then __threadfence(), must come before the load)";
        }
        return "no atomic (or release store) of the writer's block after its fence was observed by an atomic (or"
                + " acquire load) of this block before the load (the last-block pattern: fence, then atomic counter;"
                + " the reader's atomic, a barrier and a fence)";
    }

    private boolean acquired(Acquire q, int t) {
        long f = lastFence[t];
        if (t == q.thread && f > q.time) return true;
        if (q.firstBarrier >= 0 && f > q.firstBarrier) return true;
        return q.threadFence >= 0 && lastBar > q.threadFence;
    }

    /**
     * Records the words a warp-level .nc load of {@code n} bytes per lane read: {@code addrs[from..to)} (generic
     * addresses, all in {@code a}); {@code t} is its first thread. Neighbouring lanes' bits are gathered in a register, one
     * memory update per 64 words, since this runs for every streaming load of a restrict input.
     */
    void markNc(Allocation a, long[] addrs, int from, int to, int n, int t, Insn in) {
        long[] bits = a.ncRead;
        if (bits == null) {
            bits = new long[(int) ((a.size + 255) >>> 8)];
            a.ncRead = bits;
            a.ncLine = in.line;
            a.ncBlock = block;
            a.ncThread = t;
            touch(a);
        }
        long base = a.base;
        long first = addrs[from];
        boolean contiguous = (first & 3) == 0 && (n & 3) == 0;
        for (int i = from + 1; i < to && contiguous; i++) contiguous = addrs[i] == first + (long) (i - from) * n;
        if (contiguous) { // the coalesced case: one range of words
            setRange(bits, (int) ((first - base) >>> 2), (int) ((first - base + (long) (to - from) * n) >>> 2));
            return;
        }
        int idx = -1;
        long acc = 0;
        for (int i = from; i < to; i++) {
            long off = addrs[i] - base;
            int w1 = (int) ((off + n - 1) >>> 2);
            for (int w = (int) (off >>> 2); w <= w1; w++) {
                if (w >>> 6 != idx) {
                    if (idx >= 0) bits[idx] |= acc;
                    idx = w >>> 6;
                    acc = 0;
                }
                acc |= 1L << w;
            }
        }
        if (idx >= 0) bits[idx] |= acc;
    }

    private void checkNcWritten(Allocation a, int w0, int w1, int t, Insn in) {
        long[] bits = a.ncRead;
        for (int w = w0; w <= w1; w++) {
            if ((bits[w >>> 6] & (1L << w)) != 0) {
                throw it.fail(in, lane(t), "write to global address " + address(a, w) + ", which this launch read"
                        + " through the non-coherent path (ld.global.nc; first at line " + a.ncLine + " by block "
                        + it.blockNameOf(a.ncBlock) + " thread " + it.threadNameOf(a.ncThread) + "): data read with"
                        + " .nc must stay read-only for the whole kernel (an input declared const __restrict__ that"
                        + " aliases an output?)");
            }
        }
    }

    private RuntimeException ncOfWritten(Allocation a, int w, int t, Insn in, String writer) {
        return it.fail(in, lane(t), "ld.global.nc of global address " + address(a, w) + " that " + writer
                + " in this launch: the non-coherent path requires data that is read-only for the whole kernel"
                + " (an input declared const __restrict__ that aliases an output?)");
    }

    /** Sets bits [lo, hi) of {@code bits}. */
    private static void setRange(long[] bits, int lo, int hi) {
        int a = lo >>> 6, b = (hi - 1) >>> 6;
        long first = -1L << lo, last = -1L >>> -hi;   // shifts use the low 6 bits
        if (a == b) {
            bits[a] |= first & last;
            return;
        }
        bits[a] |= first;
        for (int i = a + 1; i < b; i++) bits[i] = -1L;
        bits[b] |= last;
    }

    // ------------------------------------------------------------------ end of launch

    /**
     * Verifies the regions declared zero between launches ({@link Allocation#zeroBetweenLaunches}) in the allocations
     * this launch updated.
     */
    void checkZeroRegions(String kernel) {
        for (Allocation a : touched) {
            if (a.zeroBetweenLaunches == null || a.shadow == null) continue;
            for (long[] r : a.zeroBetweenLaunches) {
                for (long off = r[0]; off < r[0] + r[1]; off += 4) {
                    int w = (int) (off >>> 2);
                    int value = (int) MemoryUnit.read(a.data, (int) off, 4);
                    if (value == 0) continue;
                    int v = a.shadow[w];
                    int[] at = lastAtomic.get(a.base + off);
                    String who = v == 0 ? "not written by this launch" : v > 0 ? "last " + writerName(v - 1)
                            : at == null ? "last updated atomically by block " + it.blockNameOf(-v - 1)
                            : "last updated by block " + it.blockNameOf(at[0]) + " thread " + it.threadNameOf(at[1])
                            + " with the atomic at line " + at[2];
                    throw new io.github.batchnorm4j.gpu.DeviceException("kernel " + kernel + " left " + value
                            + " in the word at global address " + address(a, w) + ", which must be zero after every"
                            + " launch (declared self-resetting, e.g. an arrival counter the last block resets); "
                            + who + " (grid " + it.gridDim() + ", block " + it.blockDim() + ")");
                }
            }
        }
    }

    /** Clears the per-launch state kept in allocations (always, also after an error). */
    void finish() {
        for (Allocation a : touched) {
            if (a.shadow != null && a.orderHi > a.orderLo) Arrays.fill(a.shadow, a.orderLo, a.orderHi, 0);
            a.orderLo = Integer.MAX_VALUE;
            a.orderHi = 0;
            a.ncRead = null;
            a.syncVars = 0;
            a.orderOwner = null;
        }
        touched.clear();
        sync.clear();
        lastAtomic.clear();
    }

    // ------------------------------------------------------------------ helpers

    private int[] shadow(Allocation a) {
        int[] sh = a.shadow;
        if (sh == null) {
            sh = new int[(int) ((a.size + 3) >>> 2)];
            a.shadow = sh;
        }
        touch(a);
        return sh;
    }

    private void touch(Allocation a) {
        if (a.orderOwner != this) {
            a.orderOwner = this;
            touched.add(a);
        }
    }

    private int newEpoch(int t, int line) {
        if (epCount == epBlock.length) {
            int n = epCount * 2;
            epBlock = Arrays.copyOf(epBlock, n);
            epThread = Arrays.copyOf(epThread, n);
            epFirstLine = Arrays.copyOf(epFirstLine, n);
            epLastLine = Arrays.copyOf(epLastLine, n);
            epVerBlock = Arrays.copyOf(epVerBlock, n);
            epVerThread = Arrays.copyOf(epVerThread, n);
            epFence = Arrays.copyOf(epFence, n);
        }
        int e = epCount++;
        epBlock[e] = block;
        epThread[e] = t;
        epFirstLine[e] = line;
        epLastLine[e] = line;
        epVerBlock[e] = -1;
        epFence[e] = -1;
        return e;
    }

    private String writerName(int e) {
        String lines = epFirstLine[e] == epLastLine[e] ? "line " + epFirstLine[e]
                : "lines " + epFirstLine[e] + "-" + epLastLine[e];
        return "block " + it.blockNameOf(epBlock[e]) + " thread " + it.threadNameOf(epThread[e]) + " stored (" + lines + ")";
    }

    private String blocks(int e) {
        return " [writer block " + it.blockNameOf(epBlock[e]) + ", reader block " + it.blockNameOf(block) + "]";
    }

    private static String address(Allocation a, int w) {
        long off = 4L * w;
        return "0x" + Long.toHexString(a.base + off) + " (byte " + off + " of " + a.label + ")";
    }

    private static int lane(int t) {
        return t & 31;
    }

}
