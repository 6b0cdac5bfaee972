package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DeviceException;
import io.github.batchnorm4j.gpu.DeviceModule;
import io.github.batchnorm4j.gpu.Dim3;
import io.github.batchnorm4j.gpu.KernelArgs;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

import static io.github.batchnorm4j.testing.Messages.assertMentions;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * The memory-ordering model ({@link MemoryOrder}) on a hand-written last-block kernel: every block's thread 0 stores
 * one word, the block fences and counts itself with an atomic, and every thread of the last block reads one word of
 * another block. Each piece of the protocol is replaced in turn (fence deleted or CTA-scoped, L1-cached or .nc load,
 * CTA-scoped atomic, counter reset removed): the correct forms must run and give the right words, each broken one must
 * fail naming the kernel, the PTX line, both blocks and the address, and only the ordering check may catch it.
 */
class MemoryOrderingTest {
    private static final int GRID = 6, BLOCK = 64;

    /** The last-block kernel with its replaceable pieces as placeholders. */
    private static final String TEMPLATE = """
            .version 8.0
            .target sm_75
            .address_size 64
            .shared .align 4 .u32 last_sh;

            .visible .entry lastblock(
            	.param .u64 p_data,
            	.param .u64 p_counter,
            	.param .u64 p_out
            )
            {
            	.reg .b64 %rd<12>;
            	.reg .b32 %r<12>;
            	.reg .pred %p<4>;
            	ld.param.u64 %rd1, [p_data];
            	ld.param.u64 %rd2, [p_counter];
            	ld.param.u64 %rd3, [p_out];
            	mov.u32 %r1, %tid.x;
            	mov.u32 %r2, %ctaid.x;
            	mov.u32 %r3, %nctaid.x;
            	setp.ne.u32 %p1, %r1, 0;
            	mul.wide.u32 %rd4, %r2, 4;
            	add.s64 %rd5, %rd1, %rd4;
            	add.u32 %r4, %r2, 100;
            	@!%p1 st.global.u32 [%rd5], %r4;
            	WFENCE
            	bar.sync 0;
            	@%p1 bra $L_skip;
            	ATOM %r5, [%rd2], 1;
            	sub.u32 %r6, %r3, 1;
            	setp.eq.u32 %p2, %r5, %r6;
            	selp.u32 %r7, 1, 0, %p2;
            	st.shared.u32 [last_sh], %r7;
            	@!%p2 bra $L_skip;
            	RESET
            $L_skip:
            	bar.sync 0;
            	ld.shared.u32 %r8, [last_sh];
            	setp.eq.u32 %p3, %r8, 0;
            	@%p3 bra $L_done;
            	RFENCE
            	setp.ge.u32 %p3, %r1, %r3;
            	@%p3 bra $L_done;
            	mul.wide.u32 %rd6, %r1, 4;
            	add.s64 %rd7, %rd1, %rd6;
            	LOAD %r9, [%rd7];
            	add.s64 %rd8, %rd3, %rd6;
            	st.global.u32 [%rd8], %r9;
            $L_done:
            	ret;
            }
            """;

    private static final Map<String, String> CORRECT = Map.of("WFENCE", "membar.gl;", "ATOM", "atom.global.add.u32",
            "RESET", "st.global.u32 [%rd2], 0;", "RFENCE", "membar.gl;", "LOAD", "ld.global.cg.u32");

    private static String kernel(String... replacements) {
        Map<String, String> r = new LinkedHashMap<>(CORRECT);
        for (int i = 0; i < replacements.length; i += 2) r.put(replacements[i], replacements[i + 1]);
        String ptx = TEMPLATE;
        for (Map.Entry<String, String> e : r.entrySet()) ptx = ptx.replace(e.getKey(), e.getValue());
        return ptx;
    }

    /** The PTX line (1-based) holding {@code text}. */
    private static int lineOf(String ptx, String text) {
        String[] lines = ptx.split("\n", -1);
        for (int i = 0; i < lines.length; i++) if (lines[i].contains(text)) return i + 1;
        throw new AssertionError(text + " not in the kernel");
    }

