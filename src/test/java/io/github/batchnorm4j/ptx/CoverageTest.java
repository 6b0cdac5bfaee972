package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DeviceModule;
import io.github.batchnorm4j.gpu.Dim3;
import io.github.batchnorm4j.gpu.KernelArgs;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Per-instruction execution counts: exact counts on a hand-written kernel, the report, and the TSV merge. */
class CoverageTest {
    /** Threads below n store their index; a guarded store never fires; the trap after ret is never reached. */
    private static final String PTX = String.join("\n",
            ".version 8.0", ".target sm_75", ".address_size 64",
            ".visible .entry cov(", "\t.param .u64 p_out,", "\t.param .u32 p_n", ")", "{",
            "\t.reg .b32 %r<2>;", "\t.reg .b64 %rd<3>;", "\t.reg .pred %p<2>;",
            "\tld.param.u64 %rd0, [p_out];",             // line 12
            "\tld.param.u32 %r1, [p_n];",                // 13
            "\tmov.u32 %r0, %tid.x;",                    // 14
            "\tsetp.ge.u32 %p0, %r0, %r1;",              // 15
            "\t@%p0 bra DONE;",                          // 16: taken by threads >= n
            "\tcvta.to.global.u64 %rd0, %rd0;",          // 17
            "\tmul.wide.u32 %rd1, %r0, 4;",              // 18
            "\tadd.s64 %rd2, %rd0, %rd1;",               // 19
            "\tsetp.eq.u32 %p1, %r0, 1000;",             // 20
            "\t@%p1 st.global.u32 [%rd2], %r1;",         // 21: guard never true
            "\tst.global.u32 [%rd2], %r0;",              // 22
            "DONE:",
            "\tret;",                                    // 24
            "\ttrap;",                                   // 25: never executed
            "}", "");

    private static final String SOURCE = Coverage.sourceHash(PTX);

    private static Coverage run(int threads, int n) {
        return run(new Coverage(), PTX, threads, n);
    }

    private static Coverage run(Coverage c, String ptx, int threads, int n) {
        try (EmulatedDevice dev = new EmulatedDevice(EmulatorOptions.defaults(), c);
             DeviceBuffer out = dev.allocate(4L * threads)) {
            DeviceModule m = dev.loadModule("cov.ptx", ptx);
            dev.launch(m.kernel("cov"), Dim3.of(1), Dim3.of(threads), 0, dev.defaultStream(),
                    new KernelArgs().ptr(out).i32(n));
            assertEquals(dev.metrics().threadInstructions(),
                    c.kernel("cov.ptx", "cov", Coverage.sourceHash(ptx)).orElseThrow().threadInstructions(),
                    "coverage counts every thread-instruction the metrics count");
        }
        return c;
    }

    private static Coverage.Instruction at(Coverage.KernelCoverage k, int line) {
        return k.instructions().stream().filter(i -> i.line() == line).findFirst().orElseThrow();
    }

    @Test
    void countsThreadsAndTrueGuardsPerInstruction() {
        Coverage.KernelCoverage k = run(64, 40).kernel("cov.ptx", "cov", SOURCE).orElseThrow();
        assertEquals(64, at(k, 12).threads());
        Coverage.Instruction bra = at(k, 16);
        assertTrue(bra.guarded());
        assertEquals(64, bra.threads());
        assertEquals(24, bra.guardTrue(), "threads 40..63 take the branch");
        assertEquals(40, at(k, 17).threads());
        assertEquals(40, at(k, 21).threads());
        assertEquals(0, at(k, 21).guardTrue());
        assertEquals(40, at(k, 22).threads());
        assertEquals(40, at(k, 22).guardTrue(), "an unguarded instruction: guard-true = threads");
        assertEquals(64, at(k, 24).threads());
        assertEquals(0, at(k, 25).threads());
        assertEquals(List.of(25), k.notExecuted().stream().map(Coverage.Instruction::line).toList());
        assertEquals(List.of(21), k.guardNeverTrue().stream().map(Coverage.Instruction::line).toList());
        assertEquals(k.total() - 1, k.executed());
    }

    @Test
    void reportNamesTheKernelAndItsUnexecutedLines() {
        String r = run(32, 32).report();
        assertTrue(r.contains("cov.ptx cov: 12/13 instructions executed"), r);
        assertTrue(r.contains("line 25: trap"), r);
        assertTrue(r.contains("guard never true:"), r);
        assertTrue(r.contains("21  @%p1 st.global.u32"), r);
        assertTrue(r.contains("@%p0 bra DONE") && r.indexOf("@%p0 bra DONE") > r.indexOf("guard never true"),
                "with n = 32 threads no thread takes the branch: " + r);
    }

