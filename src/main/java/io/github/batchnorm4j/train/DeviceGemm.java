package io.github.batchnorm4j.train;

import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.gpu.DeviceStream;

/**
 * A GEMM on device memory, for {@link DeviceTrainBackend}: C = alpha·op(A)·op(B) + beta·C on row-major matrices,
 * op(X) = Xᵀ when the flag is set (BLAS semantics: beta = 0 never reads C). Implementations: {@link TrainKernels#sgemm}
 * (our PTX kernel: any device, the emulator included) and {@link CublasGemm} (cuBLAS on a JCuda device).
 *
 * <p>Every implementation has the float32 {@link #sgemm}; one that also multiplies 16-bit matrices (float32
 * accumulation, C rounded once to its type) says so in {@link #supports} and overrides {@link #gemm}.
 */
@FunctionalInterface
public interface DeviceGemm {
    /**
     * @param a {@code [m, k]}, or {@code [k, m]} when transA; b: {@code [k, n]}, or {@code [n, k]} when transB
     * @param c {@code [m, n]}, in/out
     */
    void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha, DevicePointer a, DevicePointer b,
               float beta, DevicePointer c, DeviceStream stream);

    /** Whether {@link #gemm} takes A and B stored in {@code abType} and C in {@code cType}; float32 only by default. */
    default boolean supports(DType abType, DType cType) {
        return abType == DType.FLOAT32 && cType == DType.FLOAT32;
    }

    /**
     * {@link #sgemm} on A and B of {@code abType} and C of {@code cType} (see {@link #supports}).
     *
     * @throws UnsupportedOperationException for a type pair this GEMM does not support
     */
    default void gemm(DType abType, DType cType, boolean transA, boolean transB, int m, int n, int k, float alpha,
                      DevicePointer a, DevicePointer b, float beta, DevicePointer c, DeviceStream stream) {
        if (!supports(abType, cType)) {
            throw new UnsupportedOperationException("this GEMM multiplies float32 matrices only, got A and B "
                    + abType + ", C " + cType);
        }
        sgemm(transA, transB, m, n, k, alpha, a, b, beta, c, stream);
    }
}
