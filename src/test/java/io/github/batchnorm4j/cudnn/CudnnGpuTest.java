package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.Backends;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.cli.CrossCheck;
import io.github.batchnorm4j.cuda.CudaProbe;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static io.github.batchnorm4j.testing.TestData.gaussian;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Real cuDNN against the float64 reference, both layouts and several ranks; skipped (with the probe's reason) where
 * cuDNN is unavailable. Proves on hardware what the fake assumes: the strided descriptors, the NULL-free argument
 * mapping, the unbiased running variance and the saved-statistics round trip.
 */
class CudnnGpuTest {
    private static final double FORWARD_TOL = 1e-5;
    private static final double GRADIENT_TOL = 1e-4;

    @BeforeAll
    static void needsCudnn() {
        CudaProbe.Result r = CudnnProbe.probe();
        assumeTrue(r.available(), "no cuDNN: " + r.detail());
        System.out.println("[GPU] " + r.detail());
    }

    @Test
    void matchesTheFloat64Reference() {
        Random r = new Random(23);
        List<Shape> shapes = List.of(Shape.channelsFirst(8, 16, 7, 7), Shape.channelsLast(8, 7, 7, 16),
                Shape.channelsFirst(4, 5, 33), Shape.channelsLast(256, 67), Shape.channelsFirst(3, 1, 5, 4, 3),
                Shape.channelsLast(2, 3, 5, 4, 6));
        try (BatchNormOps ops = Backends.open("cudnn")) {
            for (Shape s : shapes) {
                int n = s.elementCountAsInt();
                int c = s.channels();
                float[] x = gaussian(r, n, 3, 2);
                float[] gamma = gaussian(r, c, 1, 0.5);
                float[] beta = gaussian(r, c, 0, 0.5);
                float[] rm = new float[c];
                float[] rv = new float[c];
                Arrays.fill(rv, 1f);
                float[] y = new float[n];
                Arrays.fill(y, Float.NaN);
                float[] mean = new float[c];
                float[] invstd = new float[c];
                ops.forwardTraining(s, x, gamma, beta, 1e-5, rm, rv, 0.1, y, mean, invstd);
                Reference.assertClose("y " + s, Reference.forwardTrainY(s, x, gamma, beta, 1e-5), y, FORWARD_TOL);
                long m = s.reductionSize();
                for (int k = 0; k < c; k++) {
                    double var = Reference.biasedVar(s, x, k);
                    assertEquals(0.1 * Reference.mean(s, x, k), rm[k], 1e-5 * (1 + Math.abs(rm[k])), "running mean");
                    assertEquals(0.9 + 0.1 * var * m / (m - 1), rv[k], 1e-5 * (1 + rv[k]), "running var (unbiased)");
                    assertEquals(1 / Math.sqrt(var + 1e-5), invstd[k], 1e-5 * invstd[k], "saved invstd");
                }
                float[] dy = gaussian(r, n, 0.1, 1);
                float[] dx = new float[n];
                float[] dg = new float[c];
                float[] db = new float[c];
                ops.backwardTraining(s, x, dy, gamma, mean, invstd, dx, dg, db);
                double[][] e = Reference.backwardTrain(s, x, dy, gamma, 1e-5);
                Reference.assertClose("dx " + s, e[0], dx, GRADIENT_TOL);
                Reference.assertClose("dgamma " + s, e[1], dg, GRADIENT_TOL);
                Reference.assertClose("dbeta " + s, e[2], db, GRADIENT_TOL);
                ops.forwardInference(s, x, gamma, beta, rm, rv, 1e-5, y);
                Reference.assertClose("eval y " + s, Reference.evalY(s, x, gamma, beta, rm, rv, 1e-5), y, FORWARD_TOL);
            }
        }
    }

    @Test
    void crossCheckAgainstTheCpuAndOurKernelsPasses() {
        try (BatchNormOps cpu = Backends.open("cpu"); BatchNormOps cuda = Backends.open("cuda");
             BatchNormOps cudnn = Backends.open("cudnn")) {
            CrossCheck.Report report = CrossCheck.run(List.of(cpu, cuda, cudnn), 1);
            for (CrossCheck.PairRow p : report.pairs()) System.out.println(p);
            assertEquals(0, report.failures(), () -> report.rows().stream().filter(r -> !r.pass()).toList() + " "
                    + report.pairs().stream().filter(p -> !p.pass()).toList());
            assertTrue(report.pairs().stream().filter(p -> p.pair().equals("cuda~cudnn"))
                    .anyMatch(p -> p.result() == CrossCheck.Result.PASS), "cuda and cudnn were compared");
        }
    }
}
