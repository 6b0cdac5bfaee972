package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.gpu.Architecture;
import io.github.batchnorm4j.gpu.DeviceException;
import io.github.batchnorm4j.gpu.KernelResources;
import io.github.batchnorm4j.gpu.PtxAssembler;
import jcuda.nvptxcompiler.JNvPTXCompiler;
import jcuda.nvptxcompiler.nvPTXCompileResult;
import jcuda.nvptxcompiler.nvPTXCompilerHandle;

import java.nio.charset.StandardCharsets;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@link PtxAssembler} over JCuda's bundled nvPTXCompiler (the ptxas library a CUDA 12 driver uses; runs without a GPU
 * or a driver): compiles with {@code --gpu-name=sm_XX --verbose} at the default -O3 and reads "Used N registers",
 * "N bytes smem" and "N bytes stack frame" from its info log. Construction loads nothing; {@link #version()} is the
 * first native call, so a platform without the native library fails there.
 */
public final class NvPtxCompilerAssembler implements PtxAssembler {
    private static final Pattern REGISTERS = Pattern.compile("Used (\\d+) registers");
    private static final Pattern SMEM = Pattern.compile("(\\d+) bytes smem");
    private static final Pattern STACK = Pattern.compile("(\\d+) bytes stack frame");
    private volatile String version;

    @Override
    public String version() {
        String v = version;
        if (v != null) return v;
        JNvPTXCompiler.setExceptionsEnabled(false);
        int[] major = new int[1];
        int[] minor = new int[1];
        check(JNvPTXCompiler.nvPTXCompilerGetVersion(major, minor), "nvPTXCompilerGetVersion", "");
        version = major[0] + "." + minor[0];
        return version;
    }

    @Override
    public KernelResources compile(String ptx, String entry, Architecture arch) {
        String v = version();
        nvPTXCompilerHandle h = new nvPTXCompilerHandle();
        byte[] bytes = (ptx + "\0").getBytes(StandardCharsets.US_ASCII);
        check(JNvPTXCompiler.nvPTXCompilerCreate(h, bytes.length - 1, bytes), "nvPTXCompilerCreate", entry);
        try {
            int rc = JNvPTXCompiler.nvPTXCompilerCompile(h, 2, new String[]{"--gpu-name=" + arch.smName(), "--verbose"});
            if (rc != nvPTXCompileResult.NVPTXCOMPILE_SUCCESS) {
                throw new DeviceException("ptxas " + v + " rejects kernel " + entry + " for " + arch.smName() + " ("
                        + nvPTXCompileResult.stringFor(rc) + "): " + log(h, false).strip()
                        + " (a driver would refuse to load this PTX)");
            }
            String info = log(h, true);
            // One entry per text: the first report is the kernel's.
            Matcher r = REGISTERS.matcher(info);
            if (!r.find()) throw new DeviceException("ptxas " + v + " reported no register count for " + entry + ":\n" + info);
            Matcher s = SMEM.matcher(info);
            Matcher st = STACK.matcher(info);
            return new KernelResources(Integer.parseInt(r.group(1)), s.find() ? Integer.parseInt(s.group(1)) : 0,
                    st.find() ? Integer.parseInt(st.group(1)) : 0, Architecture.MAX_THREADS_PER_BLOCK,
                    "ptxas " + v + " for " + arch.smName());
        } finally {
            JNvPTXCompiler.nvPTXCompilerDestroy(h);
        }
    }

    private static void check(int rc, String call, String entry) {
        if (rc != nvPTXCompileResult.NVPTXCOMPILE_SUCCESS) {
            throw new DeviceException(call + " failed" + (entry.isEmpty() ? "" : " for kernel " + entry) + ": "
                    + nvPTXCompileResult.stringFor(rc));
        }
    }

    private static String log(nvPTXCompilerHandle h, boolean info) {
        long[] size = new long[1];
        if (info) JNvPTXCompiler.nvPTXCompilerGetInfoLogSize(h, size);
        else JNvPTXCompiler.nvPTXCompilerGetErrorLogSize(h, size);
        if (size[0] <= 0) return "";
        byte[] b = new byte[(int) size[0] + 1];
        if (info) JNvPTXCompiler.nvPTXCompilerGetInfoLog(h, b);
        else JNvPTXCompiler.nvPTXCompilerGetErrorLog(h, b);
        return new String(b, 0, (int) size[0], StandardCharsets.US_ASCII).replace("\0", "");
    }
}
