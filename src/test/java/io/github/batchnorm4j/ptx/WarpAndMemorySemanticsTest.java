package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.gpu.DeviceException;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static io.github.batchnorm4j.ptx.PtxHarness.asF;
import static io.github.batchnorm4j.ptx.PtxHarness.f;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** shfl (four modes, widths via the clamp operand), vote, bar.red, atomics, generic/local addressing. */
class WarpAndMemorySemanticsTest {

    private static long[][] inputs(int n, long seed) {
        Random r = new Random(seed);
        long[][] in = new long[n][];
        for (int t = 0; t < n; t++) in[t] = new long[]{r.nextInt(), r.nextInt(64), f((float) r.nextGaussian()), 0};
        return in;
    }

    /** CUDA's documented __shfl_*_sync(mask, v, x, width) semantics, written independently of the PTX pseudo-code. */
    private static long[] shflRef(long[] v, int lane, int mode, int x, int width) {
        int seg = lane & ~(width - 1);
        int src;
        boolean ok;
        switch (mode) {
            case 0: src = lane - x; ok = src >= seg; break;                 // up
            case 1: src = lane + x; ok = src < seg + width; break;          // down
            case 2: src = lane ^ x; ok = src < seg + width; break;          // xor: later groups are out of reach
            default: src = seg + (x & (width - 1)); ok = true; break;       // idx
        }
        return new long[]{ok ? v[src] : v[lane], ok ? 1 : 0};
    }

    @Test
    void shuffleModesAndWidths() {
        int n = 64;
        long[][] in = inputs(n, 1);
        for (int width : new int[]{32, 8}) {
            int seg = (32 - width) << 8;
            String body = "cvt.u32.u64 %r0, %in0; cvt.u32.u64 %r1, %in1;"
                    + "shfl.sync.up.b32 %r2|%p0, %r0, 3, " + seg + ", -1; selp.u32 %r3, 1, 0, %p0; mov.b64 %out0, {%r2, %r3};"
                    + "shfl.sync.down.b32 %r2|%p0, %r0, 5, " + (seg | 31) + ", -1; selp.u32 %r3, 1, 0, %p0; mov.b64 %out1, {%r2, %r3};"
                    + "shfl.sync.bfly.b32 %r2|%p0, %r0, 9, " + (seg | 31) + ", -1; selp.u32 %r3, 1, 0, %p0; mov.b64 %out2, {%r2, %r3};"
                    + "shfl.sync.idx.b32 %r2|%p0, %r0, %r1, " + (seg | 31) + ", -1; selp.u32 %r3, 1, 0, %p0; mov.b64 %out3, {%r2, %r3};";
            long[][] out = PtxHarness.run(body, in);
            for (int t = 0; t < n; t++) {
                int warp = t / 32, lane = t % 32;
                long[] v = new long[32];
                for (int l = 0; l < 32; l++) v[l] = (int) in[warp * 32 + l][0];
                int[] xs = {3, 5, 9, (int) in[t][1]};
                for (int mode = 0; mode < 4; mode++) {
                    long[] e = shflRef(v, lane, mode, xs[mode], width);
                    assertEquals((int) e[0], (int) out[t][mode], "shfl mode " + mode + " width " + width + " lane " + lane);
                    assertEquals(e[1], out[t][mode] >>> 32, "shfl predicate mode " + mode + " width " + width + " lane " + lane);
                }
            }
        }
    }

