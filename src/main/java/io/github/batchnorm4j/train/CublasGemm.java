package io.github.batchnorm4j.train;

import io.github.batchnorm4j.cuda.CudaDevice;
import io.github.batchnorm4j.gpu.DeviceChecks;
import io.github.batchnorm4j.gpu.DeviceException;
import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.gpu.DeviceStream;
import jcuda.Pointer;
import jcuda.jcublas.JCublas2;
import jcuda.jcublas.cublasHandle;
import jcuda.jcublas.cublasOperation;
import jcuda.jcublas.cublasStatus;
import jcuda.runtime.cudaStream_t;

/**
 * {@link DeviceGemm} through cuBLAS ({@code cublasSgemm}) on the buffers of a {@link CudaDevice}, in its primary
 * context, queued on the caller's stream.
 *
 * <p>cuBLAS is column-major; a row-major matrix is the column-major view of its transpose, so the row-major product
 * C = op(A)·op(B) is computed as the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: cublasSgemm(opB, opA, n, m, k, alpha, B, ldb,
 * A, lda, beta, C, n) with lda = transA ? m : k and ldb = transB ? k : n. Scalars are passed from the host
 * (CUBLAS_POINTER_MODE_HOST, the default).
 *
 * <p>Needs libcublas.so.12 (the CUDA 12 runtime libraries) besides the driver. Owns its handle; {@link #close()}
 * destroys it. Verified only on a GPU machine (CublasGemmGpuTest, skipped elsewhere).
 */
public final class CublasGemm implements DeviceGemm, AutoCloseable {
    private final cublasHandle handle = new cublasHandle();
    private boolean closed;

    /**
     * Creates the cuBLAS handle in the thread's current context: call {@link CudaDevice#makeCurrent()} of the device
     * it will serve first.
     *
     * @throws DeviceException when cuBLAS cannot be loaded or initialized
     */
    public CublasGemm() {
        int status;
        try {
            status = JCublas2.cublasCreate(handle);
        } catch (LinkageError e) {
            throw new DeviceException("cuBLAS is not available (libcublas.so.12 missing?): " + e, e);
        }
        check(status, "cublasCreate");
    }

    @Override
    public void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha, DevicePointer a,
                      DevicePointer b, float beta, DevicePointer c, DeviceStream stream) {
        if (closed) throw new IllegalStateException("cuBLAS handle is closed");
        if (m < 1 || n < 1 || k < 1) {
            throw new IllegalArgumentException("sgemm: expected m, n, k >= 1, got " + m + ", " + n + ", " + k);
        }
        need("a", a, (long) m * k);
        need("b", b, (long) k * n);
        need("c", c, (long) m * n);
        // cuBLAS runs in the thread's current context: make it the stream's device's (several devices, or another
        // library, may have switched it since this device's last call).
        CudaDevice.of(stream).makeCurrent();
        check(JCublas2.cublasSetStream(handle, new cudaStream_t(CudaDevice.streamHandle(stream))), "cublasSetStream");
        Plan p = plan(transA, transB, m, n, k);
        // The first column-major operand is our B, the second our A (see the class comment).
        check(JCublas2.cublasSgemm(handle, op(p.transFirst()), op(p.transSecond()), p.m(), p.n(), p.k(),
                Pointer.to(new float[] {alpha}), CudaDevice.address(b), p.ldFirst(), CudaDevice.address(a),
                p.ldSecond(), Pointer.to(new float[] {beta}), CudaDevice.address(c), p.ldc()),
                "cublasSgemm(m=" + m + ", n=" + n + ", k=" + k + ")");
    }

    /**
     * The arguments of the column-major {@code cublasSgemm(transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C,
     * ldc)} call that computes our row-major product, with our B as its A ("first") and our A as its B ("second").
     * Separate so that a test can check the mapping against a plain column-major GEMM without a GPU.
     */
    record Plan(boolean transFirst, boolean transSecond, int m, int n, int k, int ldFirst, int ldSecond, int ldc) {
    }

    static Plan plan(boolean transA, boolean transB, int m, int n, int k) {
        return new Plan(transB, transA, n, m, k, transB ? k : n, transA ? m : k, n);
    }

    private static int op(boolean trans) {
        return trans ? cublasOperation.CUBLAS_OP_T : cublasOperation.CUBLAS_OP_N;
    }

    private static void need(String name, DevicePointer p, long floats) {
        DeviceChecks.room(name, p, floats, "");
    }

    private static void check(int status, String call) {
        if (status != cublasStatus.CUBLAS_STATUS_SUCCESS) {
            throw new DeviceException(call + " failed: " + cublasStatus.stringFor(status));
        }
    }

    /** Destroys the handle. Idempotent. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        JCublas2.cublasDestroy(handle);
    }
}
