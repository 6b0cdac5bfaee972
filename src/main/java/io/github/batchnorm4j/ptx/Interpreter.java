package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.gpu.DeviceException;
import io.github.batchnorm4j.gpu.Dim3;
import io.github.batchnorm4j.gpu.TrafficMetrics;

import java.util.Arrays;
import java.util.Random;

/**
 * Runs one kernel launch: a grid of blocks, each a set of warps of 32 lanes, interpreted one warp at a time.
 *
 * <p><b>SIMT model.</b> Each lane has its own pc. A warp repeatedly executes the instruction at the lowest pc among its
 * runnable lanes, for all lanes at that pc (min-pc scheduling). Structured code reconverges by itself: lanes that took
 * a forward branch wait until the others catch up; shfl/vote therefore see converged lanes. Registers live in one
 * {@code long[]} per warp indexed {@code reg * 32 + lane}.
 *
 * <p><b>Blocks and barriers.</b> Blocks run one at a time, in a seeded shuffled order. Within a block, a warp runs until
 * all its lanes wait at a barrier or have exited; when every warp is stopped, complete barriers are released, and if
 * none can complete the launch fails with a barrier-divergence/deadlock error instead of hanging.
 *
 * <p><b>Cooperative launches.</b> Every block of a cooperative grid is resident at once on a GPU, so its blocks may wait
 * for each other (a grid-wide barrier spinning on a counter). Here the blocks of such a launch are interleaved: each
 * runs for a slice of {@link #COOPERATIVE_SLICE} thread-instructions (a warp is preempted at a backward branch once
 * the slice is spent), is suspended with its registers, shared memory and barrier state, and the next block in the
 * shuffled order runs; round after round until every block has exited. A spin-wait therefore sees the other blocks'
 * progress, and a barrier that can never complete still ends as a hang report ({@code maxBlockInstructions}). Limits
 * of the interleaving: the shared-memory race check starts a new interval when a block resumes (a race spanning a
 * preemption point is not seen), and slices are long, so only coarse interleavings are explored.
 *
 * <p><b>Memory.</b> Generic addresses as described in {@link GlobalMemory}; shared memory is filled with 0xFF bytes at
 * the start of each block (reads before writes see NaN/-1 rather than a stale or zero value).
 */
final class Interpreter {

    private final PtxFunction fn;
    private final Insn[] code;
    private final EmulatorOptions opt;
    private final boolean raceCheck, syncCheck;
    private final Dim3 grid, block;
    private final int nthreads, nwarps;
    private final int sharedBytes, dynamicShared;
    private final byte[] shared;
    private final int localBytes;
    private final byte[] local;
    private final long[][] regs;
    /** Cooperative launch: blocks are interleaved in slices (see the class comment). */
    private final boolean cooperative;
    /** Thread-instructions a block of a cooperative launch runs before the next block's turn. */
    static final long COOPERATIVE_SLICE = 1 << 16;
    /** Preemption point of the running block (cooperative launches); never reached otherwise. */
    private long sliceEnd = Long.MAX_VALUE;
    /**
     * Cooperative launches: the running warp made a strong global load (ld.volatile, ld.relaxed/.acquire.gpu) since its
     * last backward branch. A loop around such a load is a spin-wait on other blocks: the block yields its slice at the
     * loop's backward branch, so that a waiting block polls once per round of the others instead of for a whole slice
     * (on a GPU the other blocks run meanwhile; here each extra poll would be counted as global traffic).
     */
    private boolean polled;
    /** The branch of the last spin-wait yield in this slice (null: the slice ended otherwise). */
    private Insn yieldedAt;
    private int yieldedLane;
    private final byte[] callParams;
    private final int callParamBytes;
    private final int[][][] retStack;
    private final int[][] callDepth;
    private static final int MAX_CALL_DEPTH = 32;
    private final int[][] lanePc;
    private final int[] active, waiting;
    private final int[][] barId;
    private final boolean[][] barPred;
    private final int[] barArrived = new int[16];
    private final int[] barExpected = new int[16];
    private final SharedRaceDetector races;
    private int blockLinear, cx, cy, cz;
    /** The running block's thread-instructions before this slice: its budget spans its slices. */
    /** The warp being executed (messages name its threads). */
    int curWarp;
    private long blockStartInsns;
    // group state written by regroup()
    private int gMask, gPc, gNext;
    // metrics
    long threadInsns;
    private final MemoryUnit mem;
    /** The memory-ordering check, or null when it is off. */
    private final MemoryOrder ordering;
    private final long[] shflSrc = new long[32];
    /**
     * Coverage of this launch, indexed by pc: threads that reached an instruction, and threads that had its guard true
     * (counted for guarded instructions only; null when coverage is off).
     */
    private final long[] covThreads, covTaken;

    Interpreter(PtxFunction fn, GlobalMemory gmem, EmulatorOptions opt, Dim3 grid, Dim3 block, int dynamicShared,
                byte[] params, boolean coverage, StreamScheduler.Footprint footprint) {
        this(fn, gmem, opt, grid, block, dynamicShared, params, coverage, footprint, false);
    }