    @Test
    void voteAndBarrierReduction() {
        int n = 64;
        long[][] in = inputs(n, 2);
        String body = "and.b64 %rd0, %in0, 1; setp.ne.s64 %p0, %rd0, 0; setp.lt.u32 %p1, %me, 40;"
                + "vote.sync.ballot.b32 %r0, %p0, -1; vote.sync.all.pred %p2, %p1, -1; vote.sync.any.pred %p3, !%p1, -1;"
                + "vote.sync.uni.pred %p4, %p1, -1;"
                + "selp.u32 %r1, 1, 0, %p2; selp.u32 %r2, 2, 0, %p3; or.b32 %r1, %r1, %r2; selp.u32 %r2, 4, 0, %p4; or.b32 %r1, %r1, %r2;"
                + "mov.b64 %out0, {%r0, %r1};"
                + "bar.red.popc.u32 %r3, 0, %p0; bar.red.and.pred %p5, 0, %p1; bar.red.or.pred %p6, 0, !%p1;"
                + "selp.u32 %r4, 1, 0, %p5; selp.u32 %r5, 2, 0, %p6; or.b32 %r4, %r4, %r5; mov.b64 %out1, {%r3, %r4};"
                + "activemask.b32 %r6; @%p1 activemask.b32 %r6; cvt.u64.u32 %out2, %r6;";
        long[][] out = PtxHarness.run(body, in);
        int popc = 0;
        for (int t = 0; t < n; t++) popc += (int) (in[t][0] & 1);
        for (int t = 0; t < n; t++) {
            int warp = t / 32;
            int ballot = 0;
            boolean all = true, any = false;
            for (int l = 0; l < 32; l++) {
                int u = warp * 32 + l;
                if ((in[u][0] & 1) != 0) ballot |= 1 << l;
                all &= u < 40;
                any |= u >= 40;
            }
            boolean uni = all || !any; // p1 = tid < 40 is uniform iff all or none of the warp
            assertEquals(ballot, (int) out[t][0], "ballot");
            assertEquals((all ? 1 : 0) | (any ? 2 : 0) | (uni ? 4 : 0), (int) (out[t][0] >>> 32), "all/any/uni warp " + warp);
            assertEquals(popc, (int) out[t][1], "bar.red.popc");
            assertEquals(0 | 2, (int) (out[t][1] >>> 32), "bar.red.and/or");
            assertEquals(-1, (int) out[t][2], "activemask of a converged warp");
        }
    }

    private static final String DECLS = ".shared .align 4 .b8 sbuf[64];\n.global .align 8 .b8 gbuf[16];\n";

    @Test
    void atomicsOnSharedAndGlobalInThreadOrder() {
        int n = 64;
        long[][] in = inputs(n, 3);
        String body = "setp.eq.u32 %p7, %me, 0;"
                + "@%p7 st.shared.v4.u32 [sbuf], {0, 0, -2147483648, 7};"
                + "@%p7 st.shared.v2.u32 [sbuf+16], {-1, 0};"
                + "bar.sync 0;"
                + "cvt.u32.u64 %r0, %in0; cvt.u32.u64 %r1, %in2; mov.b32 %f0, %r1;"
                + "atom.shared.add.u32 %r2, [sbuf], 1; atom.shared.inc.u32 %r3, [sbuf+4], 9; mov.b64 %out0, {%r2, %r3};"
                + "atom.shared.max.s32 %r2, [sbuf+8], %r0; atom.shared.cas.b32 %r3, [sbuf+12], %me, 100; mov.b64 %out1, {%r2, %r3};"
                + "atom.global.add.f32 %f1, [gbuf], %f0; atom.shared.min.u32 %r2, [sbuf+16], %r0; mov.b32 %r3, %f1; mov.b64 %out2, {%r2, %r3};"
                + "atom.shared.exch.b32 %r4, [sbuf+20], %me; red.global.add.u64 [gbuf+8], 3;"
                + "bar.sync 0;"
                + "ld.shared.u32 %r5, [sbuf+20]; ld.global.u64 %rd0, [gbuf+8]; cvt.u32.u64 %r6, %rd0; mov.b64 %out3, {%r4, %r5};"
                + "cvt.u64.u32 %rd1, %r6;";
        long[][] out = PtxHarness.run(body, DECLS, in, EmulatorOptions.defaults());
        int inc = 0, max = Integer.MIN_VALUE, cas = 7, min = -1, exch = 0;
        float sum = 0f;
        for (int t = 0; t < n; t++) { // warps run in order, lanes in order within an atomic instruction
            assertEquals(t, (int) out[t][0], "atom.add old");
            assertEquals(inc, (int) (out[t][0] >>> 32), "atom.inc old");
            inc = inc >= 9 ? 0 : inc + 1;
            assertEquals(max, (int) out[t][1], "atom.max.s32 old");
            max = Math.max(max, (int) in[t][0]);
            assertEquals(cas, (int) (out[t][1] >>> 32), "atom.cas old");
            if (cas == t) cas = 100;
            assertEquals(Float.floatToRawIntBits(sum), (int) (out[t][2] >>> 32), "atom.add.f32 old");
            sum += asF(in[t][2]);
            assertEquals(min, (int) out[t][2], "atom.min.u32 old");
            if (Integer.compareUnsigned((int) in[t][0], min) < 0) min = (int) in[t][0];
            assertEquals(exch, (int) out[t][3], "atom.exch old");
            exch = t;
        }
        for (int t = 0; t < n; t++) assertEquals(63, (int) (out[t][3] >>> 32), "last exchanged value");
    }

