package io.github.batchnorm4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.cpu.CpuBatchNormOps;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/** {@code check}'s work: the CPU backend passes, and backends with planted bugs fail exactly where they are wrong. */
class CrossCheckTest {

    @Test
    void cpuBackendPassesEveryRow() {
        try (BatchNormOps cpu = new CpuBatchNormOps()) {
            List<CrossCheck.Row> rows = CrossCheck.run(cpu, 42);
            assertEquals(CrossCheck.shapes().size() * 5, rows.size());
            for (CrossCheck.Row r : rows) assertTrue(r.pass(), r.toString());
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

    /** Ops whose names are the rows expected to fail. */
    private static Set<String> failingOps(BatchNormOps planted) {
        return CrossCheck.run(planted, 42).stream().filter(r -> !r.pass()).map(CrossCheck.Row::op)
                .collect(Collectors.toSet());
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
        List<CrossCheck.Row> rows = CrossCheck.run(planted, 42);
        for (CrossCheck.Row r : rows) {
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
        List<CrossCheck.Row> rows = CrossCheck.run(planted, 42);
        CrossCheck.Row eval = rows.stream().filter(r -> r.op().equals("forward-eval")).findFirst().orElseThrow();
        assertFalse(eval.pass());
        assertTrue(eval.worst().contains("kernel launch failed"), eval.toString());
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
}
