package io.github.batchnorm4j.train;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Arrays;
import java.util.Random;

import static io.github.batchnorm4j.testing.TestData.gaussian;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The CPU training backend's operations against float64 references on random inputs (fixed seeds). */
class CpuTrainBackendTest {
    /** float32 GEMM vs double: k products of O(1) terms each rounded by 6e-8 relative. */
    static final double GEMM_RTOL = 1e-5;

    private CpuTrainBackend be;

    @BeforeEach
    void open() {
        be = new CpuTrainBackend();
    }

    @AfterEach
    void close() {
        be.close();
    }

    private Tensor tensor(int rows, int cols, float[] data) {
        Tensor t = be.allocate(rows, cols);
        be.upload(data, t);
        return t;
    }

    private float[] read(Tensor t) {
        float[] a = new float[t.size()];
        be.download(t, a);
        return a;
    }

    /** Sizes: odd ones, and one above the parallel threshold with a partial last row block. */
    @ParameterizedTest(name = "transA={0} transB={1} m={2} n={3} k={4} beta={5}")
    @CsvSource({
            "false,false,7,5,3,0", "true,false,7,5,3,0", "false,true,7,5,3,0", "true,true,7,5,3,0",
            "false,false,37,19,70,0.5", "true,false,37,19,70,1", "false,true,37,19,70,0", "true,true,37,19,70,-2",
            "false,false,130,90,300,0", "true,false,130,90,300,0", "false,true,131,91,301,1", "true,true,130,90,300,0",
            "false,false,1,1,1,0"})
    void gemmMatchesDoubleReference(boolean ta, boolean tb, int m, int n, int k, float beta) {
        Random rng = new Random(31L * m + 7L * n + k + (ta ? 1 : 0) + (tb ? 2 : 0));
        float alpha = 0.75f;
        float[] a = gaussian(rng, m * k);
        float[] b = gaussian(rng, k * n);
        float[] c0 = gaussian(rng, m * n);
        if (beta == 0f) Arrays.fill(c0, Float.NaN); // BLAS: beta = 0 ignores C, NaN included
        Tensor ta_ = tensor(ta ? k : m, ta ? m : k, a);
        Tensor tb_ = tensor(tb ? n : k, tb ? k : n, b);
        Tensor tc = tensor(m, n, c0);
        be.gemm(ta, tb, alpha, ta_, tb_, beta, tc);
        float[] c = read(tc);
        int bad = 0;
        String first = null;
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double s = 0, mag = 0;
                for (int p = 0; p < k; p++) {
                    double av = ta ? a[p * m + i] : a[i * k + p];
                    double bv = tb ? b[j * k + p] : b[p * n + j];
                    s += av * bv;
                    mag += Math.abs(av * bv);
                }
                double e = alpha * s + (beta == 0f ? 0 : beta * (double) c0[i * n + j]);
                double tol = GEMM_RTOL * (Math.abs(alpha) * mag + (beta == 0f ? 0 : Math.abs(beta * c0[i * n + j]))) + 1e-7;
                if (!(Math.abs(c[i * n + j] - e) <= tol)) {
                    if (first == null) first = "c[" + i + "][" + j + "]: expected " + e + ", got " + c[i * n + j];
                    bad++;
                }
            }
        }
        assertEquals(0, bad, bad + " of " + m * n + " elements wrong; first " + first);
    }

    @Test
    void gemmRejectsMismatchedShapesBeforeWriting() {
        Tensor a = tensor(3, 4, gaussian(new Random(1), 12));
        Tensor b = tensor(5, 2, gaussian(new Random(2), 10));
        float[] c0 = gaussian(new Random(3), 6);
        Tensor c = tensor(3, 2, c0);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> be.gemm(false, false, 1f, a, b, 0f, c));
        assertTrue(e.getMessage().contains("b:") && e.getMessage().contains("[5, 2]"), e.getMessage());
        assertArrayEquals(c0, read(c), "a failing call must not write C");
        Tensor b2 = tensor(4, 2, gaussian(new Random(4), 8));
        Tensor cWrong = tensor(2, 3, gaussian(new Random(5), 6));
        e = assertThrows(IllegalArgumentException.class, () -> be.gemm(false, false, 1f, a, b2, 0f, cWrong));
        assertTrue(e.getMessage().startsWith("c: expected [3, 2]"), e.getMessage());
    }

    @Test
    void softmaxCrossEntropyMatchesReference() {
        Random rng = new Random(11);
        int rows = 9, cols = 7;
        float[] z = gaussian(rng, rows * cols);
        z[3] = 80f; // large logits must not overflow exp
        int[] labels = new int[rows];
        for (int r = 0; r < rows; r++) labels[r] = rng.nextInt(cols);
        float[] poison = new float[rows * cols];
        Arrays.fill(poison, Float.NaN);
        Tensor g = tensor(rows, cols, poison);
        double loss = be.softmaxCrossEntropy(tensor(rows, cols, z), labels, g);
        float[] grad = read(g);
        double expected = 0;
        for (int r = 0; r < rows; r++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < cols; j++) max = Math.max(max, z[r * cols + j]);
            double sum = 0;
            for (int j = 0; j < cols; j++) sum += Math.exp(z[r * cols + j] - max);
            expected += Math.log(sum) + max - z[r * cols + labels[r]];
            for (int j = 0; j < cols; j++) {
                double p = Math.exp(z[r * cols + j] - max) / sum;
                double e = (p - (j == labels[r] ? 1 : 0)) / rows;
                assertEquals(e, grad[r * cols + j], 1e-7 + 1e-6 * Math.abs(e), "dlogits[" + r + "][" + j + "]");
            }
        }
        assertEquals(expected, loss, 1e-6 * expected);
    }

    @Test
    void countCorrectTakesTheArgMax() {
        float[] z = {0.1f, 0.9f, 0.3f, /**/ 2f, -1f, 1f, /**/ 0f, 0f, 5f};
        Tensor t = tensor(3, 3, z);
        assertEquals(2, be.countCorrect(t, new int[] {1, 0, 1}));
        assertEquals(3, be.countCorrect(t, new int[] {1, 0, 2}));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> be.countCorrect(t, new int[] {1, 3, 0}));
        assertTrue(e.getMessage().startsWith("labels[1]: expected a class in [0, 3), got 3"), e.getMessage());
    }

    @Test
    void elementwiseOpsMatchTheirDefinitions() {
        Random rng = new Random(5);
        int rows = 6, cols = 5;
        float[] x = gaussian(rng, rows * cols);
        float[] bias = gaussian(rng, cols);
        Tensor tx = tensor(rows, cols, x);
        be.addBias(tx, tensor(1, cols, bias));
        float[] xb = read(tx);
        for (int i = 0; i < x.length; i++) assertEquals(x[i] + bias[i % cols], xb[i], 0f, "addBias[" + i + "]");

        Tensor sums = tensor(1, cols, new float[] {Float.NaN, Float.NaN, Float.NaN, Float.NaN, Float.NaN});
        be.sumRows(tensor(rows, cols, x), sums);
        float[] s = read(sums);
        for (int j = 0; j < cols; j++) {
            double e = 0;
            for (int r = 0; r < rows; r++) e += x[r * cols + j];
            assertEquals(e, s[j], 1e-6, "sumRows[" + j + "]");
        }

        Tensor y = be.allocate(rows, cols);
        be.reluForward(tensor(rows, cols, x), y);
        float[] ys = read(y);
        float[] dy = gaussian(rng, rows * cols);
        Tensor dx = be.allocate(rows, cols);
        be.reluBackward(y, tensor(rows, cols, dy), dx);
        float[] dxs = read(dx);
        for (int i = 0; i < x.length; i++) {
            assertEquals(x[i] > 0 ? x[i] : 0f, ys[i], 0f, "relu[" + i + "]");
            assertEquals(x[i] > 0 ? dy[i] : 0f, dxs[i], 0f, "reluBackward[" + i + "]");
        }
    }

    @Test
    void sgdUpdateFollowsPyTorchsConvention() {
        Random rng = new Random(9);
        int n = 10;
        float[] p = gaussian(rng, n), g = gaussian(rng, n), v = gaussian(rng, n);
        Tensor tp = tensor(1, n, p), tg = tensor(1, n, g), tv = tensor(1, n, v);
        float lr = 0.1f, m = 0.9f, wd = 0.01f;
        be.sgdUpdate(tp, tg, tv, lr, m, wd);
        float[] p2 = read(tp), v2 = read(tv);
        for (int i = 0; i < n; i++) {
            double vi = m * (double) v[i] + g[i] + wd * (double) p[i];
            assertEquals(vi, v2[i], 1e-6, "velocity[" + i + "]");
            assertEquals(p[i] - lr * vi, p2[i], 1e-6, "param[" + i + "]");
        }
        assertArrayEquals(g, read(tg), "the gradient is an input");
    }

    @Test
    void tensorsOfTheWrongShapeAreRejectedByName() {
        Tensor a = be.allocate(2, 3);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> be.reluForward(a, be.allocate(3, 2)));
        assertEquals("y: expected shape [2, 3], got [3, 2]", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> be.upload(new float[5], a));
        assertEquals("src: expected 6 floats for [2, 3], got 5", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> be.allocate(0, 3));
        assertTrue(e.getMessage().contains("[0, 3]"), e.getMessage());
    }
}
