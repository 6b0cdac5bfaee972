package io.github.batchnorm4j.gpu;

import java.util.Iterator;
import java.util.Optional;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;

/**
 * A PTX assembler (ptxas) that compiles PTX for an architecture and reports what each kernel needs: how the emulator
 * learns the registers a GPU of that architecture would give a kernel, without a GPU. Found with
 * {@link ServiceLoader}: {@code cuda.NvPtxCompilerAssembler} is JCuda's bundled nvPTXCompiler, the compiler a CUDA 12
 * driver JIT-compiles our PTX with.
 */
public interface PtxAssembler {

    /** The assembler's version, e.g. "12.6" (results of different versions may differ, so caches key on it). */
    String version();

    /**
     * Compiles a PTX text holding the entry {@code entry} for {@code arch}, as a driver would (-O3), and reports its
     * registers per thread, static shared memory and stack frame. {@code maxThreadsPerBlock} of the result is 1024; the
     * caller knows the kernel's {@code .maxntid}.
     *
     * @throws DeviceException when the assembler rejects the text (quoting its error log)
     */
    KernelResources compile(String ptx, String entry, Architecture arch);

    /**
     * The first assembler on the class path that works on this platform, or empty with the reason in
     * {@code whyNot[0]} (e.g. the native library does not load here).
     */
    static Optional<PtxAssembler> find(String[] whyNot) {
        try {
            Iterator<PtxAssembler> it = ServiceLoader.load(PtxAssembler.class, PtxAssembler.class.getClassLoader()).iterator();
            String reason = "no PtxAssembler on the class path (META-INF/services/" + PtxAssembler.class.getName() + ")";
            while (it.hasNext()) {
                PtxAssembler a = it.next();
                try {
                    a.version();
                    return Optional.of(a);
                } catch (RuntimeException | LinkageError e) {
                    reason = a.getClass().getSimpleName() + " cannot run here: " + e;
                }
            }
            whyNot[0] = reason;
        } catch (ServiceConfigurationError | LinkageError e) {
            whyNot[0] = "no PtxAssembler could be loaded: " + e;
        }
        return Optional.empty();
    }
}
