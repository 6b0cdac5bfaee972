package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.Backends;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.cli.CrossCheck;
import io.github.batchnorm4j.testing.GpuTest;
import io.github.batchnorm4j.testing.Reference64;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static io.github.batchnorm4j.testing.TestData.gaussian;
import static io.github.batchnorm4j.testing.Tolerances.FORWARD_RTOL;
import static io.github.batchnorm4j.testing.Tolerances.GRADIENT_RTOL;
import static io.github.batchnorm4j.testing.Tolerances.assertClose;
import static io.github.batchnorm4j.testing.Tolerances.toDouble;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Real cuDNN against the float64 reference, both layouts and several ranks; skipped (with the probe's reason) where
 * cuDNN is unavailable. Proves on hardware what the fake assumes: the strided descriptors, the NULL-free argument
 * mapping, the unbiased running variance and the saved-statistics round trip.
 */
@GpuTest(cudnn = true)
class CudnnGpuTest {
    /** atol = rtol·1: unit-scale data, held to |a − e| ≤ rtol + rtol·|e| as these checks always were. */
    private static final double UNIT_SCALE = 1.0;

    @BeforeAll
    static void sayWhichCudnn() {
        System.out.println("[GPU] " + CudnnProbe.probe().detail());
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
                // from running mean 0 and var 1 with momentum 0.1: rm = 0.1·mean, rv = 0.9 + 0.1·var·M/(M − 1)
                Reference64.Forward f = Reference64.forwardTraining(s, x, gamma, beta, 1e-5, rm, rv, 0.1);
                float[] y = new float[n];
                Arrays.fill(y, Float.NaN);
                float[] mean = new float[c];
                float[] invstd = new float[c];
                ops.forwardTraining(s, x, gamma, beta, 1e-5, rm, rv, 0.1, y, mean, invstd);
                assertClose("y " + s, f.y(), toDouble(y), FORWARD_RTOL, UNIT_SCALE);
                for (int k = 0; k < c; k++) {
                    assertEquals(f.runningMean()[k], rm[k], 1e-5 * (1 + Math.abs(rm[k])), "running mean");
                    assertEquals(f.runningVar()[k], rv[k], 1e-5 * (1 + rv[k]), "running var (unbiased)");
                    assertEquals(f.invstd()[k], invstd[k], 1e-5 * invstd[k], "saved invstd");
                }
                float[] dy = gaussian(r, n, 0.1, 1);
                float[] dx = new float[n];
                float[] dg = new float[c];
                float[] db = new float[c];
                ops.backwardTraining(s, x, dy, gamma, mean, invstd, dx, dg, db);
                Reference64.Backward e = Reference64.backwardTraining(s, x, dy, gamma, f.mean(), f.invstd());
                assertClose("dx " + s, e.dx(), toDouble(dx), GRADIENT_RTOL, UNIT_SCALE);
                assertClose("dgamma " + s, e.dgamma(), toDouble(dg), GRADIENT_RTOL, UNIT_SCALE);
                assertClose("dbeta " + s, e.dbeta(), toDouble(db), GRADIENT_RTOL, UNIT_SCALE);
                ops.forwardInference(s, x, gamma, beta, rm, rv, 1e-5, y);
                assertClose("eval y " + s, Reference64.forwardEval(s, x, gamma, beta, rm, rv, 1e-5), toDouble(y),
                        FORWARD_RTOL, UNIT_SCALE);
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
