package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.gpu.DeviceException;
import org.junit.jupiter.api.Test;

import static io.github.batchnorm4j.testing.Messages.assertMentions;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Shared-memory races between lanes of one warp (hand-written PTX through {@link PtxHarness}): a write by one lane
 * followed by another lane's access with no __syncwarp / .sync collective / barrier covering both, and two lanes of one
 * store instruction writing different values to the same word. The ordered and lane-local variants must pass.
 */
class WarpRaceTest {
    private static final String SHARED = ".shared .align 8 .b8 sm[512];";

    private static long[][] run(String body, int threads) {
        return PtxHarness.run(body, SHARED, new long[threads][0], EmulatorOptions.defaults());
    }

    private static String fails(String body, int threads) {
        return assertThrows(DeviceException.class, () -> run(body, threads)).getMessage();
    }

    /** Each lane writes sm[me], then [sync], then reads its warp neighbour's slot sm[me - lane + (lane + 1) % 32]. */
    private static String neighbour(String sync) {
        return "\tmov.u32 %r0, sm;\n\tshl.b32 %r1, %me, 2;\n\tadd.u32 %r2, %r0, %r1;\n"
                + "\tst.shared.u32 [%r2], %me;\n" + sync + "\n"
                + "\tadd.u32 %r3, %me, 1;\n\tand.b32 %r3, %r3, 31;\n\tand.b32 %r5, %me, -32;\n\tor.b32 %r3, %r3, %r5;\n"
                + "\tshl.b32 %r3, %r3, 2;\n\tadd.u32 %r3, %r0, %r3;\n"
                + "\tld.shared.u32 %r4, [%r3];\n\tcvt.u64.u32 %out0, %r4;\n";
    }

    @Test
    void readOfAnotherLanesWriteWithoutSyncIsARace() {
        String msg = fails(neighbour(""), 32);
        assertMentions(msg, "shared memory data race within a warp: read of shared address 0x4 already written by"
                + " thread (1,0,0) of the same warp", "missing __syncwarp?", "kernel t", "ld.shared.u32",
                "block (0,0,0)", "thread (0,0,0)", "line ");
    }

    @Test
    void syncwarpOrdersTheLanes() {
        for (String sync : new String[]{"\tbar.warp.sync -1;", "\tshfl.sync.bfly.b32 %r6, %me, 1, 31, -1;",
                "\tvote.sync.ballot.b32 %r6, 1, -1;", "\tmatch.any.sync.b32 %r6, %me, -1;", "\tbar.sync 0;"}) {
            long[][] out = assertDoesNotThrow(() -> run(neighbour(sync), 64), sync);
            for (int t = 0; t < 64; t++) assertEquals((t & ~31) + ((t + 1) & 31), out[t][0], sync);
        }
    }

    @Test
    void aSyncNotCoveringBothLanesDoesNotOrderThem() {
        // __syncwarp(lane < 16 ? 0xffff : 0xffff0000): each half is ordered within itself (every lane must be in its
        // own mask); lane 15 reads lane 16's slot
        String msg = fails(neighbour("\tsetp.lt.u32 %p6, %me, 16;\n\tselp.b32 %r7, 0xffff, 0xffff0000, %p6;\n"
                + "\tbar.warp.sync %r7;"), 32);
        assertMentions(msg, "read of shared address 0x40 already written by thread (16,0,0) of the same warp",
                "thread (15,0,0)");
    }

    @Test
    void writeAfterAnotherLanesWriteWithoutSyncIsARace() {
        // every lane writes sm[me], then each overwrites its neighbour's slot
        String body = "\tmov.u32 %r0, sm;\n\tshl.b32 %r1, %me, 2;\n\tadd.u32 %r2, %r0, %r1;\n"
                + "\tst.shared.u32 [%r2], %me;\n\tst.shared.u32 [%r2+4], %me;\n";
        assertMentions(fails(body, 32), "write to shared address 0x4 already written by thread (1,0,0) of the same"
                + " warp", "thread (0,0,0)", "st.shared.u32 [%r2+4]");
    }

