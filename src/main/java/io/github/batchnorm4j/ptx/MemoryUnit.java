package io.github.batchnorm4j.ptx;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * Memory instructions of one launch (ld, st, atom/red, cvta, isspacep): resolves each lane's address in its state
 * space (generic addresses through the shared/local windows), applies the memory, initialization and race checks, and
 * counts global traffic (bytes, 32-byte sectors per warp-level access, atomics).
 */
final class MemoryUnit {
    private static final VarHandle I16 = MethodHandles.byteArrayViewVarHandle(short[].class, ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle I32 = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle I64 = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);

    private final Interpreter it;
    private final GlobalMemory gmem;
    private final boolean memCheck, initCheck, raceCheck;
    private final byte[] params, shared, local, callParams;
    private final int sharedBytes, localBytes, callParamBytes;
    private final SharedRaceDetector races;
    private final MemoryOrder ordering;
    /** The buffer ranges this launch touches, for the cross-stream check (null when not recorded). */
    private final StreamScheduler.Footprint footprint;
    long gLoaded, gStored, requested, sectorBytes, atomics;
    private final long[] sectors = new long[128];
    private final long[] addrs = new long[32];
    private final int[] lanes = new int[32];

    MemoryUnit(Interpreter it, GlobalMemory gmem, EmulatorOptions opt, byte[] params, byte[] shared, int sharedBytes,
               byte[] local, int localBytes, byte[] callParams, int callParamBytes, SharedRaceDetector races,
               MemoryOrder ordering, StreamScheduler.Footprint footprint) {
        this.it = it;
        this.gmem = gmem;
        this.memCheck = opt.memoryCheck();
        this.initCheck = opt.initCheck();
        this.raceCheck = opt.raceCheck();
        this.params = params;
        this.shared = shared;
        this.sharedBytes = sharedBytes;
        this.local = local;
        this.localBytes = localBytes;
        this.callParams = callParams;
        this.callParamBytes = callParamBytes;
        this.races = races;
        this.ordering = ordering;
        this.footprint = footprint;
    }


