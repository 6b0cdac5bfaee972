package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.BackendUnavailableException;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.ChannelStatistics;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.cpu.CpuBatchNormOps;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The pairwise cross-check without a GPU: CPU vs cuDNN-over-a-fake, a backend with a planted error, a missing one. */
class CrossCheckTest {
    private static final List<Shape> SHAPES = List.of(Shape.channelsFirst(4, 3, 5, 2), Shape.channelsLast(6, 5, 7));

    /** The CPU backend with y of forward training off by 1e-3 relative at one element: must be caught. */
    private static final class Skewed implements BatchNormOps {
        private final CpuBatchNormOps cpu = new CpuBatchNormOps();

        @Override public String name() { return "skewed"; }
        @Override public ChannelStatistics statistics(Shape s, float[] x) { return cpu.statistics(s, x); }

        @Override
        public void forwardTraining(Shape s, float[] x, float[] g, float[] b, double eps, float[] rm, float[] rv,
                                    double m, float[] y, float[] sm, float[] si) {
            cpu.forwardTraining(s, x, g, b, eps, rm, rv, m, y, sm, si);
            y[y.length / 2] *= 1.001f;
        }

        @Override
        public void forwardInference(Shape s, float[] x, float[] g, float[] b, float[] rm, float[] rv, double eps,
                                     float[] y) {
            cpu.forwardInference(s, x, g, b, rm, rv, eps, y);
        }

        @Override
        public void normalize(Shape s, float[] x, float[] g, float[] b, float[] mean, float[] invstd, float[] y) {
            cpu.normalize(s, x, g, b, mean, invstd, y);
        }

        @Override
        public void backwardTraining(Shape s, float[] x, float[] dy, float[] g, float[] sm, float[] si, float[] dx,
                                     float[] dg, float[] db) {
            cpu.backwardTraining(s, x, dy, g, sm, si, dx, dg, db);
        }

        @Override
        public void backwardInference(Shape s, float[] x, float[] dy, float[] g, float[] rm, float[] rv, double eps,
                                      float[] dx, float[] dg, float[] db) {
            cpu.backwardInference(s, x, dy, g, rm, rv, eps, dx, dg, db);
        }

        @Override public void close() { cpu.close(); }
    }

    private static BatchNormOps open(String name) {
        switch (name) {
            case "cpu": return new CpuBatchNormOps();
            case "cudnn": {
                HostDevice d = new HostDevice();
                return new CudnnBatchNormOps(new FakeCudnnApi(d), d, true, 0.0);
            }
            case "skewed": return new Skewed();
            default: throw new BackendUnavailableException(name, "no such GPU here (test)");
        }
    }

    @Test
    void comparesAvailableBackendsPairwiseAndSaysWhatItSkipped() {
        CrossCheck.Report r = CrossCheck.run(List.of("cpu", "cuda", "cudnn", "skewed"), CrossCheckTest::open, SHAPES, 5);
        String table = r.toTable();
        System.out.println(table);
        assertEquals(List.of("cpu", "cudnn", "skewed"), r.compared());
        assertEquals("backend 'cuda' is unavailable: no such GPU here (test)", r.skipped().get("cuda"));
        assertEquals(SHAPES.size() * 4 * 3, r.rows().size(), "shapes x ops x pairs");
        for (CrossCheck.Row row : r.rows()) {
            boolean cpuCudnn = row.pair().equals("cpu vs cudnn");
            if (cpuCudnn && !row.op().equals("backward-eval")) {
                assertEquals("ok", row.status(), row.toString());
                assertTrue(row.maxRelError() <= (row.op().startsWith("backward") ? 2e-4 : 2e-5), row.toString());
            }
            if (row.op().equals("backward-eval") && row.pair().contains("cudnn")) {
                assertTrue(row.status().startsWith("cudnn: unsupported") && row.status().contains("frozen"),
                        row.toString());
            }
            if (row.pair().contains("skewed") && row.op().equals("forward-train")) {
                assertEquals("MISMATCH", row.status(), row.toString());
                // 1e-3 relative at one element, less where that element is under 1% of the tensor's scale
                assertTrue(row.maxRelError() > 1e-4 && row.maxRelError() < 1.01e-3, row.toString());
            }
            if (row.pair().equals("cpu vs skewed") && !row.op().equals("forward-train")) {
                assertEquals(0.0, row.maxRelError(), 0.0, "same code, same inputs: " + row);
            }
        }
        assertFalse(r.passed(), "the planted error fails the check");
        assertTrue(table.contains("skipped cuda: backend 'cuda' is unavailable"), table);
    }

    @Test
    void relativeErrorMeasure() {
        assertEquals(0.0, CrossCheck.maxRelError(new float[] {1, -2}, new float[] {1, -2}));
        assertEquals(0.5, CrossCheck.maxRelError(new float[] {1, 4}, new float[] {1, 2}), 1e-12);
        // near-zero elements are measured against 1e-2 of the tensor's scale, not against themselves
        assertEquals(1e-6 / (1e-2 * 1000), CrossCheck.maxRelError(new float[] {1e-6f, 1000}, new float[] {0, 1000}), 1e-12);
        assertEquals(Double.POSITIVE_INFINITY, CrossCheck.maxRelError(new float[] {Float.NaN}, new float[] {1}));
    }

    @Test
    void withOnlyTheCpuThereIsNothingToCompareAndItSaysSo() {
        CrossCheck.Report r = CrossCheck.run(List.of("cpu", "cuda", "cudnn"),
                n -> n.equals("cpu") ? new CpuBatchNormOps() : open("x" + n), SHAPES, 1);
        assertTrue(r.rows().isEmpty());
        assertTrue(r.passed());
        assertEquals(2, r.skipped().size());
        assertTrue(r.toTable().contains("fewer than two backends"), r.toTable());
    }
}
