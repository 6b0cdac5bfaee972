package io.github.batchnorm4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.ChannelStatistics;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.cpu.CpuBatchNormOps;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/**
 * {@code check}'s work: the CPU backend passes, backends with planted bugs fail exactly where they are wrong (against
 * float64 and in the pairwise table), unsupported operations are reported as such, and the pairwise measure.
 */
class CrossCheckTest {

    @Test
    void cpuBackendPassesEveryRow() {
        try (BatchNormOps cpu = new CpuBatchNormOps()) {
            CrossCheck.Report report = CrossCheck.run(List.of(cpu), 42);
            assertEquals(CrossCheck.shapes().size() * CrossCheck.OPS.size(), report.rows().size());
            for (CrossCheck.Row r : report.rows()) assertEquals(CrossCheck.Result.PASS, r.result(), r.toString());
            assertTrue(report.pairs().isEmpty(), "one backend: no pairs");
            assertEquals(0, report.failures());
        }
    }

    @Test
    void shapesCoverBothLayoutsAndTheEdges() {
        List<Shape> shapes = CrossCheck.shapes();
        assertTrue(shapes.contains(Shape.channelsLast(2, 3)), "NC with M = 2");
        assertTrue(shapes.contains(Shape.channelsFirst(4, 1, 9)), "C = 1");
        assertTrue(shapes.contains(Shape.channelsLast(2, 3, 2, 3, 4)), "5-D channels-last");
        assertTrue(shapes.contains(Shape.channelsFirst(1, 5, 3, 3)), "N = 1 with spatial > 1");
    }

    private static List<CrossCheck.Row> rows(BatchNormOps planted) {
        return CrossCheck.run(List.of(planted), 42).rows();
    }

    /**
     * Ops whose rows fail against float64, checked to be exactly the ops whose pairwise rows against the CPU backend
     * fail (the planted bugs are far beyond both tolerances).
     */
    private static Set<String> failingOps(BatchNormOps planted) {
        try (BatchNormOps cpu = new CpuBatchNormOps()) {
            CrossCheck.Report r = CrossCheck.run(List.of(cpu, planted), 42);
            Set<String> float64 = r.rows().stream().filter(row -> !row.pass()).map(CrossCheck.Row::op)
                    .collect(Collectors.toSet());
            assertTrue(r.rows().stream().filter(row -> row.backend().equals("cpu")).allMatch(CrossCheck.Row::pass));
            Set<String> pairwise = r.pairs().stream().filter(p -> !p.pass()).map(CrossCheck.PairRow::op)
                    .collect(Collectors.toSet());
            assertEquals(float64, pairwise, "pairwise failures");
            return float64;
        }
    }

    @Test
    void biasedRunningVarianceFailsForwardTrainOnly() {
        // Planted bug: running_var updated with the biased variance (forgets M/(M − 1)).
        BatchNormOps planted = new DelegatingOps() {
            @Override
            public void forwardTraining(Shape shape, float[] x, float[] gamma, float[] beta, double eps,
                                        float[] runningMean, float[] runningVar, double momentum, float[] y,
                                        float[] saveMean, float[] saveInvstd) {
                float[] before = runningVar == null ? null : runningVar.clone();
                cpu.forwardTraining(shape, x, gamma, beta, eps, runningMean, runningVar, momentum, y, saveMean,
                        saveInvstd);
                if (runningVar != null) {
                    double m = shape.reductionSize();
                    for (int c = 0; c < runningVar.length; c++) {
                        double unbiased = (runningVar[c] - (1 - momentum) * before[c]) / momentum;
                        runningVar[c] = (float) ((1 - momentum) * before[c] + momentum * unbiased * (m - 1) / m);
                    }
                }
            }
        };
        assertEquals(Set.of("forward-train"), failingOps(planted));
    }

    @Test
    void evalBackwardIgnoringGammaFailsBackwardEvalOnly() {
        BatchNormOps planted = new DelegatingOps() {
            @Override
            public void backwardInference(Shape shape, float[] x, float[] dy, float[] gamma, float[] runningMean,
                                          float[] runningVar, double eps, float[] dx, float[] dgamma, float[] dbeta) {
                cpu.backwardInference(shape, x, dy, null, runningMean, runningVar, eps, dx, dgamma, dbeta);
            }
        };
        assertEquals(Set.of("backward-eval"), failingOps(planted));
    }

