package io.github.batchnorm4j.gpu;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Compiles every kernel of every shipped PTX module with JCuda's bundled nvPTXCompiler (the same ptxas a CUDA 12
 * driver JIT uses; no GPU needed) for each architecture we support ({@link Architecture}), through {@link PtxResources}
 * and its cache, and fails on any error, any stack frame (spills), or a missing kernel. This is what proves the
 * restamped {@code .version 8.0} header is honest and that the kernels fit in registers everywhere. Prints the
 * registers per kernel per architecture.
 */
class PtxCompileTest {
    @Test
    void everyShippedModuleCompilesWithoutSpillsOnEveryArchitecture() {
        assertTrue(PtxResources.unavailableReason() == null, "no PTX assembler: " + PtxResources.unavailableReason());
        // One job per (module, kernel, architecture), on all cores: the compilations are independent, and the three
        // storage types tripled the batch-norm PTX. Each kernel compiles on its own, through the cache the emulator's
        // occupancy uses (so this test also warms it, and costs nothing on a second run with the same PTX).
        record Job(String module, String ptx, String entry, Architecture arch) {
        }
        List<Job> jobs = new ArrayList<>();
        for (String module : shippedModules()) {
            String ptx = PtxModules.read(module);
            assertTrue(ptx.contains("\n.version 8.0\n"), module + ": expected the restamped header '.version 8.0'");
            List<String> entries = PtxModules.entryNames(ptx);
            assertFalse(entries.isEmpty(), module + ": no .entry found");
            for (Architecture arch : Architecture.values()) {
                for (String e : entries) jobs.add(new Job(module, ptx, e, arch));
            }
        }
        List<KernelResources> results = jobs.parallelStream().map(j -> PtxResources.of(j.module(), j.ptx(), j.entry(),
                j.arch())).toList();
        for (int i = 0; i < jobs.size(); i++) {
            Job j = jobs.get(i);
            KernelResources r = results.get(i);
            String at = j.module() + " " + j.entry() + " " + j.arch().smName();
            assertTrue(r.registersKnown(), at + ": " + r);
            assertEquals(0, r.localBytesPerThread(), at + ": a stack frame (register spills or local arrays): " + r);
            System.out.printf("%-22s %-28s %s registers=%d smem=%d%n", j.module(), j.entry(), j.arch().smName(),
                    r.registersPerThread(), r.staticSharedBytes());
        }
    }

    /**
     * Every PTX file in the resource folder, which must be exactly one per {@code cuda/*.cu} (a kernel file added
     * later is covered without editing this test) and include every module the library loads.
     */
    static List<String> shippedModules() {
        Path resources = Path.of("src/main/resources", PtxModules.RESOURCE_DIR);
        List<String> ptx = list(resources, ".ptx");
        List<String> cu = list(Path.of("cuda"), ".cu");
        assertEquals(cu.stream().map(n -> n.replace(".cu", ".ptx")).sorted().toList(), ptx,
                "one committed PTX per cuda/*.cu (run scripts/build-ptx.sh)");
        assertTrue(ptx.containsAll(PtxModules.ALL), "the modules the library loads are shipped: " + PtxModules.ALL);
        return ptx;
    }

    private static List<String> list(Path dir, String suffix) {
        try (Stream<Path> files = Files.list(dir)) {
            return files.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(suffix)).sorted().toList();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + dir.toAbsolutePath(), e);
        }
    }

    @Test
    void aBrokenModuleIsReported() {
        // The check above must be able to fail: an instruction on an undeclared register is a compile error.
        String ptx = PtxModules.read(PtxModules.ALL.get(0));
        String entry = PtxModules.entryNames(ptx).get(0);
        String broken = ptx.replaceFirst("ret;", "mov.u32 %r_undeclared, 1;\n\tret;");
        KernelResources r = PtxResources.of("broken.ptx", broken, entry, Architecture.SM_80);
        assertFalse(r.registersKnown(), r.toString());
        assertTrue(r.source().contains("r_undeclared"), "the error log names the bad register: " + r.source());
        assertTrue(r.source().contains(entry) && r.source().contains("sm_80") && r.source().contains("rejects"),
                r.source());
    }
}
