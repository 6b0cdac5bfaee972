package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.BackendInfo;
import io.github.batchnorm4j.BackendUnavailableException;
import io.github.batchnorm4j.cuda.CudaProbe;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

/** The cuDNN probe's reasons, in the order they are checked. */
class CudnnProbeTest {
    private static final CudaProbe.Result GPU = new CudaProbe.Result(true, "NVIDIA H100 (compute capability 9.0)");

    @Test
    void cudaReasonComesFirst() {
        CudaProbe.Result r = CudnnProbe.probe(() -> new CudaProbe.Result(false, "no NVIDIA driver: libcuda.so.1 ..."),
                () -> {
                    throw new AssertionError("cuDNN must not be loaded without CUDA");
                });
        assertFalse(r.available());
        assertEquals("needs CUDA, which is unavailable: no NVIDIA driver: libcuda.so.1 ...", r.detail());
    }

    @Test
    void missingLibcudnnAndOtherLinkErrors() {
        CudaProbe.Result r = CudnnProbe.probe(() -> GPU, () -> {
            throw new UnsatisfiedLinkError("Error while loading native library \"JCudnn-12.6.0-linux-x86_64\"\n"
                    + "/tmp/libJCudnn-12.6.0-linux-x86_64.so: libcudnn.so.9: cannot open shared object file");
        });
        assertFalse(r.available());
        assertTrue(r.detail().startsWith("cuDNN 9 not found: libcudnn.so.9"), r.detail());
        r = CudnnProbe.probe(() -> GPU, () -> {
            throw new UnsatisfiedLinkError("undefined symbol: cudnnBatchNormalizationBackward");
        });
        assertEquals("JCudnn native library failed to link: UnsatisfiedLinkError: undefined symbol: "
                + "cudnnBatchNormalizationBackward", r.detail());
    }

    @Test
    void missingJcudnnJarIsExplained() {
        CudaProbe.Result r = CudnnProbe.probe(() -> GPU, () -> {
            throw new NoClassDefFoundError("jcuda/jcudnn/cudnnHandle");
        });
        assertTrue(r.detail().startsWith("the JCudnn classes are not on the classpath"), r.detail());
        r = CudnnProbe.probe(() -> GPU, () -> {
            throw new NoClassDefFoundError("Could not initialize class jcuda.jcudnn.JCudnn");
        });
        assertTrue(r.detail().contains("failed to load earlier in this JVM"), r.detail());
    }

    @Test
    void versionIsReported() {
        FakeCudnnApi api = new FakeCudnnApi(new HostDevice());
        api.version = 90300;
        CudaProbe.Result r = CudnnProbe.probe(() -> GPU, () -> api);
        assertTrue(r.available());
        assertEquals("cuDNN 9.3.0 (JCudnn 11.7.0 classes with jcudnn-natives 12.6.0) on NVIDIA H100 (compute "
                + "capability 9.0)", r.detail());
        api.version = 8907;
        r = CudnnProbe.probe(() -> GPU, () -> api);
        assertFalse(r.available());
        assertTrue(r.detail().startsWith("cuDNN 8.9.7 found"), r.detail());
    }

    /** Loads the real JCudnn natives here: without libcudnn.so.9 the real UnsatisfiedLinkError must be explained. */
    @Test
    void realLoaderWithoutLibcudnnIsExplained() {
        CudaProbe.Result r = CudnnProbe.probe(() -> GPU, JCudnnApi::new);
        System.out.println("[CudnnProbe, real JCudnn loader, CUDA assumed present] " + r.detail());
        assumeFalse(r.available(), "cuDNN is installed here");
        assertTrue(r.detail().startsWith("cuDNN 9 not found") || r.detail().contains("failed to load earlier"),
                r.detail());
    }

    @Test
    void probeOfThisMachine() {
        CudaProbe.Result r = CudnnProbe.probe();
        System.out.println("[CudnnProbe on this machine] available=" + r.available() + ": " + r.detail());
        assertFalse(r.detail().contains("\n"), r.detail());
        CudnnBackendProvider p = new CudnnBackendProvider();
        assertEquals(new BackendInfo("cudnn", r.available(), r.detail()), p.probe());
        assumeFalse(r.available());
        BackendUnavailableException e = assertThrows(BackendUnavailableException.class, p::open);
        assertEquals("backend 'cudnn' is unavailable: " + r.detail(), e.getMessage());
    }
}
