package io.github.batchnorm4j.ptx;

/**
 * Special registers ({@code %tid.x}, ...) occupy fixed register indices in every function; each warp fills them when
 * it starts, so {@code mov.u32 %r1, %tid.x} is an ordinary register move.
 */
final class Special {
    private Special() {
    }

    static final String[] NAMES = {"%tid.x", "%tid.y", "%tid.z", "%ntid.x", "%ntid.y", "%ntid.z",
            "%ctaid.x", "%ctaid.y", "%ctaid.z", "%nctaid.x", "%nctaid.y", "%nctaid.z",
            "%laneid", "%warpid", "%nwarpid", "%smid", "%nsmid", "%gridid",
            "%lanemask_eq", "%lanemask_le", "%lanemask_lt", "%lanemask_ge", "%lanemask_gt",
            "%dynamic_smem_size", "%total_smem_size", "%warpsize"};
    static final int TID_X = 0, NTID_X = 3, CTAID_X = 6, NCTAID_X = 9, LANEID = 12, WARPID = 13, NWARPID = 14,
            SMID = 15, NSMID = 16, GRIDID = 17, LANEMASK_EQ = 18, DYN_SMEM = 23, TOTAL_SMEM = 24, WARPSIZE = 25;
    static final int COUNT = NAMES.length;

    /** The index of a special register name, or -1. Accepts {@code %tid} as {@code %tid.x}. */
    static int of(String name) {
        for (int i = 0; i < COUNT; i++) {
            if (NAMES[i].equals(name)) return i;
        }
        switch (name) {
            case "%tid": return TID_X;
            case "%ntid": return NTID_X;
            case "%ctaid": return CTAID_X;
            case "%nctaid": return NCTAID_X;
            case "WARP_SZ": return WARPSIZE;
            default: return -1;
        }
    }
}
