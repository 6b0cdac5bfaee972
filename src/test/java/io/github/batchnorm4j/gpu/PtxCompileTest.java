package io.github.batchnorm4j.gpu;

import jcuda.nvptxcompiler.JNvPTXCompiler;
import jcuda.nvptxcompiler.nvPTXCompileResult;
import jcuda.nvptxcompiler.nvPTXCompilerHandle;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Compiles every shipped PTX module with JCuda's bundled nvPTXCompiler (the same ptxas a CUDA 12 driver JIT uses; no
 * GPU needed) for each architecture we support, and fails on any error, any spill, or a missing kernel. This is what
 * proves the restamped {@code .version 8.0} header is honest and that the kernels fit in registers everywhere.
 * Prints the registers per kernel per architecture.
 */
class PtxCompileTest {
    private static final String[] ARCHS = {"sm_75", "sm_80", "sm_86", "sm_89", "sm_90"};
    private static final Pattern FUNCTION = Pattern.compile("Compiling entry function '([^']+)' for '(sm_\\d+)'");
    private static final Pattern SPILL = Pattern.compile("(\\d+) bytes spill stores, (\\d+) bytes spill loads");
    private static final Pattern STACK = Pattern.compile("(\\d+) bytes stack frame");
    private static final Pattern REGISTERS = Pattern.compile("Used (\\d+) registers");

    @Test
    void everyShippedModuleCompilesWithoutSpillsOnEveryArchitecture() {
        JNvPTXCompiler.setExceptionsEnabled(false);
        int[] major = new int[1];
        int[] minor = new int[1];
        check(JNvPTXCompiler.nvPTXCompilerGetVersion(major, minor), "nvPTXCompilerGetVersion", "");
        System.out.println("nvPTXCompiler " + major[0] + "." + minor[0]);
        // One compilation per (module, architecture), on all cores: the handles are independent, and the three
        // storage types tripled the batch-norm PTX.
        List<String[]> jobs = new ArrayList<>();
        for (String module : shippedModules()) {
            String ptx = PtxModules.read(module);
            assertTrue(ptx.contains("\n.version 8.0\n"), module + ": expected the restamped header '.version 8.0'");
            assertFalse(PtxModules.entryNames(ptx).isEmpty(), module + ": no .entry found");
            for (String arch : ARCHS) jobs.add(new String[] {module, ptx, arch});
        }
        List<String> logs = jobs.parallelStream().map(j -> compile(j[0], j[1], j[2])).toList();
        for (int i = 0; i < jobs.size(); i++) {
            String module = jobs.get(i)[0];
            String arch = jobs.get(i)[2];
            String log = logs.get(i);
            List<String> entries = PtxModules.entryNames(jobs.get(i)[1]);
            List<String> seen = new ArrayList<>();
            for (String fnLog : log.split("(?=info {4}: Compiling entry function|ptxas info {4}: Compiling entry function)")) {
                Matcher f = FUNCTION.matcher(fnLog);
                if (!f.find()) continue;
                String fn = f.group(1);
                seen.add(fn);
                Matcher s = SPILL.matcher(fnLog);
                if (s.find() && (Integer.parseInt(s.group(1)) != 0 || Integer.parseInt(s.group(2)) != 0)) {
                    fail(module + " " + fn + " " + arch + ": spills registers: " + s.group());
                }
                Matcher st = STACK.matcher(fnLog);
                Matcher r = REGISTERS.matcher(fnLog);
                System.out.printf("%-22s %-28s %s registers=%s stack=%s%n", module, fn, arch,
                        r.find() ? r.group(1) : "?", st.find() ? st.group(1) : "?");
            }
            for (String e : entries) {
                assertTrue(seen.contains(e), module + " " + arch + ": no compile report for kernel " + e
                        + " in the info log:\n" + log);
            }
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
        JNvPTXCompiler.setExceptionsEnabled(false);
        String ptx = PtxModules.read(PtxModules.ALL.get(0)).replaceFirst("ret;", "mov.u32 %r_undeclared, 1;\n\tret;");
        nvPTXCompilerHandle h = new nvPTXCompilerHandle();
        byte[] bytes = (ptx + "\0").getBytes(StandardCharsets.US_ASCII);
        check(JNvPTXCompiler.nvPTXCompilerCreate(h, bytes.length - 1, bytes), "nvPTXCompilerCreate", "");
        try {
            int rc = JNvPTXCompiler.nvPTXCompilerCompile(h, 1, new String[]{"--gpu-name=sm_80"});
            assertEquals(nvPTXCompileResult.NVPTXCOMPILE_ERROR_COMPILATION_FAILURE, rc,
                    "expected a compilation failure, got " + nvPTXCompileResult.stringFor(rc));
            assertTrue(errorLog(h).contains("r_undeclared"), "the error log names the bad register");
        } finally {
            JNvPTXCompiler.nvPTXCompilerDestroy(h);
        }
    }

    private static String compile(String module, String ptx, String arch) {
        nvPTXCompilerHandle h = new nvPTXCompilerHandle();
        byte[] bytes = (ptx + "\0").getBytes(StandardCharsets.US_ASCII);
        check(JNvPTXCompiler.nvPTXCompilerCreate(h, bytes.length - 1, bytes), "nvPTXCompilerCreate", module);
        try {
            int rc = JNvPTXCompiler.nvPTXCompilerCompile(h, 3, new String[]{"--gpu-name=" + arch, "--verbose", "-O3"});
            if (rc != nvPTXCompileResult.NVPTXCOMPILE_SUCCESS) {
                fail(module + " " + arch + ": " + nvPTXCompileResult.stringFor(rc) + "\n" + errorLog(h));
            }
            String err = errorLog(h);
            assertTrue(err.isBlank() || !err.toLowerCase().contains("error"), module + " " + arch + ": " + err);
            long[] size = new long[1];
            check(JNvPTXCompiler.nvPTXCompilerGetInfoLogSize(h, size), "nvPTXCompilerGetInfoLogSize", module);
            byte[] log = new byte[(int) size[0] + 1];
            check(JNvPTXCompiler.nvPTXCompilerGetInfoLog(h, log), "nvPTXCompilerGetInfoLog", module);
            long[] elf = new long[1];
            check(JNvPTXCompiler.nvPTXCompilerGetCompiledProgramSize(h, elf), "nvPTXCompilerGetCompiledProgramSize", module);
            assertTrue(elf[0] > 0, module + " " + arch + ": empty compiled program");
            return new String(log, 0, (int) size[0], StandardCharsets.US_ASCII).replace("\0", "");
        } finally {
            JNvPTXCompiler.nvPTXCompilerDestroy(h);
        }
    }

    private static String errorLog(nvPTXCompilerHandle h) {
        long[] size = new long[1];
        JNvPTXCompiler.nvPTXCompilerGetErrorLogSize(h, size);
        if (size[0] <= 0) return "";
        byte[] log = new byte[(int) size[0]];
        JNvPTXCompiler.nvPTXCompilerGetErrorLog(h, log);
        return new String(log, StandardCharsets.US_ASCII).replace("\0", "");
    }

    private static void check(int rc, String call, String module) {
        if (rc != nvPTXCompileResult.NVPTXCOMPILE_SUCCESS) {
            fail(call + " failed for " + module + ": " + nvPTXCompileResult.stringFor(rc));
        }
    }
}
