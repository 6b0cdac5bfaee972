package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.gpu.DeviceException;
import jcuda.driver.CUresult;

/** Maps CUresult codes to {@link DeviceException}s that name the CUDA error and the call. */
final class CudaErrors {
    private CudaErrors() {
    }

    /** The CUDA error name, e.g. "CUDA_ERROR_OUT_OF_MEMORY" (pure Java: works without the native library). */
    static String name(int result) {
        return CUresult.stringFor(result);
    }

    /**
     * Throws unless {@code result} is CUDA_SUCCESS.
     *
     * @param call what was called, with its salient arguments, e.g. "cuMemAlloc(bytes=1024)"
     */
    static void check(int result, String call) {
        if (result != CUresult.CUDA_SUCCESS) throw new DeviceException(call + " failed: " + name(result));
    }

    /** Like {@link #check} but with an explanation appended for errors that have a known cause. */
    static void check(int result, String call, String hint) {
        if (result != CUresult.CUDA_SUCCESS) {
            throw new DeviceException(call + " failed: " + name(result) + (hint == null ? "" : " (" + hint + ")"));
        }
    }
}