    /** Runs the kernel; returns out (the words the last block read) and checks the counter came back to zero. */
    private static int[] run(String ptx, EmulatorOptions opt, boolean declareCounter) {
        try (EmulatedDevice dev = new EmulatedDevice(opt); DeviceBuffer data = dev.allocate(4L * GRID);
             DeviceBuffer counter = dev.allocate(4); DeviceBuffer out = dev.allocate(4L * GRID)) {
            DeviceModule m = dev.loadModule("ordering.ptx", ptx);
            dev.memset(counter.pointer(), (byte) 0, 4, dev.defaultStream());
            dev.memset(out.pointer(), (byte) 0xFF, 4L * GRID, dev.defaultStream());
            if (declareCounter) dev.declareSelfResetting(counter.pointer(), 4);
            dev.launch(m.kernel("lastblock"), Dim3.of(GRID), Dim3.of(BLOCK), 0, dev.defaultStream(),
                    new KernelArgs().ptr(data).ptr(counter).ptr(out));
            int[] got = new int[GRID];
            dev.copyToHost(out.pointer(), got, 0, GRID, dev.defaultStream());
            return got;
        }
    }

    private static int[] expected() {
        int[] e = new int[GRID];
        for (int b = 0; b < GRID; b++) e[b] = b + 100;
        return e;
    }

    @ParameterizedTest
    @ValueSource(strings = {"membar.gl;|membar.gl;|ld.global.cg.u32", "membar.sys;|fence.sc.gpu;|ld.volatile.global.u32",
            "fence.acq_rel.gpu;|fence.acq_rel.sys;|ld.relaxed.gpu.global.u32",
            "fence.sc.sys;|membar.gl;|ld.acquire.gpu.global.u32", "membar.gl;|fence.sc.gpu;|ld.global.cv.u32"})
    void orderedFormsRunAndReadEveryBlocksWord(String forms) {
        String[] f = forms.split("\\|");
        String ptx = kernel("WFENCE", f[0], "RFENCE", f[1], "LOAD", f[2]);
        for (long seed : new long[]{1, 2, 3}) {
            assertArrayEquals(expected(), run(ptx, EmulatorOptions.defaults().withBlockOrderSeed(seed), true), forms);
        }
    }

    @Test
    void acquireReleaseAtomicNeedsNoSeparateFences() {
        String ptx = kernel("WFENCE", "", "RFENCE", "", "ATOM", "atom.acq_rel.gpu.global.add.u32");
        assertArrayEquals(expected(), run(ptx, EmulatorOptions.defaults(), true));
    }