    @Test
    void anUnwrittenElementFails() {
        // The outputs are NaN-poisoned before each call: a backend that skips the last dx element must fail.
        BatchNormOps planted = new DelegatingOps() {
            @Override
            public void backwardTraining(Shape shape, float[] x, float[] dy, float[] gamma, float[] saveMean,
                                         float[] saveInvstd, float[] dx, float[] dgamma, float[] dbeta) {
                float last = dx[dx.length - 1];
                cpu.backwardTraining(shape, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
                dx[dx.length - 1] = last;
            }
        };
        for (CrossCheck.Row r : rows(planted)) {
            assertEquals(!r.op().equals("backward-train"), r.pass(), r.toString());
        }
    }

    @Test
    void aBackendThatThrowsIsAFailRowNotACrash() {
        BatchNormOps planted = new DelegatingOps() {
            @Override
            public void forwardInference(Shape shape, float[] x, float[] gamma, float[] beta, float[] runningMean,
                                         float[] runningVar, double eps, float[] y) {
                throw new IllegalStateException("kernel launch failed");
            }
        };
        CrossCheck.Row eval = rows(planted).stream().filter(r -> r.op().equals("forward-eval")).findFirst().orElseThrow();
        assertFalse(eval.pass());
        assertEquals(CrossCheck.Result.FAIL, eval.result());
        assertTrue(eval.detail().contains("kernel launch failed"), eval.toString());
    }

    @Test
    void aSlightlyWrongForwardFails() {
        // y off by 3e-5 relative in one element: beyond the 1e-5 forward tolerance.
        BatchNormOps planted = new DelegatingOps() {
            @Override
            public void forwardInference(Shape shape, float[] x, float[] gamma, float[] beta, float[] runningMean,
                                         float[] runningVar, double eps, float[] y) {
                cpu.forwardInference(shape, x, gamma, beta, runningMean, runningVar, eps, y);
                y[y.length / 2] += 3e-5f * Math.max(1f, Math.abs(y[y.length / 2]));
            }
        };
        assertEquals(Set.of("forward-eval"), failingOps(planted));
    }

    @Test
    void aWrongCountFromStatisticsFails() {
        BatchNormOps planted = new DelegatingOps() {
            @Override
            public ChannelStatistics statistics(Shape shape, float[] x) {
                ChannelStatistics s = cpu.statistics(shape, x);
                return new ChannelStatistics(s.count() + 1, s.means(), s.m2s());
            }
        };
        assertEquals(Set.of("statistics"), failingOps(planted));
    }

    @Test
    void normalizeIgnoringBetaFails() {
        BatchNormOps planted = new DelegatingOps() {
            @Override
            public void normalize(Shape shape, float[] x, float[] gamma, float[] beta, float[] mean, float[] invstd,
                                  float[] y) {
                cpu.normalize(shape, x, gamma, null, mean, invstd, y);
            }
        };
        assertEquals(Set.of("normalize"), failingOps(planted));
    }

    @Test
    void unsupportedOpsAreReportedNotFailed() {
        // As the cudnn backend does: no eval-mode backward, statistics or normalize.
        BatchNormOps partial = new DelegatingOps() {
            @Override
            public String name() {
                return "partial";
            }

            @Override
            public ChannelStatistics statistics(Shape shape, float[] x) {
                throw new UnsupportedOperationException("no statistics here");
            }

            @Override
            public void backwardInference(Shape shape, float[] x, float[] dy, float[] gamma, float[] runningMean,
                                          float[] runningVar, double eps, float[] dx, float[] dgamma, float[] dbeta) {
                throw new UnsupportedOperationException("no frozen backward here");
            }
        };
        try (BatchNormOps cpu = new CpuBatchNormOps()) {
            CrossCheck.Report r = CrossCheck.run(List.of(cpu, partial), 3);
            assertEquals(0, r.failures(), "unsupported is no failure");
            for (CrossCheck.Row row : r.rows()) {
                boolean unsupported = row.backend().equals("partial")
                        && (row.op().equals("statistics") || row.op().equals("backward-eval"));
                assertEquals(unsupported ? CrossCheck.Result.UNSUPPORTED : CrossCheck.Result.PASS, row.result(),
                        row.toString());
                if (unsupported) assertTrue(row.detail().startsWith("unsupported: no "), row.toString());
            }
            assertEquals(CrossCheck.shapes().size() * CrossCheck.OPS.size(), r.pairs().size(), "one pair");
            for (CrossCheck.PairRow p : r.pairs()) {
                boolean unsupported = p.op().equals("statistics") || p.op().equals("backward-eval");
                assertEquals(unsupported ? CrossCheck.Result.UNSUPPORTED : CrossCheck.Result.PASS, p.result(),
                        p.toString());
                if (unsupported) assertEquals("partial unsupported", p.detail());
                else assertEquals(0.0, p.maxRelError(), "same code, same inputs: " + p);
            }
        }
    }

    @Test
    void aPairThatDiffersSlightlyIsMeasuredAndFailsBeyondTwiceTheTolerance() {
        // Two backends each 1.5e-5 away from the truth in opposite directions at one y element: each fails its own
        // 1e-5 float64 bound, and the pair (3e-5 apart) fails its 2e-5 bound; the measure is |a - b|/max(|a|,|b|,1).
        BatchNormOps up = skewedEval("up", 1.5e-5f);
        BatchNormOps down = skewedEval("down", -1.5e-5f);
        CrossCheck.Report r = CrossCheck.run(List.of(up, down), 42);
        for (CrossCheck.PairRow p : r.pairs()) {
            if (p.op().equals("forward-eval")) {
                assertEquals(CrossCheck.Result.FAIL, p.result(), p.toString());
                assertTrue(p.maxRelError() > 2.9e-5 && p.maxRelError() < 3.1e-5, p.toString());
                assertEquals("up~down", p.pair());
            } else {
                assertEquals(0.0, p.maxRelError(), p.toString());
            }
        }
    }

    @Test
    void aWrongMaskBitFailsTheFusedForwardOnly() {
        // One bit flipped at the element of largest |y| (clearly away from 0): y is right, the mask is not.
        BatchNormOps planted = new DelegatingOps() {
            @Override
            public void forwardTrainingRelu(Shape shape, float[] x, float[] z, float[] gamma, float[] beta,
                                            double eps, float[] runningMean, float[] runningVar, double momentum,
                                            float[] y, int[] mask, float[] saveMean, float[] saveInvstd) {
                cpu.forwardTrainingRelu(shape, x, z, gamma, beta, eps, runningMean, runningVar, momentum, y, mask,
                        saveMean, saveInvstd);
                int at = 0;
                for (int i = 0; i < y.length; i++) if (y[i] > y[at]) at = i;
                if (mask != null) mask[at / 32] ^= 1 << (at % 32);
            }
        };
        assertEquals(Set.of("forward-train-relu"), failingOps(planted));
        CrossCheck.Row r = rows(planted).stream().filter(x -> x.op().equals("forward-train-relu")).findFirst()
                .orElseThrow();
        assertEquals("mask", r.detail(), r.toString());
    }

    @Test
    void aResidualGradientThatIgnoresTheMaskFails() {
        BatchNormOps planted = new DelegatingOps() {
            @Override
            public void backwardTrainingRelu(Shape shape, float[] x, float[] dy, int[] mask, float[] gamma,
                                             float[] saveMean, float[] saveInvstd, float[] dx, float[] dz,
                                             float[] dgamma, float[] dbeta) {
                cpu.backwardTrainingRelu(shape, x, dy, mask, gamma, saveMean, saveInvstd, dx, dz, dgamma, dbeta);
                if (dz != null) System.arraycopy(dy, 0, dz, 0, dy.length);
            }
        };
        assertEquals(Set.of("backward-train-relu"), failingOps(planted));
    }

    @Test
    void maskErrorScoresDisagreementsBySizeOfThePreActivation() {
        double[] v = {2.0, -3.0, 1e-7, -1e-7, 0.5};
        assertEquals(0.0, ErrorMetric.maskError(new float[] {1, 0, 1, 0, 1}, v));
        assertEquals(1e-7, ErrorMetric.maskError(new float[] {1, 0, 0, 1, 1}, v), 1e-20);   // flips near 0: tiny
        assertEquals(0.5, ErrorMetric.maskError(new float[] {1, 0, 1, 0, 0}, v));
        assertEquals(1.0, ErrorMetric.maskError(new float[] {0, 0, 1, 0, 1}, v));           // |v| = 2: capped at 1
        assertTrue(Double.isNaN(ErrorMetric.maskError(new float[] {Float.NaN, 0, 1, 0, 1}, v)));
        assertEquals(0.5, ErrorMetric.maskPairwiseError(new float[] {1, 0, 1, 0, 1}, new float[] {1, 0, 0, 0, 0}, v));
    }

    private static BatchNormOps skewedEval(String name, float relative) {
        return new DelegatingOps() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public void forwardInference(Shape shape, float[] x, float[] gamma, float[] beta, float[] runningMean,
                                         float[] runningVar, double eps, float[] y) {
                cpu.forwardInference(shape, x, gamma, beta, runningMean, runningVar, eps, y);
                int i = y.length / 2;
                y[i] += relative * Math.max(1f, Math.abs(y[i]));
            }
        };
    }

