package io.github.batchnorm4j.train;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The row-major → column-major mapping of {@link CublasGemm}, checked without a GPU: the planned arguments are fed to
 * a plain column-major SGEMM written from the BLAS definition (op(A)[i][p] = A[i + p·lda], or A[p + i·lda] when
 * transposed; C[i + j·ldc]), on our row-major arrays, and the result must be the row-major product of the CPU GEMM.
 */
class CublasGemmPlanTest {
    @ParameterizedTest(name = "transA={0} transB={1} m={2} n={3} k={4}")
    @CsvSource({"false,false,7,5,3", "true,false,7,5,3", "false,true,7,5,3", "true,true,7,5,3",
            "false,false,1,9,4", "true,true,6,1,2", "false,true,3,4,1"})
    void planComputesTheRowMajorProduct(boolean ta, boolean tb, int m, int n, int k) {
        Random rng = new Random(m * 100 + n * 10 + k + (ta ? 1000 : 0) + (tb ? 2000 : 0));
        float[] a = new float[m * k], b = new float[k * n];
        for (int i = 0; i < a.length; i++) a[i] = (float) rng.nextGaussian();
        for (int i = 0; i < b.length; i++) b[i] = (float) rng.nextGaussian();
        float[] expected = new float[m * n];
        CpuGemm.gemm(ta, tb, m, n, k, 1f, a, b, 0f, expected);

        CublasGemm.Plan p = CublasGemm.plan(ta, tb, m, n, k);
        double[] c = new double[p.ldc() * p.n()];
        for (int i = 0; i < p.m(); i++) {
            for (int j = 0; j < p.n(); j++) {
                double s = 0;
                for (int q = 0; q < p.k(); q++) {
                    float x = p.transFirst() ? b[q + i * p.ldFirst()] : b[i + q * p.ldFirst()];
                    float y = p.transSecond() ? a[j + q * p.ldSecond()] : a[q + j * p.ldSecond()];
                    s += (double) x * y;
                }
                c[i + j * p.ldc()] = s;
            }
        }
        for (int i = 0; i < m * n; i++) assertEquals(expected[i], c[i], 1e-5, "c[" + i + "] (row-major)");
    }
}
