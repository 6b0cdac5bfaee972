package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.gpu.DeviceException;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A lane that executes shfl/vote/bar.warp.sync must be in its own member mask (the PTX ISA leaves anything else
 * undefined). Found by mutation testing: {@code mov.u32 %r, -1 -> -2} on the mask of the kernels' warp reductions
 * (lane 0, the one whose sum counts, left out) passed every test.
 */
class MemberMaskTest {
    private static long[][] lanes(int n) {
        long[][] in = new long[n][1];
        for (int t = 0; t < n; t++) in[t][0] = t + 1;
        return in;
    }

    @Test
    void aLaneOutsideItsOwnMemberMaskFails() {
        DeviceException e = assertThrows(DeviceException.class, () -> PtxHarness.run(
                "cvt.u32.u64 %r0, %in0; shfl.sync.down.b32 %r1|%p0, %r0, 1, 31, -2; cvt.u64.u32 %out0, %r1;", lanes(32)));
        for (String s : new String[]{"shfl.sync member mask 0xfffffffe leaves out lane 0", "thread (0,0,0)"}) {
            assertTrue(e.getMessage().contains(s), "'" + s + "' missing from: " + e.getMessage());
        }
        assertThrows(DeviceException.class, () -> PtxHarness.run(
                "cvt.u32.u64 %r0, %in0; vote.sync.any.pred %p1, 1, 0x7fffffff; selp.u64 %out0, 1, 0, %p1;", lanes(32)),
                "vote.sync: lane 31 outside 0x7fffffff");
    }

    @Test
    void aMaskOfExactlyTheExecutingLanesRuns() {
        // Lanes 0-15 of a 16-thread block with mask 0xffff: each reads its neighbour's value.
        long[][] out = PtxHarness.run("cvt.u32.u64 %r0, %in0; shfl.sync.down.b32 %r1|%p0, %r0, 1, 31, 0xffff; "
                + "cvt.u64.u32 %out0, %r1;", lanes(16));
        assertEquals(2, out[0][0]);
        assertEquals(16, out[14][0]);
    }
}