    /** A broken variant fails with the ordering check and names kernel, line, blocks and address; without it, it runs. */
    private static DeviceException assertOnlyOrderingCatches(String ptx) {
        DeviceException e = assertThrows(DeviceException.class, () -> run(ptx, EmulatorOptions.defaults(), true));
        assertDoesNotThrow(() -> run(ptx, EmulatorOptions.defaults().withOrderCheck(false), true));
        assertMentions(e.getMessage(), "kernel lastblock (module ordering.ptx)", "block (", "global address 0x",
                "of buffer #");
        return e;
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "membar.cta;", "fence.acq_rel.cta;", "fence.proxy.alias;"})
    void writerWithoutGpuFenceIsCaught(String fence) {
        String ptx = kernel("WFENCE", fence);
        DeviceException e = assertOnlyOrderingCatches(ptx);
        assertMentions(e.getMessage(), "line " + lineOf(ptx, "ld.global.cg.u32"), "executed no gpu-scope fence",
                "thread (0,0,0) stored (line " + lineOf(ptx, "st.global.u32 [%rd5]") + ")", "writer block (",
                "reader block (");
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "membar.cta;"})
    void readerWithoutFenceAfterTheAtomicIsCaught(String fence) {
        String ptx = kernel("RFENCE", fence);
        DeviceException e = assertOnlyOrderingCatches(ptx);
        assertMentions(e.getMessage(), "line " + lineOf(ptx, "ld.global.cg.u32"),
                "atomic at line " + lineOf(ptx, "atom.global.add.u32"), "not ordered after it by a gpu-scope fence");
    }

    @Test
    void loadThatMayHitL1IsCaught() {
        String ptx = kernel("LOAD", "ld.global.u32");
        DeviceException e = assertOnlyOrderingCatches(ptx);
        assertMentions(e.getMessage(), "line " + lineOf(ptx, "ld.global.u32 %r9"), "stale L1 line", "writer block (");
    }

    @Test
    void nonCoherentLoadOfWrittenBytesIsCaught() {
        String ptx = kernel("LOAD", "ld.global.nc.u32");
        DeviceException e = assertOnlyOrderingCatches(ptx);
        assertMentions(e.getMessage(), "line " + lineOf(ptx, "ld.global.nc.u32"), "ld.global.nc of global address",
                "read-only for the whole kernel");
    }

    @Test
    void ctaScopedAtomicSynchronizesNothing() {
        String ptx = kernel("ATOM", "atom.cta.global.add.u32");
        DeviceException e = assertOnlyOrderingCatches(ptx);
        assertMentions(e.getMessage(), "no atomic (or release store) of the writer's block");
    }

    @Test
    void counterLeftNonZeroIsCaughtWhereDeclaredSelfResetting() {
        String ptx = kernel("RESET", "");
        DeviceException e = assertThrows(DeviceException.class, () -> run(ptx, EmulatorOptions.defaults(), true));
        assertMentions(e.getMessage(), "kernel lastblock (module ordering.ptx) left " + GRID + " in the word",
                "must be zero after every launch", "with the atomic at line " + lineOf(ptx, "atom.global.add.u32"),
                "last updated by block (", "global address 0x");
        assertArrayEquals(expected(), run(ptx, EmulatorOptions.defaults(), false), "not declared: not checked");
        assertArrayEquals(expected(), run(ptx, EmulatorOptions.defaults().withOrderCheck(false), true));
    }

    /** In place through the non-coherent path: each thread reads its word with ld.global.nc, then overwrites it. */
    private static final String IN_PLACE = """
            .version 8.0
            .target sm_75
            .address_size 64
            .visible .entry scale(
            	.param .u64 p_x
            )
            {
            	.reg .b64 %rd<4>;
            	.reg .b32 %r<4>;
            	.reg .f32 %f<4>;
            	ld.param.u64 %rd1, [p_x];
            	mov.u32 %r1, %tid.x;
            	mov.u32 %r2, %ctaid.x;
            	mad.lo.u32 %r3, %r2, 64, %r1;
            	mul.wide.u32 %rd2, %r3, 4;
            	add.s64 %rd3, %rd1, %rd2;
            	LOAD %f1, [%rd3];
            	mul.f32 %f2, %f1, 0f40000000;
            	st.global.f32 [%rd3], %f2;
            	ret;
            }
            """;

    private static float[] scaleInPlace(String load, EmulatorOptions opt) {
        float[] x = new float[4 * 64];
        Random r = new Random(5);
        for (int i = 0; i < x.length; i++) x[i] = (float) r.nextGaussian();
        try (EmulatedDevice dev = new EmulatedDevice(opt); DeviceBuffer b = dev.allocate(4L * x.length)) {
            DeviceModule m = dev.loadModule("inplace.ptx", IN_PLACE.replace("LOAD", load));
            dev.copyToDevice(x, 0, b.pointer(), x.length, dev.defaultStream());
            dev.launch(m.kernel("scale"), Dim3.of(4), Dim3.of(64), 0, dev.defaultStream(), new KernelArgs().ptr(b));
            float[] got = new float[x.length];
            dev.copyToHost(b.pointer(), got, 0, got.length, dev.defaultStream());
            for (int i = 0; i < x.length; i++) assertEquals(2 * x[i], got[i], "element " + i);
            return got;
        }
    }

    @Test
    void inPlaceUpdateThroughTheNonCoherentPathIsCaught() {
        assertDoesNotThrow(() -> scaleInPlace("ld.global.f32", EmulatorOptions.defaults()));
        DeviceException e = assertThrows(DeviceException.class,
                () -> scaleInPlace("ld.global.nc.f32", EmulatorOptions.defaults()));
        assertMentions(e.getMessage(), "kernel scale (module inplace.ptx) line " + lineOf(IN_PLACE, "st.global.f32"),
                "write to global address 0x", "read through the non-coherent path (ld.global.nc; first at line "
                        + lineOf(IN_PLACE, "LOAD"), "block (", "thread (");
        assertDoesNotThrow(() -> scaleInPlace("ld.global.nc.f32", EmulatorOptions.defaults().withOrderCheck(false)));
    }

    @Test
    void weakReadOfAWordOtherBlocksUpdateAtomicallyIsCaught() {
        String ptx = kernel("WFENCE", "ld.global.u32 %r10, [%rd2];");  // every thread peeks at the counter
        DeviceException e = assertThrows(DeviceException.class, () -> run(ptx, EmulatorOptions.defaults(), true));
        assertMentions(e.getMessage(), "line " + lineOf(ptx, "ld.global.u32 %r10"), "weak read of global address",
                "updated with an atomic in this launch");
        String strong = kernel("WFENCE", "ld.relaxed.gpu.global.u32 %r10, [%rd2]; membar.gl;");
        assertArrayEquals(expected(), run(strong, EmulatorOptions.defaults(), true));
    }
}
