package io.github.batchnorm4j.train;

import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.gpu.DeviceStream;

/**
 * A single-precision GEMM on device memory, for {@link DeviceTrainBackend}: C = alpha·op(A)·op(B) + beta·C on
 * row-major matrices, op(X) = Xᵀ when the flag is set (BLAS semantics: beta = 0 never reads C). Implementations:
 * {@link TrainKernels#sgemm} (our PTX kernel: any device, the emulator included) and {@link CublasGemm} (cuBLAS on a
 * JCuda device).
 */
@FunctionalInterface
public interface DeviceGemm {
    /**
     * @param a {@code [m, k]}, or {@code [k, m]} when transA; b: {@code [k, n]}, or {@code [n, k]} when transB
     * @param c {@code [m, n]}, in/out
     */
    void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha, DevicePointer a, DevicePointer b,
               float beta, DevicePointer c, DeviceStream stream);
}
