package io.github.batchnorm4j.cuda;

import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUresult;

import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.function.Supplier;

/**
 * Says whether CUDA can be used here and, when not, exactly why, in one line, without crashing the JVM:
 * <ol>
 *   <li>no NVIDIA driver: JCuda's JNI library links {@code libcuda.so.1}, so loading it throws
 *       {@link UnsatisfiedLinkError}; the error is caught and explained;</li>
 *   <li>{@code cuInit} fails (e.g. CUDA_ERROR_NO_DEVICE when the driver sees no GPU);</li>
 *   <li>the driver is older than CUDA 12.0 ({@code cuDriverGetVersion < 12000}): it cannot JIT the PTX ISA 8.0 we
 *       ship;</li>
 *   <li>no device ({@code cuDeviceGetCount == 0});</li>
 *   <li>the first device is older than compute capability 7.5 (our PTX targets compute_75).</li>
 * </ol>
 * The answer is computed once per JVM (the driver does not come and go) and cached. Probing calls cuInit, which is
 * process-wide and harmless, and creates no context.
 */
public final class CudaProbe {
    /** cuDriverGetVersion of CUDA 12.0, the first driver that accepts PTX ISA 8.0. */
    public static final int MIN_DRIVER_VERSION = 12000;
    /** Our PTX is built for compute_75 (Turing) and newer. */
    public static final int MIN_COMPUTE_CAPABILITY = 75;

    /**
     * What the probe found.
     *
     * @param available whether {@code new CudaDevice(0)} is expected to work
     * @param detail    when available: device, compute capability, SMs and driver version; else the one-line reason
     */
    public record Result(boolean available, String detail) {
    }

    private static volatile Result cached;

    private CudaProbe() {
    }

    /** The cached probe of this machine. */
    public static Result probe() {
        Result r = cached;
        if (r == null) {
            synchronized (CudaProbe.class) {
                r = cached;
                if (r == null) cached = r = probe(() -> new JCudaDriverApi()); // resolved inside the loader's try
            }
        }
        return r;
    }

    /** Probes through {@code loader} (which may throw a LinkageError as JCuda's loader does). Not cached. */
    static Result probe(Supplier<DriverApi> loader) {
        DriverApi api;
        try {
            api = loader.get();
        } catch (LinkageError e) { // UnsatisfiedLinkError, NoClassDefFoundError, ExceptionInInitializerError
            return new Result(false, explainLoadFailure(e));
        }
        int r = api.init();
        if (r == CUresult.CUDA_ERROR_NO_DEVICE) {
            return new Result(false, "no CUDA device: the NVIDIA driver is installed but cuInit reports "
                    + "CUDA_ERROR_NO_DEVICE (no GPU visible to this process; check CUDA_VISIBLE_DEVICES, or run the "
                    + "container with --gpus all)");
        }
        if (r != CUresult.CUDA_SUCCESS) {
            return new Result(false, "cuInit failed: " + CudaErrors.name(r));
        }
        int[] v = new int[1];
        r = api.driverGetVersion(v);
        if (r != CUresult.CUDA_SUCCESS) return new Result(false, "cuDriverGetVersion failed: " + CudaErrors.name(r));
        int driver = v[0];
        if (driver < MIN_DRIVER_VERSION) {
            return new Result(false, "NVIDIA driver too old: it supports CUDA " + cudaVersion(driver)
                    + ", but batchnorm4j's PTX (ISA 8.0) needs a CUDA 12.0 or newer driver");
        }
        r = api.deviceGetCount(v);
        if (r != CUresult.CUDA_SUCCESS) return new Result(false, "cuDeviceGetCount failed: " + CudaErrors.name(r));
        int count = v[0];
        if (count == 0) {
            return new Result(false, "no CUDA device: the NVIDIA driver (CUDA " + cudaVersion(driver)
                    + ") reports 0 devices");
        }
        CUdevice dev = new CUdevice();
        r = api.deviceGet(dev, 0);
        if (r != CUresult.CUDA_SUCCESS) return new Result(false, "cuDeviceGet(0) failed: " + CudaErrors.name(r));
        byte[] nameBytes = new byte[256];
        r = api.deviceGetName(nameBytes, dev);
        if (r != CUresult.CUDA_SUCCESS) return new Result(false, "cuDeviceGetName(0) failed: " + CudaErrors.name(r));
        int n = 0;
        while (n < nameBytes.length && nameBytes[n] != 0) n++;
        String name = new String(nameBytes, 0, n, StandardCharsets.UTF_8);
        int[] major = new int[1];
        int[] minor = new int[1];
        int[] sms = new int[1];
        r = api.deviceGetAttribute(major, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
        if (r == CUresult.CUDA_SUCCESS) {
            r = api.deviceGetAttribute(minor, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
        }
        if (r == CUresult.CUDA_SUCCESS) {
            r = api.deviceGetAttribute(sms, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev);
        }
        if (r != CUresult.CUDA_SUCCESS) {
            return new Result(false, "cuDeviceGetAttribute(device 0) failed: " + CudaErrors.name(r));
        }
        String cc = major[0] + "." + minor[0];
        if (major[0] * 10 + minor[0] < MIN_COMPUTE_CAPABILITY) {
            return new Result(false, "GPU too old: " + name + " has compute capability " + cc
                    + ", batchnorm4j's PTX needs 7.5 (Turing) or newer");
        }
        return new Result(true, name + " (compute capability " + cc + ", " + sms[0] + " SMs), driver CUDA "
                + cudaVersion(driver) + ", " + count + " device" + (count == 1 ? "" : "s"));
    }

    /** 12040 → "12.4". */
    static String cudaVersion(int driverVersion) {
        return (driverVersion / 1000) + "." + (driverVersion % 1000) / 10;
    }

    /** One line for a failure to load JCuda's native driver library. */
    static String explainLoadFailure(Throwable e) {
        StringBuilder all = new StringBuilder();
        for (Throwable t = e; t != null; t = t.getCause()) all.append(t).append('\n');
        String text = all.toString();
        if (text.contains("libcuda.so")) {
            return "no NVIDIA driver: libcuda.so.1 (the CUDA driver library) is not installed or not on the library "
                    + "path, so JCuda's native library cannot load (install the NVIDIA driver; in Docker run with "
                    + "--gpus all)";
        }
        if (e instanceof NoClassDefFoundError && text.contains("jcuda")) {
            return "JCuda's native driver library failed to load earlier in this JVM (usually libcuda.so.1 is missing:"
                    + " no NVIDIA driver): " + firstLine(e.getMessage());
        }
        String os = System.getProperty("os.name", "?").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "?");
        if (!os.contains("linux") || !(arch.equals("amd64") || arch.equals("x86_64"))) {
            return "JCuda native library not available for " + os + "/" + arch + " (this build bundles linux-x86_64): "
                    + firstLine(e.getMessage());
        }
        return "JCuda's native driver library failed to load: " + e.getClass().getSimpleName() + ": "
                + firstLine(e.getMessage());
    }

    private static String firstLine(String s) {
        if (s == null) return "(no message)";
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl);
    }
}
