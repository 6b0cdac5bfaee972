package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.cuda.CudaProbe;

import java.util.function.Supplier;

/**
 * Says whether the cuDNN backend can be used here, with the cuDNN version, or exactly why not, in one line:
 * CUDA's own reason first (no driver, no device, driver too old: see {@link CudaProbe}), then {@code libcudnn.so.9}
 * missing (the JCudnn 12.6.0 natives link it), then any other JNI link error. Cached per JVM.
 */
public final class CudnnProbe {
    /** cudnnGetVersion of cuDNN 9.0.0: what jcudnn-natives 12.6.0 was built against. */
    static final long MIN_VERSION = 90000;

    private static volatile CudaProbe.Result cached;

    private CudnnProbe() {
    }

    /** The cached probe of this machine ({@code available}, and the version or the reason as {@code detail}). */
    public static CudaProbe.Result probe() {
        CudaProbe.Result r = cached;
        if (r == null) {
            synchronized (CudnnProbe.class) {
                r = cached;
                // a lambda, not JCudnnApi::new: JCudnnApi (and the optional jcudnn jar) is resolved inside the
                // loader's try, so a missing jar becomes a reason instead of an error escaping the probe
                if (r == null) cached = r = probe(CudaProbe::probe, () -> new JCudnnApi());
            }
        }
        return r;
    }

    static CudaProbe.Result probe(Supplier<CudaProbe.Result> cuda, Supplier<CudnnApi> loader) {
        CudaProbe.Result c = cuda.get();
        if (!c.available()) return new CudaProbe.Result(false, "needs CUDA, which is unavailable: " + c.detail());
        CudnnApi api;
        try {
            api = loader.get();
        } catch (LinkageError e) {
            return new CudaProbe.Result(false, explainLoadFailure(e));
        }
        long v = api.getVersion();
        if (v < MIN_VERSION) {
            return new CudaProbe.Result(false, "cuDNN " + versionString(v) + " found, but the JCudnn 12.6.0 natives "
                    + "need cuDNN 9");
        }
        return new CudaProbe.Result(true, "cuDNN " + versionString(v) + " (JCudnn 11.7.0 classes with jcudnn-natives "
                + "12.6.0) on " + c.detail());
    }

    /** cudnnGetVersion → "9.1.0" (cuDNN 9 encodes major·10000 + minor·100 + patch; cuDNN 8 major·1000 + ...). */
    static String versionString(long v) {
        if (v >= 90000) return (v / 10000) + "." + (v % 10000) / 100 + "." + (v % 100);
        return (v / 1000) + "." + (v % 1000) / 100 + "." + (v % 100);
    }

    static String explainLoadFailure(Throwable e) {
        StringBuilder all = new StringBuilder();
        for (Throwable t = e; t != null; t = t.getCause()) all.append(t).append('\n');
        String text = all.toString();
        if (text.contains("libcudnn.so")) {
            return "cuDNN 9 not found: libcudnn.so.9 is not installed or not on the library path (install cuDNN 9 "
                    + "for CUDA 12, or use the Docker image)";
        }
        if (e instanceof NoClassDefFoundError && !String.valueOf(e.getMessage()).startsWith("Could not initialize")) {
            return "the JCudnn classes are not on the classpath (org.jcuda:jcudnn 11.7.0 and jcudnn-natives 12.6.0 "
                    + "are optional dependencies): " + e.getMessage();
        }
        if (e instanceof NoClassDefFoundError && text.contains("jcuda")) {
            return "JCudnn's native library failed to load earlier in this JVM (usually libcudnn.so.9 is missing): "
                    + e.getMessage();
        }
        String msg = e.getMessage() == null ? "(no message)" : e.getMessage();
        int nl = msg.indexOf('\n');
        return "JCudnn native library failed to link: " + e.getClass().getSimpleName() + ": "
                + (nl < 0 ? msg : msg.substring(0, nl));
    }
}