    @Test
    void genericAndLocalAddressing() {
        int n = 40;
        long[][] in = inputs(n, 4);
        String body = ".local .align 8 .b8 depot[32];"
                + "mov.u64 %rd0, depot; cvta.local.u64 %rd1, %rd0;"   // generic pointer to this thread's local memory
                + "st.u64 [%rd1+8], %in0; st.local.u64 [depot+16], %in1; ld.local.u64 %out0, [%rd0+8]; ld.u64 %out1, [%rd1+16];"
                + "mov.u32 %r0, sbuf; cvt.u64.u32 %rd2, %r0; cvta.shared.u64 %rd3, %rd2;"
                + "mul.wide.u32 %rd4, %me, 4; add.s64 %rd5, %rd3, %rd4;" // generic pointer into shared memory (by warp-own slots)
                + "setp.lt.u32 %p0, %me, 16; @%p0 st.u32 [%rd5], %me; add.s64 %rd7, %rd2, %rd4; @%p0 ld.shared.u32 %r1, [%rd7+-0]; @%p0 cvt.u64.u32 %out2, %r1;"
                + "cvta.to.shared.u64 %rd6, %rd3; mov.b64 %out3, %rd6;";
        long[][] out = PtxHarness.run(body, ".shared .align 4 .b8 sbuf[64];\n", in, EmulatorOptions.defaults());
        for (int t = 0; t < n; t++) {
            assertEquals(in[t][0], out[t][0], "local through generic store");
            assertEquals(in[t][1], out[t][1], "local through generic load");
            if (t < 16) assertEquals(t, out[t][2], "shared through generic store");
            assertEquals(0, out[t][3], "cvta.to.shared inverts cvta.shared");
        }
    }

    @Test
    void unsupportedInstructionFailsWithNameAndLine() {
        DeviceException e = assertThrows(DeviceException.class,
                () -> PtxHarness.run("mov.u32 %r0, 1; addc.u32 %r1, %r0, %r0;", new long[1][4]));
        assertTrue(e.getMessage().contains("unsupported instruction 'addc.u32'"), e.getMessage());
        assertTrue(e.getMessage().contains("line 34"), e.getMessage());
        assertTrue(e.getMessage().contains("kernel t"), e.getMessage());
    }

    @Test
    void shuffleWithUnconvergedMemberFails() {
        DeviceException e = assertThrows(DeviceException.class, () -> PtxHarness.run(
                "setp.lt.u32 %p0, %me, 16; @%p0 bra SKIP; cvt.u32.u64 %r0, %in0; shfl.sync.idx.b32 %r1, %r0, 0, 31, -1;"
                        + "SKIP: mov.u32 %r2, 0;", new long[32][4]));
        assertTrue(e.getMessage().contains("shfl.sync member mask 0xffffffff names lane 0 which is not converged"),
                e.getMessage());
    }

    @Test
    void spinWaitIsReportedAsAHangNotRunForever() {
        // thread 0 waits for a flag nobody sets: a hang on a GPU as well, reported once the budget is spent
        String body = "setp.ne.u32 %p0, %me, 0; @%p0 bra DONE; SPIN: ld.volatile.global.u32 %r0, [%a0]; "
                + "setp.eq.u32 %p1, %r0, 12345; @!%p1 bra SPIN; DONE: mov.u32 %r1, 0;";
        DeviceException e = assertThrows(DeviceException.class, () -> PtxHarness.run(body, "", new long[32][4],
                EmulatorOptions.defaults().withMaxBlockInstructions(100_000)));
        assertTrue(e.getMessage().contains("more than 100000 thread-instructions"), e.getMessage());
        assertTrue(e.getMessage().contains("spin-wait"), e.getMessage());
    }