    @Test
    void pairwiseMeasure() {
        assertEquals(0.0, ErrorMetric.maxPairwiseError(new float[] {1, -2}, new float[] {1, -2}));
        // relative to the larger magnitude of the two, whichever side it is on
        assertEquals(0.5, ErrorMetric.maxPairwiseError(new float[] {1, 4}, new float[] {1, 2}), 1e-12);
        assertEquals(0.5, ErrorMetric.maxPairwiseError(new float[] {1, 2}, new float[] {1, 4}), 1e-12);
        // absolute below 1: values near zero do not blow up
        assertEquals(1e-3, ErrorMetric.maxPairwiseError(new float[] {0.001f}, new float[] {0}), 1e-9);
        assertTrue(Double.isNaN(ErrorMetric.maxPairwiseError(new float[] {Float.NaN}, new float[] {1})));
        assertTrue(Double.isNaN(ErrorMetric.maxPairwiseError(new float[] {1}, new float[] {Float.POSITIVE_INFINITY})));
    }

    // ---- storage types ----------------------------------------------------------------------------------------

    private static final List<DType> ALL = List.of(DType.values());

    @Test
    void cpuBackendPassesEveryRowInEveryDtypeWithTheStorageTypesTolerances() {
        try (BatchNormOps cpu = new CpuBatchNormOps()) {
            CrossCheck.Report report = CrossCheck.run(List.of(cpu), 42, ALL);
            assertEquals(ALL, report.dtypes());
            assertEquals(3L * CrossCheck.shapes().size() * CrossCheck.OPS.size(), report.rows().size());
            for (CrossCheck.Row r : report.rows()) {
                assertEquals(CrossCheck.Result.PASS, r.result(), r.toString());
                double base = r.op().startsWith("backward") ? CrossCheck.GRADIENT_TOLERANCE
                        : CrossCheck.FORWARD_TOLERANCE;
                boolean stored = List.of("y", "dx", "dz").contains(r.detail());
                assertEquals(r.dtype().is16Bit() && stored ? r.dtype().unitRoundoff() + 2 * base : base,
                        r.tolerance(), 1e-15, r.toString());
            }
        }
        assertEquals(0x1p-11 + 2e-5, CrossCheck.tolerance(DType.FLOAT16, "forward-train", "y"), 1e-15);
        assertEquals(0x1p-8 + 2e-4, CrossCheck.tolerance(DType.BFLOAT16, "backward-train", "dx"), 1e-15);
        assertEquals(1e-4, CrossCheck.tolerance(DType.BFLOAT16, "backward-train", "dgamma"));
        assertEquals(1e-5, CrossCheck.tolerance(DType.FLOAT16, "forward-train", "save_mean"));
    }

