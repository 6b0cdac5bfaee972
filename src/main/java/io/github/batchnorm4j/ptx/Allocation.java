package io.github.batchnorm4j.ptx;

/**
 * One live range of emulated global memory: its generic base address, bytes, and one bit per byte recording whether
 * the byte was written since allocation (host copies, memset and kernel stores set it; reads of unset bytes are
 * reported).
 */
final class Allocation {
    final long base;
    final long size;
    final byte[] data;
    final long[] init;
    final String label;
    boolean freed;

    // Per-launch state of the memory-ordering check (MemoryOrder), cleared when the launch ends.
    /** The writer of each 4-byte word in the running launch (0: not written; see MemoryOrder), or null. */
    int[] shadow;
    /** The word range [orderLo, orderHi) of {@link #shadow} that the running launch wrote. */
    int orderLo = Integer.MAX_VALUE, orderHi;
    /** One bit per 4-byte word read through ld.global.nc in the running launch, or null; and the first such read. */
    long[] ncRead;
    int ncLine, ncBlock, ncThread;
    /** Locations in this allocation that strong writes released in the running launch. */
    int syncVars;
    /** The MemoryOrder of the running launch once it touched this allocation. */
    Object orderOwner;
    /** Byte ranges {offset, length} that every launch must leave zero (EmulatedDevice#declareSelfResetting), or null. */
    java.util.List<long[]> zeroBetweenLaunches;

    Allocation(long base, long size, String label) {
        if (size > Integer.MAX_VALUE - 64) {
            throw new IllegalArgumentException("the emulator allocates at most 2 GiB per buffer, asked " + size + " bytes");
        }
        this.base = base;
        this.size = size;
        this.data = new byte[(int) size];
        this.init = new long[(int) ((size + 63) >>> 6)];
        this.label = label;
    }

    /** Marks bytes [off, off+n) as written. */
    void markInit(long off, long n) {
        int bit0 = (int) (off & 63);
        if (bit0 + n <= 64) { // one word: the common aligned access of 1..16 bytes
            init[(int) (off >>> 6)] |= (n == 64 ? -1L : ((1L << n) - 1)) << bit0;
            return;
        }
        long end = off + n;
        for (long i = off; i < end; ) {
            int w = (int) (i >>> 6);
            int bit = (int) (i & 63);
            if (bit == 0 && end - i >= 64) {
                init[w] = -1L;
                i += 64;
            } else {
                init[w] |= 1L << bit;
                i++;
            }
        }
    }

    /** The offset of the first unwritten byte in [off, off+n), or -1 when all were written. */
    long firstUninit(long off, int n) {
        int bit0 = (int) (off & 63);
        if (bit0 + n <= 64) {
            long want = (n == 64 ? -1L : ((1L << n) - 1)) << bit0;
            if ((init[(int) (off >>> 6)] & want) == want) return -1;
        }
        for (long i = off; i < off + n; i++) {
            if ((init[(int) (i >>> 6)] & (1L << (i & 63))) == 0) return i;
        }
        return -1;
    }
}