    void cvtaTo(long[] R, Insn in, int m) {
        int a = in.a * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) {
            int l = Integer.numberOfTrailingZeros(x);
            long v = R[a + l];
            if (in.space == Op.SHARED) v -= GlobalMemory.SHARED_WINDOW;
            else if (in.space == Op.LOCAL) v -= GlobalMemory.LOCAL_WINDOW;
            R[d + l] = v;
        }
    }

    void cvta(long[] R, Insn in, int m) {
        int a = in.a * 32, d = in.d * 32;
        for (int x = m; x != 0; x &= x - 1) {
            int l = Integer.numberOfTrailingZeros(x);
            long v = R[a + l];
            if (in.space == Op.SHARED) v = (v & 0xFFFF_FFFFL) + GlobalMemory.SHARED_WINDOW;
            else if (in.space == Op.LOCAL) v = (v & 0xFFFF_FFFFL) + GlobalMemory.LOCAL_WINDOW;
            R[d + l] = v;
        }
    }

    void isspacep(long[] R, Insn in, int m) {
        for (int x = m; x != 0; x &= x - 1) {
            int l = Integer.numberOfTrailingZeros(x);
            long a = R[in.a * 32 + l];
            boolean sh = a >= GlobalMemory.SHARED_WINDOW && a < GlobalMemory.SHARED_WINDOW + GlobalMemory.WINDOW_SIZE;
            boolean lo = a >= GlobalMemory.LOCAL_WINDOW && a < GlobalMemory.LOCAL_WINDOW + GlobalMemory.WINDOW_SIZE;
            boolean r;
            switch (in.space) {
                case Op.SHARED: r = sh; break;
                case Op.LOCAL: r = lo; break;
                case Op.GLOBAL: r = !sh && !lo; break;
                default: r = false; break;
            }
            R[in.d * 32 + l] = r ? 1 : 0;
        }
    }

    // Resolution result of one lane's access.
    private byte[] rArr;
    private int rOff;
    private Allocation rAlloc;
    private int rSpace;

    /** Resolves {@code [addr, addr+n)} of the instruction's space for one lane; sets rArr/rOff/rAlloc/rSpace. */
    private void resolve(Insn in, int lane, long addr, int n, boolean write) {
        int space = in.space;
        if (space == Op.GENERIC) {
            if (addr >= GlobalMemory.SHARED_WINDOW && addr < GlobalMemory.SHARED_WINDOW + GlobalMemory.WINDOW_SIZE) {
                space = Op.SHARED;
                addr -= GlobalMemory.SHARED_WINDOW;
            } else if (addr >= GlobalMemory.LOCAL_WINDOW && addr < GlobalMemory.LOCAL_WINDOW + GlobalMemory.WINDOW_SIZE) {
                space = Op.LOCAL;
                addr -= GlobalMemory.LOCAL_WINDOW;
            } else {
                space = Op.GLOBAL;
            }
        }
        if (addr % n != 0 && memCheck) {
            throw it.fail(in, lane, "misaligned " + n + "-byte " + (write ? "write" : "read") + " at " + spaceName(space)
                    + " address 0x" + Long.toHexString(addr));
        }
        rSpace = space;
        rAlloc = null;
        switch (space) {
            case Op.GLOBAL: case Op.CONST: {
                Allocation a = gmem.find(addr, n);
                if (a == null) {
                    throw it.fail(in, lane, "out-of-bounds global " + (write ? "write" : "read") + " of " + n
                            + " bytes at address 0x" + Long.toHexString(addr) + " (" + gmem.describe(addr) + ")");
                }
                rAlloc = a;
                rArr = a.data;
                rOff = (int) (addr - a.base);
                return;
            }
            case Op.SHARED: {
                if (addr < 0 || addr + n > sharedBytes) {
                    throw it.fail(in, lane, "out-of-bounds shared " + (write ? "write" : "read") + " of " + n
                            + " bytes at shared address 0x" + Long.toHexString(addr) + " (block has " + sharedBytes
                            + " bytes of shared memory)");
                }
                rArr = shared;
                rOff = (int) addr;
                return;
            }
            case Op.LOCAL: {
                if (addr < 0 || addr + n > localBytes) {
                    throw it.fail(in, lane, "out-of-bounds local " + (write ? "write" : "read") + " at local address 0x"
                            + Long.toHexString(addr) + " (" + localBytes + " bytes of local memory per thread)");
                }
                rArr = local;
                rOff = (it.curWarp * 32 + lane) * localBytes + (int) addr;
                return;
            }
            case Op.CALLPARAM: {
                if (addr < 0 || addr + n > callParamBytes) {
                    throw it.fail(in, lane, "out-of-bounds call parameter access at offset " + addr);
                }
                rArr = callParams;
                rOff = (it.curWarp * 32 + lane) * callParamBytes + (int) addr;
                return;
            }
            case Op.PARAM: {
                if (write) throw it.fail(in, lane, "kernel parameters are read-only");
                if (addr < 0 || addr + n > params.length) {
                    throw it.fail(in, lane, "out-of-bounds parameter read at offset " + addr + " (" + params.length
                            + " parameter bytes)");
                }
                rArr = params;
                rOff = (int) addr;
                return;
            }
            default: throw it.fail(in, lane, "unknown state space");
        }
    }

    private static String spaceName(int space) {
        switch (space) {
            case Op.GLOBAL: return "global";
            case Op.SHARED: return "shared";
            case Op.LOCAL: return "local";
            case Op.PARAM: return "param";
            case Op.CONST: return "const";
            default: return "generic";
        }
    }

    static long read(byte[] arr, int off, int n) {
        switch (n) {
            case 4: return (int) I32.get(arr, off);
            case 8: return (long) I64.get(arr, off);
            case 2: return (short) I16.get(arr, off);
            default: return arr[off];
        }
    }

    static void write(byte[] arr, int off, int n, long v) {
        switch (n) {
            case 4: I32.set(arr, off, (int) v); break;
            case 8: I64.set(arr, off, v); break;
            case 2: I16.set(arr, off, (short) v); break;
            default: arr[off] = (byte) v;
        }
    }

    private void checkInit(Insn in, int lane, long addr, int n) {
        long bad = rAlloc.firstUninit(rOff, n);
        if (bad >= 0) {
            throw it.fail(in, lane, "read of uninitialized global memory at address 0x"
                    + Long.toHexString(rAlloc.base + bad) + " (byte " + bad + " of " + rAlloc.label
                    + ", never written since allocation)");
        }
    }

    /** Records a shared access of kind 0 read, 1 write, 2 atomic; throws on a race. */
    private void raceAccess(Insn in, int lane, int off, int n, int kind) {
        int t = it.curWarp * 32 + lane;
        boolean ok = kind == 0 ? races.read(t, off, n) : kind == 1 ? races.write(t, off, n) : races.atomic(t, off, n);
        if (ok) return;
        String mine = kind == 0 ? "read of" : kind == 1 ? "write to" : "atomic update of";
        if (races.sameWarp) {
            throw it.fail(in, lane, "shared memory data race within a warp: " + mine + " shared address 0x"
                    + Integer.toHexString(races.conflictOffset) + " already written by thread "
                    + otherThreadName(races.otherThread) + " of the same warp with no __syncwarp, shfl/vote .sync or"
                    + " barrier covering both lanes in between (missing __syncwarp?)");
        }
        int other = races.otherThread;
        String otherName = other == SharedRaceDetector.MANY ? "threads of other warps" : "thread " + otherThreadName(other);
        throw it.fail(in, lane, "shared memory data race: " + mine + " shared address 0x"
                + Integer.toHexString(races.conflictOffset) + " already " + races.otherAccess + " by " + otherName
                + " since the last barrier (missing __syncthreads?)");
    }

    private String otherThreadName(int other) {
        int saved = it.curWarp;
        it.curWarp = other >> 5;
        String s = it.threadName(other & 31);
        it.curWarp = saved;
        return s;
    }

    /**
     * A store's bytes that another lane wrote in the same instruction ({@link SharedRaceDetector#sameInsnBytes}): a
     * write-write race if any of them gets a different value (memory still holds the other lane's value).
     */
    private void sameInsnWrite(long[] R, Insn in, int lane, int off, int size) {
        long same = races.sameInsnBytes;
        for (long x = same; x != 0; x &= x - 1) {
            int j = Long.numberOfTrailingZeros(x);
            int k = j / size;
            int reg = in.vecN == 1 ? in.a : in.vec[k];
            if (reg < 0) continue;
            int mine = (int) (R[reg * 32 + lane] >>> (8 * (j % size))) & 0xFF;
            int theirs = shared[off + j] & 0xFF;
            if (mine != theirs) {
                throw it.fail(in, lane, "shared memory data race within a warp: write to shared address 0x"
                        + Integer.toHexString(off + j) + " also written with a different value by thread "
                        + otherThreadName(races.sameInsnThread) + " of the same warp in this same instruction"
                        + " (write-write conflict: which value lands is undefined)");
            }
        }
    }

    void load(long[] R, Insn in, int m) {
        int size = in.memSize, n = size * in.vecN;
        int base = in.baseReg;
        int cnt = 0;
        Allocation last = null;
        for (int x = m; x != 0; x &= x - 1) {
            int l = Integer.numberOfTrailingZeros(x);
            long addr = (base >= 0 ? R[base * 32 + l] : 0) + in.offset;
            resolve(in, l, addr, n, false);
            if (rAlloc != null) {
                if (initCheck) checkInit(in, l, addr, n);
                last = rAlloc;
                lanes[cnt] = l;
                addrs[cnt++] = addr;
            } else if (raceCheck && rSpace == Op.SHARED) {
                raceAccess(in, l, rOff, n, 0);
            }
            byte[] arr = rArr;
            int off = rOff;
            if (in.vecN == 1) {
                R[in.d * 32 + l] = PtxType.ext(read(arr, off, size), in.type);
            } else {
                int[] v = in.vec;
                for (int k = 0; k < v.length; k++) {
                    if (v[k] >= 0) R[v[k] * 32 + l] = PtxType.ext(read(arr, off + k * size, size), in.type);
                }
            }
        }
        if (last != null) {
            if (ordering != null || footprint != null) {
                Allocation one = sameAllocation(last, cnt, n);
                if (ordering != null && in.space != Op.CONST) orderLoad(in, cnt, n, one);
                if (footprint != null) addFootprint(cnt, n, one, false);
            }
            gLoaded += (long) cnt * n;
            sectorStats(cnt, n);
        }
    }

    /** {@code a} if every one of {@code addrs[0..cnt)} (n bytes each) lies in it (the usual case), else null. */
    private Allocation sameAllocation(Allocation a, int cnt, int n) {
        long lo = a.base, hi = a.base + a.size - n;
        for (int i = 0; i < cnt; i++) if (addrs[i] < lo || addrs[i] > hi) return null;
        return a;
    }

    /** Adds {@code addrs[0..cnt)} (n bytes each, all in {@code alloc} unless null) to the launch's footprint. */
    private void addFootprint(int cnt, int n, Allocation alloc, boolean write) {
        if (alloc != null) {
            long lo = Long.MAX_VALUE, hi = Long.MIN_VALUE;
            for (int i = 0; i < cnt; i++) {
                long a = addrs[i];
                if (a < lo) lo = a;
                if (a > hi) hi = a;
            }
            footprint.add(alloc, lo - alloc.base, hi + n - alloc.base, write);
        } else {
            for (int i = 0; i < cnt; i++) {
                Allocation a = gmem.find(addrs[i], n);
                footprint.add(a, addrs[i] - a.base, addrs[i] + n - a.base, write);
            }
        }
    }

    /**
     * The ordering model's part of a warp-level global load of {@code addrs[0..cnt)} (lanes {@code lanes[]}), all in
     * {@code alloc} unless it is null. Memory that no block wrote in this launch needs no per-lane check (the common
     * case: inputs), so that a streaming load costs one test here, plus the .nc bookkeeping.
     */
    private void orderLoad(Insn in, int cnt, int n, Allocation alloc) {
        int t0 = it.curWarp * 32;
        if (alloc == null || alloc.shadow != null || (in.order & Op.ORD_STRONG) != 0) {
            for (int i = 0; i < cnt; i++) {
                Allocation a = alloc != null ? alloc : gmem.find(addrs[i], n);
                ordering.load(a, (int) (addrs[i] - a.base), n, t0 + lanes[i], in);
            }
        }
        if ((in.order & Op.ORD_NC) != 0) {
            if (alloc != null) {
                ordering.markNc(alloc, addrs, 0, cnt, n, t0 + lanes[0], in);
            } else {
                for (int i = 0; i < cnt; i++) ordering.markNc(gmem.find(addrs[i], n), addrs, i, i + 1, n, t0 + lanes[i], in);
            }
        }
    }

    void store(long[] R, Insn in, int m) {
        int size = in.memSize, n = size * in.vecN;
        if (raceCheck) races.beginStore();
        int base = in.baseReg;
        int cnt = 0;
        boolean global = false;
        Allocation last = null;
        for (int x = m; x != 0; x &= x - 1) {
            int l = Integer.numberOfTrailingZeros(x);
            long addr = (base >= 0 ? R[base * 32 + l] : 0) + in.offset;
            resolve(in, l, addr, n, true);
            if (rAlloc != null) {
                if (initCheck) rAlloc.markInit(rOff, n);
                if (ordering != null) ordering.store(rAlloc, rOff, n, it.curWarp * 32 + l, in);
                last = rAlloc;
                global = true;
                addrs[cnt++] = addr;
            } else if (raceCheck && rSpace == Op.SHARED) {
                raceAccess(in, l, rOff, n, 1);
                if (races.sameInsnBytes != 0) sameInsnWrite(R, in, l, rOff, size);
            }
            byte[] arr = rArr;
            int off = rOff;
            if (in.vecN == 1) {
                write(arr, off, size, R[in.a * 32 + l]);
            } else {
                int[] v = in.vec;
                for (int k = 0; k < v.length; k++) {
                    if (v[k] >= 0) write(arr, off + k * size, size, R[v[k] * 32 + l]);
                }
            }
        }
        if (global) {
            if (footprint != null) addFootprint(cnt, n, sameAllocation(last, cnt, n), true);
            gStored += (long) cnt * n;
            sectorStats(cnt, n);
        }
    }

    /** Bytes requested and distinct 32-byte sectors of one warp-level access of {@code n} bytes per lane. */
    private void sectorStats(int cnt, int n) {
        requested += (long) cnt * n;
        int ns = 0;
        long[] s = sectors;
        for (int i = 0; i < cnt; i++) {
            long first = addrs[i] >>> 5, last = (addrs[i] + n - 1) >>> 5;
            for (long sec = first; sec <= last; sec++) {
                boolean seen = false;
                for (int k = ns - 1; k >= 0; k--) {
                    if (s[k] == sec) {
                        seen = true;
                        break;
                    }
                }
                if (!seen) s[ns++] = sec;
            }
        }
        sectorBytes += 32L * ns;
    }

    void atom(long[] R, Insn in, int m) {
        int size = in.memSize;
        int base = in.baseReg;
        int t = in.type;
        for (int x = m; x != 0; x &= x - 1) {
            int l = Integer.numberOfTrailingZeros(x);
            long addr = (base >= 0 ? R[base * 32 + l] : 0) + in.offset;
            resolve(in, l, addr, size, true);
            if (rAlloc != null) {
                if (initCheck) checkInit(in, l, addr, size);
                if (ordering != null) ordering.atomic(rAlloc, rOff, size, it.curWarp * 32 + l, in);
                if (footprint != null) footprint.add(rAlloc, rOff, rOff + size, true);
                gLoaded += size;
                gStored += size;
            } else if (rSpace != Op.SHARED) {
                throw it.fail(in, l, "atomic on " + spaceName(rSpace) + " memory");
            } else if (raceCheck) {
                raceAccess(in, l, rOff, size, 2);
            }
            atomics++;
            byte[] arr = rArr;
            int off = rOff;
            long old = read(arr, off, size);
            long b = R[in.a * 32 + l];
            long nv;
            switch (in.mode) {
                case Op.A_ADD:
                    if (t == PtxType.F32) nv = Float.floatToRawIntBits(Float.intBitsToFloat((int) old) + Float.intBitsToFloat((int) b));
                    else if (t == PtxType.F64) nv = Double.doubleToRawLongBits(Double.longBitsToDouble(old) + Double.longBitsToDouble(b));
                    else nv = old + b;
                    break;
                case Op.A_MIN: case Op.A_MAX: {
                    int cmp; // sign of (b - old)
                    if (t == PtxType.F32) cmp = Float.compare(Float.intBitsToFloat((int) b), Float.intBitsToFloat((int) old));
                    else if (t == PtxType.F64) cmp = Double.compare(Double.longBitsToDouble(b), Double.longBitsToDouble(old));
                    else if (PtxType.isSigned(t)) cmp = Long.compare(PtxType.ext(b, t), PtxType.ext(old, t));
                    else cmp = Long.compareUnsigned(PtxType.ext(b, t), PtxType.ext(old, t));
                    nv = (in.mode == Op.A_MIN ? cmp < 0 : cmp > 0) ? b : old;
                    break;
                }
                case Op.A_INC: {
                    long o = PtxType.ext(old, PtxType.U32), bb = PtxType.ext(b, PtxType.U32);
                    nv = o >= bb ? 0 : o + 1;
                    break;
                }
                case Op.A_DEC: {
                    long o = PtxType.ext(old, PtxType.U32), bb = PtxType.ext(b, PtxType.U32);
                    nv = (o == 0 || o > bb) ? bb : o - 1;
                    break;
                }
                case Op.A_CAS:
                    nv = PtxType.ext(old, t) == PtxType.ext(b, t) ? R[in.b * 32 + l] : old;
                    break;
                case Op.A_EXCH: nv = b; break;
                case Op.A_AND: nv = old & b; break;
                case Op.A_OR: nv = old | b; break;
                default: nv = old ^ b; break;
            }
            write(arr, off, size, nv);
            if (in.d >= 0) R[in.d * 32 + l] = PtxType.ext(old, t);
        }
    }
}