    /** Rounds toward zero where the CPU rounds to nearest: off by up to 1 ulp, twice the bound. */
    private static void truncate(DType t, float[] v, short[] out) {
        for (int i = 0; i < v.length; i++) {
            short b = t.encode(v[i]);
            float back = t.decode(b);
            if (Float.isFinite(back) && Math.abs(back) > Math.abs(v[i])) b = (short) (b - 1);
            out[i] = b;
        }
    }

    @Test
    void truncatingToSixteenBitsFailsTheRowsThatStoreIt() {
        BatchNormOps planted = new DelegatingOps() {
            @Override
            public void forwardTraining(Shape shape, DType dtype, short[] x, float[] gamma, float[] beta, double eps,
                                        float[] runningMean, float[] runningVar, double momentum, short[] y,
                                        float[] saveMean, float[] saveInvstd) {
                float[] y32 = new float[x.length];
                cpu.forwardTraining(shape, dtype.decode(x), gamma, beta, eps, runningMean, runningVar, momentum, y32,
                        saveMean, saveInvstd);
                truncate(dtype, y32, y);
            }
        };
        try (BatchNormOps cpu = new CpuBatchNormOps()) {
            CrossCheck.Report r = CrossCheck.run(List.of(cpu, planted), 42, ALL);
            for (CrossCheck.Row row : r.rows()) {
                boolean affected = row.backend().equals("planted") && row.dtype().is16Bit()
                        && row.op().startsWith("forward-train") && !row.op().endsWith("relu");
                if (!affected) assertTrue(row.pass(), row.toString());
                // the largest shape has thousands of |y| in [1, 2), where truncation is off by up to 2u
                if (affected && row.shape().equals("4,4099")) {
                    assertEquals(CrossCheck.Result.FAIL, row.result(), row.toString());
                    assertEquals("y", row.detail(), row.toString());
                }
            }
            // Pairwise, one ulp apart is within 2·(u + 2·tol): two correct backends may round a float32 result that
            // sits near a tie to neighbouring values, so only the float64 rows catch a truncating backend.
            assertTrue(r.pairs().stream().allMatch(CrossCheck.PairRow::pass));
        }
    }