    /** @param cooperative interleave the blocks (a cooperative launch, whose blocks may wait for each other) */
    Interpreter(PtxFunction fn, GlobalMemory gmem, EmulatorOptions opt, Dim3 grid, Dim3 block, int dynamicShared,
                byte[] params, boolean coverage, StreamScheduler.Footprint footprint, boolean cooperative) {
        this.fn = fn;
        this.cooperative = cooperative;
        this.code = fn.code;
        this.opt = opt;
        this.raceCheck = opt.raceCheck();
        this.syncCheck = opt.syncCheck();
        this.grid = grid;
        this.block = block;
        this.nthreads = (int) block.volume();
        this.nwarps = (nthreads + 31) / 32;
        this.dynamicShared = dynamicShared;
        this.sharedBytes = dynamicShared > 0 ? fn.dynamicSharedOffset + dynamicShared : fn.staticSharedBytes;
        this.shared = new byte[Math.max(sharedBytes, 1)];
        this.localBytes = fn.localBytes;
        this.local = new byte[Math.max(1, localBytes * nthreads)];
        this.callParamBytes = fn.callParamBytes;
        this.callParams = new byte[Math.max(1, callParamBytes * nthreads)];
        this.retStack = callParamBytes > 0 || fn.hasCalls() ? new int[(nthreads + 31) / 32][32][MAX_CALL_DEPTH] : null;
        this.callDepth = new int[(nthreads + 31) / 32][32];
        int stride = fn.numRegs * 32;
        regs = new long[nwarps][];
        lanePc = new int[nwarps][32];
        barId = new int[nwarps][32];
        barPred = new boolean[nwarps][32];
        active = new int[nwarps];
        waiting = new int[nwarps];
        for (int w = 0; w < nwarps; w++) regs[w] = newRegs();
        races = raceCheck ? new SharedRaceDetector(shared.length, nwarps) : null;
        ordering = opt.orderCheck() ? new MemoryOrder(this, nthreads) : null;
        mem = new MemoryUnit(this, gmem, opt, params, shared, sharedBytes, local, localBytes, callParams,
                callParamBytes, races, ordering, footprint);
        covThreads = coverage ? new long[code.length] : null;
        covTaken = coverage ? new long[code.length] : null;
    }

    /** A warp's register file with the function's constant registers set. */
    private long[] newRegs() {
        long[] r = new long[fn.numRegs * 32];
        for (int i = 0; i < fn.constants.length; i++) {
            Arrays.fill(r, fn.constRegs[i] * 32, fn.constRegs[i] * 32 + 32, fn.constants[i]);
        }
        return r;
    }

    /** Adds this launch's per-instruction counts to {@code c} (the launch must have been created with coverage). */
    void addCoverageTo(Coverage c) {
        c.add(fn, covThreads, covTaken);
    }

    TrafficMetrics metrics() {
        return new TrafficMetrics(1, threadInsns, mem.gLoaded, mem.gStored, mem.requested, mem.sectorBytes, mem.atomics);
    }

