package io.github.batchnorm4j.train;

import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.cuda.CudaDevice;
import io.github.batchnorm4j.gpu.DeviceChecks;
import io.github.batchnorm4j.gpu.DeviceException;
import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.gpu.DeviceStream;
import jcuda.Pointer;
import jcuda.cudaDataType;
import jcuda.jcublas.JCublas2;
import jcuda.jcublas.cublasComputeType;
import jcuda.jcublas.cublasGemmAlgo;
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
 * <p>16-bit A and B (float16, bfloat16) with a C of the same type or float32 go through {@code cublasGemmEx} with
 * CUBLAS_COMPUTE_32F (float32 accumulation and scalars, PyTorch's choice for half GEMMs; cuBLAS may use tensor
 * cores and its own summation order, so results agree with our PTX GEMM to float32 rounding, not bit for bit).
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

    @Override
    public boolean supports(DType abType, DType cType) {
        return abType != null && cType != null && (cType == abType || cType == DType.FLOAT32);
    }

    @Override
    public void gemm(DType abType, DType cType, boolean transA, boolean transB, int m, int n, int k, float alpha,
                     DevicePointer a, DevicePointer b, float beta, DevicePointer c, DeviceStream stream) {
        if (abType == DType.FLOAT32 && cType == DType.FLOAT32) {
            sgemm(transA, transB, m, n, k, alpha, a, b, beta, c, stream);
            return;
        }
        if (closed) throw new IllegalStateException("cuBLAS handle is closed");
        if (!supports(abType, cType)) {
            throw new UnsupportedOperationException("cublasGemmEx: A and B " + abType + " with C " + cType
                    + " (expected C of A's type or float32)");
        }
        if (m < 1 || n < 1 || k < 1) {
            throw new IllegalArgumentException("gemm: expected m, n, k >= 1, got " + m + ", " + n + ", " + k);
        }
        DeviceChecks.room("a", a, (long) m * k, abType, "");
        DeviceChecks.room("b", b, (long) k * n, abType, "");
        DeviceChecks.room("c", c, (long) m * n, cType, "");
        CudaDevice.of(stream).makeCurrent();
        check(JCublas2.cublasSetStream(handle, new cudaStream_t(CudaDevice.streamHandle(stream))), "cublasSetStream");
        Plan p = plan(transA, transB, m, n, k);
        int ab = dataType(abType), ct = dataType(cType);
        check(JCublas2.cublasGemmEx(handle, op(p.transFirst()), op(p.transSecond()), p.m(), p.n(), p.k(),
                Pointer.to(new float[] {alpha}), CudaDevice.address(b), ab, p.ldFirst(), CudaDevice.address(a), ab,
                p.ldSecond(), Pointer.to(new float[] {beta}), CudaDevice.address(c), ct, p.ldc(),
                cublasComputeType.CUBLAS_COMPUTE_32F, cublasGemmAlgo.CUBLAS_GEMM_DEFAULT),
                "cublasGemmEx(" + abType + " -> " + cType + ", m=" + m + ", n=" + n + ", k=" + k + ")");
    }

    private static int dataType(DType t) {
        return switch (t) {
            case FLOAT32 -> cudaDataType.CUDA_R_32F;
            case FLOAT16 -> cudaDataType.CUDA_R_16F;
            case BFLOAT16 -> cudaDataType.CUDA_R_16BF;
        };
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