    @Test
    void atomicOnAnotherLanesPlainWriteWithoutSyncIsARace() {
        String body = "\tmov.u32 %r0, sm;\n\tsetp.eq.u32 %p0, %me, 31;\n"
                + "\t@%p0 st.shared.u32 [%r0], %me;\n\tatom.shared.add.u32 %r3, [%r0], 1;\n";
        assertMentions(fails(body, 32), "atomic update of shared address 0x0 already written by thread (31,0,0) of"
                + " the same warp", "thread (0,0,0)");
    }

    @Test
    void laneLocalReuseIsFine() {
        String body = "\tmov.u32 %r0, sm;\n\tshl.b32 %r1, %me, 2;\n\tadd.u32 %r2, %r0, %r1;\n"
                + "\tst.shared.u32 [%r2], %me;\n\tld.shared.u32 %r3, [%r2];\n\tadd.u32 %r3, %r3, 5;\n"
                + "\tst.shared.u32 [%r2], %r3;\n\tld.shared.u32 %r4, [%r2];\n\tcvt.u64.u32 %out0, %r4;\n";
        long[][] out = assertDoesNotThrow(() -> run(body, 64));
        for (int t = 0; t < 64; t++) assertEquals(t + 5, out[t][0]);
    }

    @Test
    void sameInstructionWritesOfDifferentValuesAreARace() {
        // all 32 lanes store their own lane id to sm[0] in one instruction: which value lands is undefined
        String body = "\tmov.u32 %r0, sm;\n\tst.shared.u32 [%r0], %me;\n";
        assertMentions(fails(body, 32), "shared memory data race within a warp: write to shared address 0x0 also"
                + " written with a different value by thread (0,0,0) of the same warp in this same instruction",
                "write-write conflict", "st.shared.u32 [%r0], %me", "thread (1,0,0)", "kernel t", "block (0,0,0)");
    }

    @Test
    void sameInstructionWritesDifferingInOneByteOfAVectorAreARace() {
        // st.v2.u32: lanes 0 and 1 both write sm[0..8); the second word differs (lane id), the first is equal
        String body = "\tmov.u32 %r0, sm;\n\tsetp.lt.u32 %p0, %me, 2;\n\tmov.u32 %r1, 7;\n"
                + "\t@%p0 st.shared.v2.u32 [%r0], {%r1, %me};\n";
        assertMentions(fails(body, 32), "write to shared address 0x4 also written with a different value by thread"
                + " (0,0,0)", "thread (1,0,0)");
    }

    @Test
    void sameInstructionWritesOfEqualValuesAreAccepted() {
        // a broadcast store (every lane of a warp writes 7 to its warp's word), then __syncwarp, then every lane reads it
        String body = "\tmov.u32 %r0, sm;\n\tshr.u32 %r4, %me, 5;\n\tshl.b32 %r4, %r4, 4;\n\tadd.u32 %r0, %r0, %r4;\n\tmov.u32 %r1, 7;\n\tst.shared.u32 [%r0], %r1;\n"
                + "\tst.shared.v2.u32 [%r0+8], {%r1, %r1};\n\tbar.warp.sync -1;\n"
                + "\tld.shared.u32 %r2, [%r0];\n\tld.shared.u32 %r3, [%r0+12];\n\tadd.u32 %r2, %r2, %r3;\n"
                + "\tcvt.u64.u32 %out0, %r2;\n";
        long[][] out = assertDoesNotThrow(() -> run(body, 64));
        for (int t = 0; t < 64; t++) assertEquals(14, out[t][0]);
    }

    @Test
    void equalValueBroadcastWithoutSyncBeforeTheReadIsStillARace() {
        // the stores agree, but the readers are not ordered after the other lanes' stores
        String body = "\tmov.u32 %r0, sm;\n\tmov.u32 %r1, 7;\n\tst.shared.u32 [%r0], %r1;\n"
                + "\tld.shared.u32 %r2, [%r0];\n";
        assertMentions(fails(body, 32), "read of shared address 0x0 already written by thread (31,0,0) of the same warp",
                "thread (0,0,0)");
    }

    @Test
    void raceCheckOffAcceptsEverything() {
        assertDoesNotThrow(() -> PtxHarness.run("\tmov.u32 %r0, sm;\n\tst.shared.u32 [%r0], %me;\n", SHARED,
                new long[32][0], EmulatorOptions.defaults().withRaceCheck(false)));
    }
}