    /** Runs every block of the grid. */
    void run() {
        int nblocks = (int) grid.volume();
        int[] order = new int[nblocks];
        for (int i = 0; i < nblocks; i++) order[i] = i;
        if (opt.shuffleBlocks()) {
            Random rnd = new Random(opt.blockOrderSeed());
            for (int i = nblocks - 1; i > 0; i--) {
                int j = rnd.nextInt(i + 1);
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
        }
        try {
            if (cooperative) runInterleaved(order);
            else for (int b : order) runBlock(b);
            if (ordering != null) ordering.checkZeroRegions(fn.name + " (module " + fn.moduleName + ")");
        } finally {
            if (ordering != null) ordering.finish();
        }
    }

    private void runBlock(int linear) {
        startBlock(linear);
        runSlice(Long.MAX_VALUE);
    }

    /** A suspended block of a cooperative launch: everything that is per block. */
    private static final class Suspended {
        int linear, cx, cy, cz;
        long executed;
        long[][] regs;
        int[][] lanePc, barId, callDepth;
        boolean[][] barPred;
        int[][][] retStack;
        int[] active, waiting, barArrived, barExpected;
        byte[] shared, local, callParams;
        Object order;
    }

    /**
     * The blocks of a cooperative launch, interleaved: in the shuffled order, each runs one slice and is suspended,
     * until every block has exited.
     */
    private void runInterleaved(int[] order) {
        Suspended[] state = new Suspended[order.length];
        boolean[] done = new boolean[order.length];
        int left = order.length;
        while (left > 0) {
            // A round in which every block only spun (each yielded at a spin-wait) and nothing was stored can never
            // end: every block waits for a store that no block will make.
            long writes = mem.gStored + mem.atomics;
            boolean onlySpun = true;
            for (int i = 0; i < order.length; i++) {
                if (done[i]) continue;
                if (state[i] == null) startBlock(order[i]);
                else resume(state[i]);
                if (runSlice(threadInsns + COOPERATIVE_SLICE)) {
                    done[i] = true;
                    state[i] = null;
                    left--;
                    onlySpun = false;
                } else {
                    if (yieldedAt == null) onlySpun = false;
                    else if (onlySpun && left > 0 && i == lastLive(done)) {
                        if (mem.gStored + mem.atomics == writes) {
                            throw fail(yieldedAt, yieldedLane, "every block of the cooperative grid is spinning and"
                                    + " none stores anything: a spin-wait on blocks that never arrive");
                        }
                    }
                    state[i] = suspend();
                }
            }
        }
    }

    /** The index of the last block not yet done. */
    private static int lastLive(boolean[] done) {
        for (int i = done.length - 1; i >= 0; i--) if (!done[i]) return i;
        return -1;
    }

    /** Moves the running block's state out of the interpreter (which gets fresh per-warp arrays for the next block). */
    private Suspended suspend() {
        Suspended s = new Suspended();
        s.linear = blockLinear;
        s.cx = cx;
        s.cy = cy;
        s.cz = cz;
        s.executed = threadInsns - blockStartInsns;
        s.regs = new long[nwarps][];
        s.lanePc = new int[nwarps][];
        s.barId = new int[nwarps][];
        s.callDepth = new int[nwarps][];
        s.barPred = new boolean[nwarps][];
        s.retStack = retStack == null ? null : new int[nwarps][][];
        for (int w = 0; w < nwarps; w++) {
            s.regs[w] = regs[w];
            regs[w] = newRegs();
            s.lanePc[w] = lanePc[w];
            lanePc[w] = new int[32];
            s.barId[w] = barId[w];
            barId[w] = new int[32];
            s.callDepth[w] = callDepth[w];
            callDepth[w] = new int[32];
            s.barPred[w] = barPred[w];
            barPred[w] = new boolean[32];
            if (retStack != null) {
                s.retStack[w] = retStack[w];
                retStack[w] = new int[32][MAX_CALL_DEPTH];
            }
        }
        s.active = active.clone();
        s.waiting = waiting.clone();
        s.barArrived = barArrived.clone();
        s.barExpected = barExpected.clone();
        s.shared = Arrays.copyOf(shared, sharedBytes);
        s.local = local.clone();
        s.callParams = callParams.clone();
        if (ordering != null) s.order = ordering.suspendBlock();
        return s;
    }

    /** Makes suspended block {@code s} the running block again. */
    private void resume(Suspended s) {
        blockLinear = s.linear;
        cx = s.cx;
        cy = s.cy;
        cz = s.cz;
        blockStartInsns = threadInsns - s.executed;
        for (int w = 0; w < nwarps; w++) {
            regs[w] = s.regs[w];
            lanePc[w] = s.lanePc[w];
            barId[w] = s.barId[w];
            callDepth[w] = s.callDepth[w];
            barPred[w] = s.barPred[w];
            if (retStack != null) retStack[w] = s.retStack[w];
        }
        System.arraycopy(s.active, 0, active, 0, nwarps);
        System.arraycopy(s.waiting, 0, waiting, 0, nwarps);
        System.arraycopy(s.barArrived, 0, barArrived, 0, 16);
        System.arraycopy(s.barExpected, 0, barExpected, 0, 16);
        System.arraycopy(s.shared, 0, shared, 0, s.shared.length);
        System.arraycopy(s.local, 0, local, 0, local.length);
        System.arraycopy(s.callParams, 0, callParams, 0, callParams.length);
        if (races != null) races.newBlock();   // a new interval: races spanning the preemption point go unseen
        if (ordering != null) ordering.resumeBlock(s.order);
    }

    private void startBlock(int linear) {
        blockLinear = linear;
        cx = linear % grid.x();
        cy = (linear / grid.x()) % grid.y();
        cz = linear / (grid.x() * grid.y());
        Arrays.fill(shared, 0, sharedBytes, (byte) 0xFF);
        if (races != null) races.newBlock();
        if (ordering != null) ordering.newBlock(linear);
        Arrays.fill(barArrived, 0);
        blockStartInsns = threadInsns;
        for (int w = 0; w < nwarps; w++) initWarp(w);
    }

    /**
     * Runs the running block until every thread exited (true) or, past {@code end} thread-instructions, until its warps
     * were preempted (false; cooperative launches only).
     */
    private boolean runSlice(long end) {
        sliceEnd = end;
        polled = false;
        yieldedAt = null;
        while (true) {
            boolean any = false;
            for (int w = 0; w < nwarps; w++) {
                if ((active[w] & ~waiting[w]) != 0) {
                    curWarp = w;
                    runWarp(w);
                    any = true;
                }
            }
            boolean allDone = true;
            for (int w = 0; w < nwarps; w++) if (active[w] != 0) allDone = false;
            if (allDone) return true;
            if (!releaseBarriers() && !any) throw deadlock();
            if (threadInsns >= sliceEnd) return false;
        }
    }

    private void initWarp(int w) {
        long[] r = regs[w];
        int lanes = Math.min(32, nthreads - w * 32);
        active[w] = lanes == 32 ? -1 : (1 << lanes) - 1;
        waiting[w] = 0;
        Arrays.fill(lanePc[w], 0);
        Arrays.fill(callDepth[w], 0);
        int bx = block.x(), by = block.y();
        for (int l = 0; l < 32; l++) {
            int t = w * 32 + l;
            set(r, Special.TID_X, l, t % bx);
            set(r, Special.TID_X + 1, l, (t / bx) % by);
            set(r, Special.TID_X + 2, l, t / (bx * by));
            set(r, Special.LANEMASK_EQ, l, 1L << l);
            set(r, Special.LANEMASK_EQ + 1, l, (int) ((2L << l) - 1)); // le
            set(r, Special.LANEMASK_EQ + 2, l, (int) ((1L << l) - 1)); // lt
            set(r, Special.LANEMASK_EQ + 3, l, (int) ~((1L << l) - 1)); // ge
            set(r, Special.LANEMASK_EQ + 4, l, (int) ~((2L << l) - 1)); // gt
            set(r, Special.LANEID, l, l);
        }
        fill(r, Special.NTID_X, block.x());
        fill(r, Special.NTID_X + 1, block.y());
        fill(r, Special.NTID_X + 2, block.z());
        fill(r, Special.CTAID_X, cx);
        fill(r, Special.CTAID_X + 1, cy);
        fill(r, Special.CTAID_X + 2, cz);
        fill(r, Special.NCTAID_X, grid.x());
        fill(r, Special.NCTAID_X + 1, grid.y());
        fill(r, Special.NCTAID_X + 2, grid.z());
        fill(r, Special.WARPID, w);
        fill(r, Special.NWARPID, 64);
        fill(r, Special.SMID, blockLinear % opt.multiprocessorCount());
        fill(r, Special.NSMID, opt.multiprocessorCount());
        fill(r, Special.GRIDID, 1);
        fill(r, Special.DYN_SMEM, dynamicShared);
        fill(r, Special.TOTAL_SMEM, sharedBytes);
        fill(r, Special.WARPSIZE, 32);
    }

    private static void set(long[] r, int reg, int lane, long v) {
        r[reg * 32 + lane] = v;
    }

    private static void fill(long[] r, int reg, long v) {
        Arrays.fill(r, reg * 32, reg * 32 + 32, v);
    }

    // ------------------------------------------------------------------ scheduling

    /** Recomputes the warp's group: writes pc for the lanes of {@code mask} (if any), picks the min-pc lanes. */
    private void regroup(int w, int pc, int mask) {
        int[] lp = lanePc[w];
        for (int x = mask; x != 0; x &= x - 1) lp[Integer.numberOfTrailingZeros(x)] = pc;
        int run = active[w] & ~waiting[w];
        int min = Integer.MAX_VALUE;
        for (int x = run; x != 0; x &= x - 1) {
            int p = lp[Integer.numberOfTrailingZeros(x)];
            if (p < min) min = p;
        }
        int g = 0, next = Integer.MAX_VALUE;
        for (int x = run; x != 0; x &= x - 1) {
            int l = Integer.numberOfTrailingZeros(x);
            int p = lp[l];
            if (p == min) g |= 1 << l;
            else if (p < next) next = p;
        }
        gMask = g;
        gPc = min;
        gNext = next;
    }

    private void runWarp(int w) {
        long[] R = regs[w];
        final long[] covThreads = this.covThreads, covTaken = this.covTaken;
        regroup(w, 0, 0);
        int mask = gMask, pc = gPc, next = gNext;
        while (true) {
            Insn in = code[pc];
            int m = mask;
            if (in.guard >= 0) {
                m = guardMask(R, in, mask);
                if (covTaken != null) covTaken[pc] += Integer.bitCount(m);
            }
            threadInsns += Integer.bitCount(mask);
            if (covThreads != null) covThreads[pc] += Integer.bitCount(mask);
            switch (in.op) {
                case Op.MOV: Alu.mov(R, in, m); break;
                case Op.ADD: Alu.add(R, in, m); break;
                case Op.SUB: Alu.sub(R, in, m); break;
                case Op.MUL_LO: Alu.mulLo(R, in, m); break;
                case Op.MAD_LO: Alu.madLo(R, in, m); break;
                case Op.AND: Alu.and(R, in, m); break;
                case Op.OR: Alu.or(R, in, m); break;
                case Op.XOR: Alu.xor(R, in, m); break;
                case Op.SHL: Alu.shl(R, in, m); break;
                case Op.SHR: Alu.shr(R, in, m); break;
                case Op.ADD_F32: Alu.addF32(R, in, m); break;
                case Op.SUB_F32: Alu.subF32(R, in, m); break;
                case Op.MUL_F32: Alu.mulF32(R, in, m); break;
                case Op.FMA_F32: Alu.fmaF32(R, in, m); break;
                case Op.ADD_F64: Alu.addF64(R, in, m); break;
                case Op.SUB_F64: Alu.subF64(R, in, m); break;
                case Op.MUL_F64: Alu.mulF64(R, in, m); break;
                case Op.FMA_F64: Alu.fmaF64(R, in, m); break;
                case Op.SETP_INT: Alu.setpInt(R, in, m); break;
                case Op.SETP_F: Alu.setpF(R, in, m); break;
                case Op.SELP: Alu.selp(R, in, m); break;
                case Op.MUL_WIDE: Alu.mulWide(R, in, m); break;
                case Op.CVT: Alu.cvt(R, in, m); break;
                case Op.CVTA_TO: mem.cvtaTo(R, in, m); break;
                case Op.CVTA: mem.cvta(R, in, m); break;
                case Op.LD:
                    mem.load(R, in, m);
                    if (cooperative && (in.order & Op.ORD_STRONG) != 0) polled = true;
                    break;
                case Op.ST: mem.store(R, in, m); break;
                case Op.BRA: {
                    if (in.target <= pc && threadInsns - blockStartInsns > opt.maxBlockInstructions()) {
                        throw fail(in, Integer.numberOfTrailingZeros(mask), "block executed more than "
                                + opt.maxBlockInstructions() + " thread-instructions: an endless loop, or a spin-wait"
                                + (cooperative ? " on blocks that never arrive" : " on another block (blocks run one"
                                + " at a time in the emulator; only a cooperative launch runs them together)"));
                    }
                    if (in.target <= pc && polled) {   // a spin-wait: yield the block's slice (see polled)
                        polled = false;
                        sliceEnd = threadInsns;
                        yieldedAt = in;
                        yieldedLane = Integer.numberOfTrailingZeros(mask);
                    }
                    if (in.target <= pc && threadInsns >= sliceEnd) {
                        regroup(w, pc, mask);   // preempted before the branch: the lanes resume at it
                        return;
                    }
                    if (m == mask) {
                        pc = in.target;
                    } else if (m == 0) {
                        pc++;
                    } else {
                        int[] lp = lanePc[w];
                        for (int x = m; x != 0; x &= x - 1) lp[Integer.numberOfTrailingZeros(x)] = in.target;
                        regroup(w, pc + 1, mask & ~m);
                        mask = gMask;
                        pc = gPc;
                        next = gNext;
                        continue;
                    }
                    if (pc >= next) {
                        regroup(w, pc, mask);
                        mask = gMask;
                        pc = gPc;
                        next = gNext;
                    }
                    continue;
                }
                case Op.EXIT: case Op.RET: {
                    int[] lp = lanePc[w];
                    int[] depth = callDepth[w];
                    for (int x = m; x != 0; x &= x - 1) {
                        int l = Integer.numberOfTrailingZeros(x);
                        if (in.op == Op.RET && depth[l] > 0) {
                            int k = retStack[w][l][--depth[l]];
                            Insn.CallInfo ci = code[k].call;
                            if (ci.retSrc >= 0) {
                                int base = (w * 32 + l) * callParamBytes;
                                System.arraycopy(callParams, base + ci.retSrc, callParams, base + ci.retDst, ci.retSize);
                            }
                            lp[l] = k + 1;
                        } else {
                            active[w] &= ~(1 << l);
                        }
                    }
                    regroup(w, pc + 1, mask & ~m);
                    if (gMask == 0) return;
                    mask = gMask;
                    pc = gPc;
                    next = gNext;
                    continue;
                }
                case Op.CALL: {
                    int[] lp = lanePc[w];
                    int[] depth = callDepth[w];
                    Insn.CallInfo ci = in.call;
                    for (int x = m; x != 0; x &= x - 1) {
                        int l = Integer.numberOfTrailingZeros(x);
                        if (depth[l] == MAX_CALL_DEPTH) throw fail(in, l, "call depth exceeds " + MAX_CALL_DEPTH);
                        int base = (w * 32 + l) * callParamBytes;
                        for (int a = 0; a < ci.argSrc.length; a++) {
                            System.arraycopy(callParams, base + ci.argSrc[a], callParams, base + ci.argDst[a], ci.argSize[a]);
                        }
                        retStack[w][l][depth[l]++] = pc;
                        lp[l] = in.target;
                    }
                    regroup(w, pc + 1, mask & ~m);
                    mask = gMask;
                    pc = gPc;
                    next = gNext;
                    continue;
                }
                case Op.BAR: case Op.BAR_RED: {
                    if (m != 0) arrive(w, in, m, R);
                    int[] lp = lanePc[w];
                    for (int x = m; x != 0; x &= x - 1) lp[Integer.numberOfTrailingZeros(x)] = pc;
                    waiting[w] |= m;
                    regroup(w, pc + 1, mask & ~m);
                    if (gMask == 0) return;
                    mask = gMask;
                    pc = gPc;
                    next = gNext;
                    continue;
                }
                default: other(R, in, m, mask); break;
            }
            pc++;
            if (pc >= next) {
                regroup(w, pc, mask);
                mask = gMask;
                pc = gPc;
                next = gNext;
            }
        }
    }

    private static int guardMask(long[] R, Insn in, int mask) {
        int base = in.guard * 32;
        int m = 0;
        for (int x = mask; x != 0; x &= x - 1) {
            int l = Integer.numberOfTrailingZeros(x);
            if ((R[base + l] & 1) != 0) m |= 1 << l;
        }
        return in.guardNeg ? mask & ~m : m;
    }

    /** The less frequent instructions. */
    private void other(long[] R, Insn in, int m, int mask) {
        switch (in.op) {
            case Op.NEG: Alu.neg(R, in, m); break;
            case Op.NOT: Alu.not(R, in, m); break;
            case Op.CNOT: Alu.cnot(R, in, m); break;
            case Op.MUL_HI: case Op.MAD_HI: Alu.mulHi(R, in, m); break;
            case Op.MAD_WIDE: Alu.madWide(R, in, m); break;
            case Op.DIV_INT: case Op.REM: Alu.divRem(R, in, m, this); break;
            case Op.MIN_INT: case Op.MAX_INT: Alu.minMax(R, in, m); break;
            case Op.ABS_INT: Alu.absInt(R, in, m); break;
            case Op.BFE: Alu.bfe(R, in, m); break;
            case Op.BFI: Alu.bfi(R, in, m); break;
            case Op.POPC: case Op.CLZ: case Op.BREV: case Op.BFIND: Alu.bits(R, in, m); break;
            case Op.PRMT: Alu.prmt(R, in, m); break;
            case Op.SET_INT: case Op.SET_F: Alu.set(R, in, m); break;
            case Op.TESTP: Alu.testp(R, in, m); break;
            case Op.COPYSIGN: Alu.copysign(R, in, m); break;
            case Op.FADD: case Op.FSUB: case Op.FMUL: case Op.FFMA: case Op.FDIV: Alu.floatArith(R, in, m); break;
            case Op.FSQRT: case Op.FRSQRT: case Op.FRCP: case Op.FEX2: case Op.FLG2: case Op.FSIN: case Op.FCOS:
            case Op.FTANH: case Op.FABS: case Op.FNEG: Alu.floatUnary(R, in, m); break;
            case Op.FMIN: case Op.FMAX: Alu.floatMinMax(R, in, m); break;
            case Op.MOV_PACK: Alu.pack(R, in, m); break;
            case Op.MOV_UNPACK: Alu.unpack(R, in, m); break;
            case Op.CLOCK: for (int x = m; x != 0; x &= x - 1) R[in.d * 32 + Integer.numberOfTrailingZeros(x)] = threadInsns; break;
            case Op.ATOM: case Op.RED: mem.atom(R, in, m); break;
            case Op.ISSPACEP: mem.isspacep(R, in, m); break;
            case Op.SHF: Alu.shf(R, in, m); break;
            case Op.LOP3: Alu.lop3(R, in, m); break;
            case Op.SAD: Alu.sad(R, in, m); break;
            case Op.MATCH: match(R, in, m); break;
            case Op.MEMBAR: if (ordering != null && in.mode == 1 && m != 0) ordering.fence(curWarp, m); break;
            case Op.NOP: break;
            case Op.SHFL: shfl(R, in, m, mask); break;
            case Op.VOTE: vote(R, in, m, mask); break;
            case Op.ACTIVEMASK: for (int x = m; x != 0; x &= x - 1) R[in.d * 32 + Integer.numberOfTrailingZeros(x)] = mask; break;
            case Op.BAR_WARP: {
                int mm = (int) R[in.a * 32 + Integer.numberOfTrailingZeros(mask)];
                checkSelf(R, in, in.a, mask, "bar.warp.sync");
                checkMembers(in, mm, mask, "bar.warp.sync");
                if (races != null) races.warpSync(curWarp, mm & mask);
                break;
            }
            case Op.TRAP: if (m != 0) throw fail(in, Integer.numberOfTrailingZeros(m), "trap executed"); break;
            case Op.UNSUPPORTED: throw fail(in, Integer.numberOfTrailingZeros(mask),
                    "unsupported instruction '" + in.text.split(" ")[0] + "'");
            default: throw fail(in, Integer.numberOfTrailingZeros(mask), "internal: unhandled op " + in.op);
        }
    }

    // ------------------------------------------------------------------ errors

    String threadName(int lane) {
        int t = curWarp * 32 + lane;
        int bx = block.x(), by = block.y();
        return "(" + (t % bx) + "," + ((t / bx) % by) + "," + (t / (bx * by)) + ")";
    }

    private String blockName() {
        return "(" + cx + "," + cy + "," + cz + ")";
    }

    /** Block {@code linear} of the grid as "(x,y,z)". */
    String blockNameOf(int linear) {
        return "(" + linear % grid.x() + "," + (linear / grid.x()) % grid.y() + "," + linear / (grid.x() * grid.y()) + ")";
    }

    /** Thread {@code t} (linear index in the block) as "(x,y,z)". */
    String threadNameOf(int t) {
        int bx = block.x(), by = block.y();
        return "(" + (t % bx) + "," + ((t / bx) % by) + "," + (t / (bx * by)) + ")";
    }

    Dim3 gridDim() {
        return grid;
    }

    Dim3 blockDim() {
        return block;
    }

    DeviceException fail(Insn in, int lane, String what) {
        return new DeviceException("kernel " + fn.name + " (module " + fn.moduleName + ") line " + in.line + " '"
                + in.text + "': " + what + "; block " + blockName() + " thread " + threadName(lane)
                + " (grid " + grid + ", block " + block + ")");
    }

    private DeviceException deadlock() {
        StringBuilder sb = new StringBuilder();
        int exited = 0, waitingN = 0;
        int firstWaitW = -1, firstWaitL = -1, firstExitW = -1, firstExitL = -1;
        for (int w = 0; w < nwarps; w++) {
            int lanes = Math.min(32, nthreads - w * 32);
            for (int l = 0; l < lanes; l++) {
                if ((active[w] >>> l & 1) == 0) {
                    exited++;
                    if (firstExitW < 0) { firstExitW = w; firstExitL = l; }
                } else if ((waiting[w] >>> l & 1) != 0) {
                    waitingN++;
                    if (firstWaitW < 0) { firstWaitW = w; firstWaitL = l; }
                }
            }
        }
        Insn bar = code[lanePc[firstWaitW][firstWaitL]];
        curWarp = firstWaitW;
        sb.append("barrier divergence (deadlock): ").append(waitingN).append(" of ").append(nthreads)
                .append(" threads wait at a barrier that can never complete");
        if (exited > 0) {
            int saved = curWarp;
            curWarp = firstExitW;
            sb.append("; ").append(exited).append(" threads exited without reaching it, e.g. thread ")
                    .append(threadName(firstExitL));
            curWarp = saved;
        }
        return fail(bar, firstWaitL, sb.toString());
    }

    // ------------------------------------------------------------------ barriers

    private void arrive(int w, Insn in, int m, long[] R) {
        int l0 = Integer.numberOfTrailingZeros(m);
        int id = (int) R[in.a * 32 + l0];
        if (id < 0 || id > 15) throw fail(in, l0, "barrier id " + id + " out of range 0..15");
        int expected = in.b >= 0 ? (int) R[in.b * 32 + l0] : nthreads;
        if (in.b >= 0 && (expected % 32 != 0 || expected <= 0)) {
            throw fail(in, l0, "barrier thread count " + expected + " is not a positive multiple of 32");
        }
        barExpected[id] = expected;
        barArrived[id] += Integer.bitCount(m);
        for (int x = m; x != 0; x &= x - 1) {
            int l = Integer.numberOfTrailingZeros(x);
            barId[w][l] = id;
            if (in.op == Op.BAR_RED) barPred[w][l] = ((R[in.c * 32 + l] & 1) != 0) != in.negC;
        }
    }

    /** Releases every complete barrier; true if any was released. */
    private boolean releaseBarriers() {
        boolean released = false;
        for (int id = 0; id < 16; id++) {
            if (barArrived[id] == 0 || barArrived[id] < barExpected[id]) continue;
            released = true;
            // barrier divergence within a warp: lanes waiting on this barrier at different bar instructions
            int popc = 0;
            boolean all = true, any = false;
            for (int w = 0; w < nwarps; w++) {
                int pcFirst = -1;
                for (int x = waiting[w]; x != 0; x &= x - 1) {
                    int l = Integer.numberOfTrailingZeros(x);
                    if (barId[w][l] != id) continue;
                    int p = lanePc[w][l];
                    if (pcFirst < 0) pcFirst = p;
                    else if (p != pcFirst && syncCheck) {
                        curWarp = w;
                        throw fail(code[p], l, "barrier divergence: lanes of one warp wait at different barriers"
                                + " (lines " + code[pcFirst].line + " and " + code[p].line + ")");
                    }
                    boolean pv = barPred[w][l];
                    if (pv) popc++;
                    all &= pv;
                    any |= pv;
                }
            }
            for (int w = 0; w < nwarps; w++) {
                int rel = 0;
                for (int x = waiting[w]; x != 0; x &= x - 1) {
                    int l = Integer.numberOfTrailingZeros(x);
                    if (barId[w][l] != id) continue;
                    rel |= 1 << l;
                    Insn in = code[lanePc[w][l]];
                    if (in.op == Op.BAR_RED) {
                        long v = in.mode == 0 ? popc : in.mode == 1 ? (all ? 1 : 0) : (any ? 1 : 0);
                        regs[w][in.d * 32 + l] = v;
                    }
                    lanePc[w][l]++;
                }
                waiting[w] &= ~rel;
            }
            barArrived[id] = 0;
            if (ordering != null) ordering.barrier();
            if (races != null) races.newEpoch(); // a barrier orders the shared-memory accesses before it against those after it
        }
        return released;
    }

    // ------------------------------------------------------------------ warp-level

    private void checkMembers(Insn in, int members, int mask, String what) {
        if (!syncCheck) return;
        int lanes = Math.min(32, nthreads - curWarp * 32);
        int exists = lanes == 32 ? -1 : (1 << lanes) - 1;
        // lanes past the end of a partial last warp never existed: a full mask there is accepted, as on the GPU
        int missing = members & ~mask & exists;
        if (missing != 0) {
            int l = Integer.numberOfTrailingZeros(missing);
            boolean exited = (active[curWarp] >>> l & 1) == 0;
            throw fail(in, Integer.numberOfTrailingZeros(mask), what + " member mask 0x"
                    + Integer.toHexString(members) + " names lane " + l + " which "
                    + (exited ? "has exited" : "is not converged at this instruction") + " (executing lanes 0x"
                    + Integer.toHexString(mask) + ")");
        }
    }

    /**
     * Each executing lane's own member mask (register {@code reg}, per lane) must include that lane: the PTX ISA leaves
     * a .sync instruction undefined otherwise.
     */
    private void checkSelf(long[] R, Insn in, int reg, int m, String what) {
        if (!syncCheck) return;
        for (int x = m; x != 0; x &= x - 1) {
            int l = Integer.numberOfTrailingZeros(x);
            int own = (int) R[reg * 32 + l];
            if ((own >>> l & 1) == 0) {
                throw fail(in, l, what + " member mask 0x" + Integer.toHexString(own) + " leaves out lane " + l
                        + ", which executes it (undefined: a lane must be in its own member mask)");
            }
        }
    }

    private void shfl(long[] R, Insn in, int m, int mask) {
        if (m == 0) return;
        int l0 = Integer.numberOfTrailingZeros(m);
        int members = (int) R[in.e * 32 + l0];
        checkSelf(R, in, in.e, m, "shfl.sync");
        checkMembers(in, members, m, "shfl.sync");
        if (races != null) races.warpSync(curWarp, members & m);
        int a = in.a * 32, b = in.b * 32, c = in.c * 32, d = in.d * 32;
        long[] src = shflSrc; // snapshot of a for all lanes: d may alias a
        for (int l = 0; l < 32; l++) src[l] = R[a + l];
        for (int x = m; x != 0; x &= x - 1) {
            int lane = Integer.numberOfTrailingZeros(x);
            int bval = (int) R[b + lane] & 31;
            int cv = (int) R[c + lane];
            int cval = cv & 31, segmask = (cv >>> 8) & 31;
            int maxLane = (lane & segmask) | (cval & ~segmask);
            int minLane = lane & segmask;
            int j;
            boolean p;
            switch (in.mode) {
                case Op.SHFL_UP: j = lane - bval; p = j >= maxLane; break;
                case Op.SHFL_DOWN: j = lane + bval; p = j <= maxLane; break;
                case Op.SHFL_BFLY: j = lane ^ bval; p = j <= maxLane; break;
                default: j = minLane | (bval & ~segmask); p = j <= maxLane; break;
            }
            if (!p) j = lane;
            R[d + lane] = src[j];
            if (in.d2 >= 0) R[in.d2 * 32 + lane] = p ? 1 : 0;
        }
    }

    private void vote(long[] R, Insn in, int m, int mask) {
        if (m == 0) return;
        int l0 = Integer.numberOfTrailingZeros(m);
        int members = in.e >= 0 ? (int) R[in.e * 32 + l0] : m;
        if (in.e >= 0) checkSelf(R, in, in.e, m, "vote.sync");
        checkMembers(in, members, m, "vote.sync");
        if (races != null && in.e >= 0) races.warpSync(curWarp, members & m);
        int ballot = 0;
        for (int x = m & members; x != 0; x &= x - 1) {
            int l = Integer.numberOfTrailingZeros(x);
            if (((R[in.a * 32 + l] & 1) != 0) != in.negA) ballot |= 1 << l;
        }
        int part = m & members;
        long v;
        switch (in.mode) {
            case Op.VOTE_ALL: v = ballot == part ? 1 : 0; break;
            case Op.VOTE_ANY: v = ballot != 0 ? 1 : 0; break;
            case Op.VOTE_UNI: v = ballot == part || ballot == 0 ? 1 : 0; break;
            default: v = ballot; break;
        }
        for (int x = m; x != 0; x &= x - 1) R[in.d * 32 + Integer.numberOfTrailingZeros(x)] = v;
    }

    /** match.any: lanes of the member mask holding my value; match.all: the member mask if all hold one value. */
    private void match(long[] R, Insn in, int m) {
        if (m == 0) return;
        int l0 = Integer.numberOfTrailingZeros(m);
        int members = (int) R[in.e * 32 + l0];
        checkSelf(R, in, in.e, m, "match.sync");
        checkMembers(in, members, m, "match.sync");
        if (races != null) races.warpSync(curWarp, members & m);
        int part = members & m;
        int size = PtxType.size(in.type);
        for (int x = m; x != 0; x &= x - 1) {
            int l = Integer.numberOfTrailingZeros(x);
            long v = size == 8 ? R[in.a * 32 + l] : R[in.a * 32 + l] & 0xFFFF_FFFFL;
            int same = 0;
            for (int y = part; y != 0; y &= y - 1) {
                int k = Integer.numberOfTrailingZeros(y);
                long u = size == 8 ? R[in.a * 32 + k] : R[in.a * 32 + k] & 0xFFFF_FFFFL;
                if (u == v) same |= 1 << k;
            }
            boolean all = same == part;
            R[in.d * 32 + l] = in.mode == 0 ? same : (all ? part : 0);
            if (in.d2 >= 0) R[in.d2 * 32 + l] = all ? 1 : 0;
        }
    }

}