    @Test
    void matchAndSad() {
        int n = 32;
        long[][] in = inputs(n, 9);
        String body = "cvt.u32.u64 %r0, %in1; and.b32 %r0, %r0, 3; match.any.sync.b32 %r1, %r0, -1;"
                + "match.all.sync.b32 %r2|%p0, %r0, -1; selp.u32 %r3, 1, 0, %p0; mov.b64 %out0, {%r1, %r2};"
                + "cvt.u64.u32 %out1, %r3; cvt.u32.u64 %r4, %in0; sad.s32 %r5, %r4, %r0, 7; sad.u32 %r6, %r4, %r0, 7;"
                + "mov.b64 %out2, {%r5, %r6};";
        long[][] out = PtxHarness.run(body, in);
        for (int t = 0; t < n; t++) {
            int mine = (int) in[t][1] & 3, same = 0;
            for (int l = 0; l < 32; l++) if (((int) in[l][1] & 3) == mine) same |= 1 << l;
            assertEquals(same, (int) out[t][0], "match.any");
            boolean all = same == -1;
            assertEquals(all ? -1 : 0, (int) (out[t][0] >>> 32), "match.all");
            assertEquals(all ? 1 : 0, out[t][1], "match.all predicate");
            int a = (int) in[t][0];
            assertEquals(7 + Math.abs(a - mine), (int) out[t][2], "sad.s32");
            long ua = a & 0xFFFFFFFFL;
            assertEquals((int) (7 + Math.abs(ua - mine)), (int) (out[t][2] >>> 32), "sad.u32");
        }
    }

    @Test
    void lanesOfOneWarpAtDifferentBarriersAreReported() {
        String body = "setp.lt.u32 %p0, %me, 16; @%p0 bra A; bar.sync 0; bra B; A: bar.sync 0; B: mov.u32 %r0, 1;";
        DeviceException e = assertThrows(DeviceException.class, () -> PtxHarness.run(body, new long[64][4]));
        assertTrue(e.getMessage().contains("barrier divergence: lanes of one warp wait at different barriers"),
                e.getMessage());
        // the same code with the branch uniform per warp is fine: warps may use different bar.sync sites
        PtxHarness.run("setp.lt.u32 %p0, %me, 32; @%p0 bra A; bar.sync 0; bra B; A: bar.sync 0; B: mov.u32 %r0, 1;",
                new long[64][4]);
    }

    @Test
    void fullMaskInAPartialLastWarpIsAccepted() {
        int n = 40; // warp 1 has 8 lanes
        long[][] in = inputs(n, 10);
        long[][] out = PtxHarness.run("cvt.u32.u64 %r0, %in0; shfl.sync.bfly.b32 %r1, %r0, 1, 31, -1; cvt.u64.u32 %out0, %r1;", in);
        for (int t = 0; t < n; t++) assertEquals((int) in[t ^ 1][0], (int) out[t][0], "bfly lane " + t);
    }

    @Test
    void namedBarrierWithThreadCountAndAtomicDec() {
        // warp 0 syncs alone on barrier 1 (count 32) while warp 1 skips it; then all 64 meet at barrier 0
        String body = "setp.lt.u32 %p0, %me, 32; @!%p0 bra SKIP; bar.sync 1, 32; SKIP: bar.sync 0;"
                + "setp.eq.u32 %p1, %me, 0; @%p1 st.shared.u32 [sbuf], 5; bar.sync 0;"
                + "atom.shared.dec.u32 %r0, [sbuf], 5; cvt.u64.u32 %out0, %r0;";
        long[][] out = PtxHarness.run(body, ".shared .align 4 .b8 sbuf[64];\n", new long[64][4], EmulatorOptions.defaults());
        int v = 5;
        for (int t = 0; t < 64; t++) {
            assertEquals(v, (int) out[t][0], "atom.dec old value, thread " + t);
            v = (v == 0 || v > 5) ? 5 : v - 1;
        }
    }
}