    @Test
    void theFloat32OutputsOfASixteenBitRowKeepTheFloat32Tolerances() {
        // dgamma off by 3e-4 relative: within a 16-bit dx's bound, beyond float32's 1e-4 for a float32 output.
        BatchNormOps planted = new DelegatingOps() {
            @Override
            public void backwardTraining(Shape shape, DType dtype, short[] x, short[] dy, float[] gamma,
                                         float[] saveMean, float[] saveInvstd, short[] dx, float[] dgamma,
                                         float[] dbeta) {
                cpu.backwardTraining(shape, dtype, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
                if (dgamma != null) dgamma[0] += 3e-4f * Math.max(1f, Math.abs(dgamma[0]));
            }
        };
        List<CrossCheck.Row> rows = CrossCheck.run(List.of(planted), 42, List.of(DType.FLOAT16)).rows();
        for (CrossCheck.Row r : rows) {
            assertEquals(!r.op().equals("backward-train"), r.pass(), r.toString());
            if (!r.pass()) assertEquals("dgamma 1e-04", r.detail() + " " + String.format("%.0e", r.tolerance()));
        }
    }

    @Test
    void aRefusedDtypeIsUnsupportedNotFailed() {
        BatchNormOps refusesBfloat16 = new DelegatingOps() {
            private void refuse(DType t) {
                if (t == DType.BFLOAT16) throw new UnsupportedOperationException("planted: no bfloat16 here");
            }

            @Override
            public ChannelStatistics statistics(Shape shape, DType dtype, short[] x) {
                refuse(dtype);
                return cpu.statistics(shape, dtype, x);
            }

            @Override
            public void forwardTraining(Shape shape, DType dtype, short[] x, float[] gamma, float[] beta, double eps,
                                        float[] runningMean, float[] runningVar, double momentum, short[] y,
                                        float[] saveMean, float[] saveInvstd) {
                refuse(dtype);
                cpu.forwardTraining(shape, dtype, x, gamma, beta, eps, runningMean, runningVar, momentum, y, saveMean,
                        saveInvstd);
            }
        };
        try (BatchNormOps cpu = new CpuBatchNormOps()) {
            CrossCheck.Report r = CrossCheck.run(List.of(cpu, refusesBfloat16), 42, ALL);
            assertEquals(0, r.failures());
            Set<String> unsupported = r.rows().stream().filter(row -> row.result() == CrossCheck.Result.UNSUPPORTED)
                    .map(row -> row.dtype() + " " + row.op()).collect(Collectors.toSet());
            assertEquals(Set.of("bfloat16 statistics", "bfloat16 forward-train", "bfloat16 forward-train-plain",
                    "bfloat16 backward-train"), unsupported);
        }
    }
}
