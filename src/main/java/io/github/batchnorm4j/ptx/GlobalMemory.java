package io.github.batchnorm4j.ptx;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The emulated global address space: live allocations at 256-byte aligned generic addresses, never reused, with a
 * 4 KiB gap between neighbours so that small out-of-bounds accesses land in no allocation and are reported.
 *
 * <p>The generic 64-bit address space is laid out as on the hardware in spirit: a shared-memory window at
 * {@link #SHARED_WINDOW} (32 bits wide, holding each block's own shared memory), a local window at
 * {@link #LOCAL_WINDOW} (each thread's own local memory), and global memory from {@link #GLOBAL_BASE} up.
 */
final class GlobalMemory {
    static final long SHARED_WINDOW = 1L << 40;
    static final long LOCAL_WINDOW = 2L << 40;
    static final long WINDOW_SIZE = 1L << 32;
    static final long GLOBAL_BASE = 1L << 44;
    private static final long GAP = 4096;

    private Allocation[] live = new Allocation[16];
    private long[] bases = new long[16];
    private int count;
    private long next = GLOBAL_BASE;
    private final List<Allocation> freedRecent = new ArrayList<>();
    private Allocation last;

    Allocation allocate(long bytes, String label) {
        Allocation a = new Allocation(next, bytes, label);
        next += (bytes + GAP + 255) & ~255L;
        if (count == live.length) {
            live = Arrays.copyOf(live, count * 2);
            bases = Arrays.copyOf(bases, count * 2);
        }
        live[count] = a; // addresses only grow, so the arrays stay sorted
        bases[count] = a.base;
        count++;
        return a;
    }

    void free(Allocation a) {
        int i = Arrays.binarySearch(bases, 0, count, a.base);
        if (i < 0 || live[i] != a) return;
        System.arraycopy(live, i + 1, live, i, count - i - 1);
        System.arraycopy(bases, i + 1, bases, i, count - i - 1);
        count--;
        live[count] = null;
        a.freed = true;
        if (last == a) last = null;
        freedRecent.add(a);
        if (freedRecent.size() > 64) freedRecent.remove(0);
    }

    /** The live allocation holding [addr, addr+n), or null. */
    Allocation find(long addr, int n) {
        Allocation a = last;
        if (a != null && addr >= a.base && addr + n <= a.base + a.size) return a;
        int i = Arrays.binarySearch(bases, 0, count, addr);
        if (i < 0) i = -i - 2;
        if (i < 0) return null;
        a = live[i];
        if (addr >= a.base && addr + n <= a.base + a.size) {
            last = a;
            return a;
        }
        return null;
    }

    /** Describes where an address that hit no live allocation is, for messages. */
    String describe(long addr) {
        int i = Arrays.binarySearch(bases, 0, count, addr);
        if (i < 0) i = -i - 2;
        if (i >= 0) {
            Allocation a = live[i];
            if (addr < a.base + a.size + GAP) {
                return (addr - a.base - a.size) + " bytes past the end of " + a.label + " (at 0x"
                        + Long.toHexString(a.base) + ")";
            }
        }
        for (Allocation f : freedRecent) {
            if (addr >= f.base && addr < f.base + f.size) return "inside freed " + f.label;
        }
        if (i + 1 < count && i + 1 >= 0) {
            Allocation a = live[i + 1];
            if (a.base - addr <= GAP) return (a.base - addr) + " bytes before the start of " + a.label;
        }
        return "in no allocation";
    }

    List<Allocation> liveAllocations() {
        return Arrays.asList(Arrays.copyOf(live, count));
    }
}
