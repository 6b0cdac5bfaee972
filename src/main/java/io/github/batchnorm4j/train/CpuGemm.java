package io.github.batchnorm4j.train;

import java.util.stream.IntStream;

/**
 * A plain Java single-precision GEMM for the CPU training backend: C = alpha·op(A)·op(B) + beta·C on row-major
 * arrays.
 *
 * <p>Transposed operands are first copied into row-major scratch (O(mk + kn), small next to the O(mnk) product), so
 * one kernel serves all four cases. The kernel walks a row of C with the i-p-j loop order: the innermost loop is a
 * contiguous axpy over a row of B, which HotSpot vectorizes. B is processed in panels of {@link #K_BLOCK} rows so a
 * panel stays in cache while a block of C rows sweeps over it. Rows of C are split among threads (the common
 * fork-join pool) when the product is large enough to pay for it; each row is computed by one thread in a fixed
 * order, so results are deterministic whatever the thread count.
 */
final class CpuGemm {
    /** Rows of B per cache panel (64 rows × 256 floats = 64 KB, within L2). */
    static final int K_BLOCK = 64;
    /** Rows of C per task. */
    static final int ROW_BLOCK = 16;
    /** Below this many multiply-adds one thread is faster than forking. */
    static final long PARALLEL_THRESHOLD = 1L << 18;

    private CpuGemm() {
    }

    /**
     * @param a row-major {@code [m, k]}, or {@code [k, m]} when transA
     * @param b row-major {@code [k, n]}, or {@code [n, k]} when transB
     * @param c row-major {@code [m, n]}, in/out
     */
    static void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha, float[] a, float[] b,
                     float beta, float[] c) {
        float[] an = transA ? transpose(a, k, m) : a;
        float[] bn = transB ? transpose(b, n, k) : b;
        int blocks = (m + ROW_BLOCK - 1) / ROW_BLOCK;
        if ((long) m * n * k >= PARALLEL_THRESHOLD && blocks > 1) {
            IntStream.range(0, blocks).parallel().forEach(blk -> rows(blk, m, n, k, alpha, an, bn, beta, c));
        } else {
            for (int blk = 0; blk < blocks; blk++) rows(blk, m, n, k, alpha, an, bn, beta, c);
        }
    }

    /** Computes rows [blk·ROW_BLOCK, min(m, (blk+1)·ROW_BLOCK)) of C. */
    private static void rows(int blk, int m, int n, int k, float alpha, float[] a, float[] b, float beta, float[] c) {
        int i0 = blk * ROW_BLOCK;
        int i1 = Math.min(m, i0 + ROW_BLOCK);
        for (int i = i0; i < i1; i++) {
            int ci = i * n;
            if (beta == 0f) {
                // BLAS semantics: beta = 0 ignores C entirely (a NaN there must not survive).
                for (int j = 0; j < n; j++) c[ci + j] = 0f;
            } else if (beta != 1f) {
                for (int j = 0; j < n; j++) c[ci + j] *= beta;
            }
        }
        for (int p0 = 0; p0 < k; p0 += K_BLOCK) {
            int p1 = Math.min(k, p0 + K_BLOCK);
            for (int i = i0; i < i1; i++) {
                int ci = i * n;
                int ai = i * k;
                for (int p = p0; p < p1; p++) {
                    float s = alpha * a[ai + p];
                    int bp = p * n;
                    for (int j = 0; j < n; j++) c[ci + j] += s * b[bp + j];
                }
            }
        }
    }

    /** The transpose of a row-major {@code [rows, cols]} matrix, as a new row-major {@code [cols, rows]} array. */
    static float[] transpose(float[] x, int rows, int cols) {
        float[] t = new float[x.length];
        for (int r = 0; r < rows; r++) {
            int xr = r * cols;
            for (int q = 0; q < cols; q++) t[q * rows + r] = x[xr + q];
        }
        return t;
    }
}