    @Test
    void aDeviceWithoutCoverageRecordsNothing() {
        Coverage c = new Coverage();
        try (EmulatedDevice dev = new EmulatedDevice(EmulatorOptions.defaults(), null);
             DeviceBuffer out = dev.allocate(4L * 32)) {
            DeviceModule m = dev.loadModule("cov.ptx", PTX);
            dev.launch(m.kernel("cov"), Dim3.of(1), Dim3.of(32), 0, dev.defaultStream(),
                    new KernelArgs().ptr(out).i32(32));
            assertTrue(dev.coverage().isEmpty());
        }
        assertTrue(c.kernels().isEmpty());
    }

    @Test
    void mergeIntoAFolderAddsTheCountsOfEveryRun(@TempDir Path dir) throws Exception {
        run(64, 40).mergeInto(dir);
        run(64, 10).mergeInto(dir);
        List<Coverage.KernelCoverage> merged = Coverage.readTsv(dir.resolve(Coverage.TSV));
        assertEquals(1, merged.size());
        Coverage.KernelCoverage k = merged.get(0);
        assertEquals(128, at(k, 12).threads());
        assertEquals(24 + 54, at(k, 16).guardTrue());
        assertEquals(50, at(k, 22).threads());
        assertEquals(0, at(k, 25).threads());
        String txt = Files.readString(dir.resolve(Coverage.TXT));
        assertTrue(txt.contains("cov.ptx cov: 12/13 instructions executed"), txt);
        assertFalse(txt.isBlank());
    }

    /**
     * Mutants loaded under the module's name, launched first, neither stand in for the original text's kernel (a
     * longer one) nor add to its counts (one of the same length): each text is a kernel of its own.
     */
    @Test
    void textsLoadedUnderOneNameAreCountedApart(@TempDir Path dir) {
        String sameLength = PTX.replace("%r0, 1000;", "%r0, 1001;");
        String longer = PTX.replace("\tmov.u32 %r0, %tid.x;", "\tmov.u32 %r0, %tid.x;\n\tmov.u32 %r0, %tid.x;");
        Coverage c = new Coverage();
        run(c, longer, 64, 64);
        run(c, sameLength, 64, 64);
        run(c, PTX, 32, 20);
        assertEquals(3, c.kernels().size());
        Coverage.KernelCoverage k = c.kernel("cov.ptx", "cov", SOURCE).orElseThrow();
        assertEquals(k, run(32, 20).kernel("cov.ptx", "cov", SOURCE).orElseThrow(),
                "the original's counts as if no mutant had run");
        assertEquals(32, at(k, 12).threads());
        assertEquals(12, at(k, 16).guardTrue());
        assertEquals(64, at(c.kernel("cov.ptx", "cov", Coverage.sourceHash(sameLength)).orElseThrow(), 12).threads());
        assertEquals(14, c.kernel("cov.ptx", "cov", Coverage.sourceHash(longer)).orElseThrow().total());

        // the TSV keeps them apart too, through a merge with a second run of the original
        c.mergeInto(dir);
        run(32, 20).mergeInto(dir);
        List<Coverage.KernelCoverage> merged = Coverage.readTsv(dir.resolve(Coverage.TSV));
        assertEquals(3, merged.size());
        Coverage.KernelCoverage m = merged.stream().filter(x -> x.source().equals(SOURCE)).findFirst().orElseThrow();
        assertEquals(64, at(m, 12).threads());
        assertEquals(13, m.total());
    }

    @Test
    void readsFilesWithoutTheSourceColumn(@TempDir Path dir) throws Exception {
        Path tsv = dir.resolve(Coverage.TSV);
        Files.writeString(tsv, "# module\tkernel\tline\tthreads\tguard_true\tguarded\ttext\n"
                + "cov.ptx\tcov\t12\t7\t7\t0\tld.param.u64 %rd0, [p_out];\n"
                + "cov.ptx\tcov\t16\t7\t3\t1\t@%p0 bra DONE;\n");
        List<Coverage.KernelCoverage> k = Coverage.readTsv(tsv);
        assertEquals(1, k.size());
        assertEquals("", k.get(0).source());
        assertEquals("@%p0 bra DONE;", at(k.get(0), 16).text());
        assertEquals(3, at(k.get(0), 16).guardTrue());
    }
}
