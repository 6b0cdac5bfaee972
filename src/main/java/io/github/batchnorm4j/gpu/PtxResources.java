package io.github.batchnorm4j.gpu;


import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The resources of a kernel as the PTX assembler compiles it for an architecture: registers per thread, static
 * shared memory, stack frame, and the block-size limit of {@code .maxntid}. Uses the {@link PtxAssembler} on the
 * class path (JCuda's bundled nvPTXCompiler, the compiler a CUDA 12 driver JIT-compiles our PTX with), so the emulator
 * knows the occupancy a GPU of that architecture would have, without a GPU.
 *
 * <p>Each kernel is compiled on its own (the module's declarations plus its {@code .entry} and every {@code .func}),
 * so that a change to one kernel (a mutant, a kernel under development) recompiles only that kernel. Results are cached
 * in memory and in {@code <java.io.tmpdir>/batchnorm4j-ptxas/}, keyed by the SHA-256 of the compiled text, the
 * architecture and the compiler version (compiling one of our kernels takes 0.2–1.5 s).
 *
 * <p>The emulator asks for the resources of a kernel when it needs its registers (occupancy, a launch of more than 256
 * threads, which some register counts cannot fit); {@code PtxCompileTest} compiles every shipped kernel for every
 * architecture through the same cache.
 *
 * <p>When the compiler cannot run (its native library is missing on this platform) the registers are
 * {@link KernelResources#UNKNOWN} and {@link #unavailableReason()} says why; when it rejects a kernel they are
 * UNKNOWN too, with the compiler's message as the {@link KernelResources#source()} (a driver would refuse to load
 * such PTX; the emulator runs it, and registers then limit nothing).
 */
public final class PtxResources {
    private static final Pattern ENTRY_START = Pattern.compile("^(?:\\.visible\\s+|\\.weak\\s+)*\\.entry\\s+([A-Za-z_$][\\w$]*)");
    private static final Pattern FUNC_START = Pattern.compile("^(?:\\.visible\\s+|\\.weak\\s+|\\.extern\\s+)*\\.func\\b");
    private static final Pattern MAXNTID = Pattern.compile("\\.maxntid\\s+(\\d+)(?:\\s*,\\s*(\\d+))?(?:\\s*,\\s*(\\d+))?");
    private static final Map<String, KernelResources> CACHE = new ConcurrentHashMap<>();
    private static volatile Optional<PtxAssembler> assembler;
    private static volatile String unavailable;

    private PtxResources() {
    }

    /** The text of one kernel to compile on its own: everything outside functions, every .func, and the entry. */
    public static String kernelText(String ptx, String entry) {
        StringBuilder outside = new StringBuilder();
        StringBuilder funcs = new StringBuilder();
        StringBuilder mine = null;
        StringBuilder current = null;
        for (String line : ptx.split("\n", -1)) {
            if (current == null) {
                Matcher e = ENTRY_START.matcher(line);
                if (e.find()) {
                    current = new StringBuilder();
                    if (e.group(1).equals(entry)) mine = current;
                } else if (FUNC_START.matcher(line).find() && !line.trim().endsWith(";")) {
                    current = funcs;
                }
            }
            if (current == null) {
                outside.append(line).append('\n');
            } else {
                current.append(line).append('\n');
                if (line.equals("}")) current = null; // nvcc closes every function body in column 0
            }
        }
        if (mine == null) throw new IllegalArgumentException("no .entry " + entry + " in the PTX text");
        return outside.append(funcs).append(mine).toString();
    }

    /** The kernel's .maxntid (x*y*z), or {@code fallback} when it declares none. */
    public static int maxntid(String kernelText, int fallback) {
        Matcher m = MAXNTID.matcher(kernelText);
        if (!m.find()) return fallback;
        long n = Long.parseLong(m.group(1));
        if (m.group(2) != null) n *= Long.parseLong(m.group(2));
        if (m.group(3) != null) n *= Long.parseLong(m.group(3));
        return (int) Math.min(n, Integer.MAX_VALUE);
    }

    /**
     * The resources of {@code entry} of {@code ptx} compiled for {@code arch} (registers UNKNOWN, with the reason as
     * the source, when no compiler runs here or it rejects the kernel).
     */
    public static KernelResources of(String moduleName, String ptx, String entry, Architecture arch) {
        String text = kernelText(ptx, entry);
        int maxntid = maxntid(text, Architecture.MAX_THREADS_PER_BLOCK);
        String v = compilerVersion();
        if (v == null) {
            return new KernelResources(KernelResources.UNKNOWN, 0, 0, maxntid, "no ptxas: " + unavailable);
        }
        String key = arch.smName() + "-" + v + "-" + sha256(text);
        KernelResources cached = CACHE.get(key);
        if (cached != null) return cached;
        KernelResources r = readDiskCache(key, maxntid);
        if (r == null) {
            try {
                r = compile(moduleName, entry, text, arch, maxntid, v);
                writeDiskCache(key, r);
            } catch (DeviceException e) {
                // Registers unknown, and why: the emulator still runs such PTX (hand-written test kernels use
                // instructions their .target does not allow); PtxCompileTest fails on it for the shipped kernels.
                r = new KernelResources(KernelResources.UNKNOWN, 0, 0, maxntid, e.getMessage());
            }
        }
        CACHE.put(key, r);
        return r;
    }

    /** Why the compiler is unavailable, or null when it works (asks it once). */
    public static String unavailableReason() {
        compilerVersion();
        return unavailable;
    }

    private static synchronized String compilerVersion() {
        if (assembler == null) {
            String[] why = new String[1];
            assembler = PtxAssembler.find(why);
            unavailable = why[0];
        }
        return assembler.map(PtxAssembler::version).orElse(null);
    }

    private static KernelResources compile(String moduleName, String entry, String text, Architecture arch,
                                           int maxntid, String v) {
        KernelResources r;
        try {
            r = assembler.orElseThrow().compile(text, entry, arch);
        } catch (DeviceException e) {
            throw new DeviceException("kernel " + entry + " of module " + moduleName + ": " + e.getMessage(), e);
        }
        return new KernelResources(r.registersPerThread(), r.staticSharedBytes(), r.localBytesPerThread(), maxntid,
                r.source());
    }

    // ---- disk cache: one small file per compiled kernel text -----------------------------------------------------

    private static Path cacheDir() {
        return Path.of(System.getProperty("java.io.tmpdir"), "batchnorm4j-ptxas");
    }

    private static KernelResources readDiskCache(String key, int maxntid) {
        try {
            Path p = cacheDir().resolve(key);
            if (!Files.isRegularFile(p)) return null;
            String[] f = Files.readString(p, StandardCharsets.US_ASCII).strip().split(" ", 4);
            if (f.length != 4) return null;
            return new KernelResources(Integer.parseInt(f[0]), Integer.parseInt(f[1]), Integer.parseInt(f[2]), maxntid,
                    f[3]);
        } catch (IOException | RuntimeException e) {
            return null; // a damaged entry is recompiled
        }
    }

    private static void writeDiskCache(String key, KernelResources r) {
        try {
            Path dir = Files.createDirectories(cacheDir());
            Path tmp = Files.createTempFile(dir, key, ".tmp");
            Files.writeString(tmp, r.registersPerThread() + " " + r.staticSharedBytes() + " "
                    + r.localBytesPerThread() + " " + r.source() + "\n", StandardCharsets.US_ASCII);
            Files.move(tmp, dir.resolve(key), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException | RuntimeException e) {
            // the cache is an optimization: without it the kernel is compiled again next time
        }
    }

    private static String sha256(String s) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
    }
}
