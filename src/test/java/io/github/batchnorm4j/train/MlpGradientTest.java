package io.github.batchnorm4j.train;

import io.github.batchnorm4j.ptx.EmulatedDevice;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The whole network's gradients (every weight, bias, gamma and beta, through softmax cross-entropy, ReLU and batch
 * norm) against central finite differences.
 *
 * <p>A tiny network, 5 → 4 → BN → ReLU → 3 → BN → ReLU → 3 classes, on a batch of 6 rows: small enough that every one
 * of its 58 parameters is perturbed, yet with two hidden layers so gradients pass through batch norm twice, and a
 * batch so small that batch norm's coupling of the rows (the −dbeta and −xhat·dgamma terms of its backward) is large.
 *
 * <p>The finite differences are taken of the float64 {@link ReferenceMlp} (step 1e-6: truncation O(h²) ≈ 1e-12 and
 * rounding ≈ 1e-16/1e-6 = 1e-10, so they are exact to ~1e-9), after checking that the reference computes the model's
 * loss. The model's float32 analytic gradients then must match with |a − n| ≤ 2e-6 + 2e-4·|n|: float32 rounds by
 * 6e-8 relative per operation, the chain is about ten operations deep with sums over at most 6 rows, and batch norm
 * scales by invstd (a few here), so errors of ~1e-6 relative are expected (measured: at most 1.2e-7 absolute and
 * 5.5e-6 relative); a wrong backward formula (a missing term, a wrong ReLU mask) changes gradients by O(1) relative and
 * fails by orders of magnitude (both were planted once and failed every element of fc1.weight).
 */
class MlpGradientTest {
    static final int[] SIZES = {5, 4, 3, 3};
    static final int ROWS = 6;
    static final double EPS = 1e-5;
    static final double STEP = 1e-6;
    static final double ATOL = 2e-6;
    static final double RTOL = 2e-4;
    /** A ReLU input closer than this to 0 could be crossed by the finite-difference step: the case is then invalid. */
    static final double KINK_MARGIN = 1e-4;

    private TrainBackend backend;
    private EmulatedDevice device;

    @AfterEach
    void close() {
        if (backend != null) backend.close();
        if (device != null) device.close();
    }

    /** The CPU backend, and the device backend (our PTX kernels and device-resident batch norm) on the emulator. */
    @ParameterizedTest(name = "{0} batchNorm={1}")
    @CsvSource({"cpu,true", "cpu,false", "emulator,true", "emulator,false"})
    void gradientsMatchFiniteDifferences(String backendName, boolean batchNorm) {
        if (backendName.equals("cpu")) {
            backend = new CpuTrainBackend();
        } else {
            device = new EmulatedDevice();
            backend = new DeviceTrainBackend(device, "emulator");
        }
        Random rng = new Random(batchNorm ? 2024 : 2025);
        try (Mlp model = new Mlp(backend, SIZES[0], new int[] {SIZES[1], SIZES[2]}, SIZES[3], batchNorm, 7, EPS, 0.1)) {
            // Every parameter random (gamma around 1, never the initial 1/0), so no term can hide behind a 0 or a 1.
            Map<String, double[]> ref = new LinkedHashMap<>();
            List<String> names = new ArrayList<>();
            for (Parameter p : model.parameters()) {
                float[] v = new float[p.value().size()];
                for (int i = 0; i < v.length; i++) {
                    v[i] = (float) (p.name().endsWith("gamma") ? 1 + 0.5 * rng.nextGaussian()
                            : p.name().endsWith("weight") ? rng.nextGaussian() / Math.sqrt(p.value().rows())
                            : 0.3 * rng.nextGaussian());
                }
                backend.upload(v, p.value());
                double[] d = new double[v.length];
                for (int i = 0; i < v.length; i++) d[i] = v[i];
                ref.put(p.name(), d);
                names.add(p.name());
            }
            float[] x = new float[ROWS * SIZES[0]];
            for (int i = 0; i < x.length; i++) x[i] = (float) rng.nextGaussian();
            int[] labels = {0, 1, 2, 1, 0, 2};
            double[] xd = new double[x.length];
            for (int i = 0; i < x.length; i++) xd[i] = x[i];

            // Poison the gradients: an element backward forgets to write stays NaN and fails below.
            for (Parameter p : model.parameters()) {
                float[] nan = new float[p.grad().size()];
                java.util.Arrays.fill(nan, Float.NaN);
                backend.upload(nan, p.grad());
            }
            Mlp.StepResult step = model.computeGradients(x, labels);

            double refLoss = ReferenceMlp.loss(SIZES, batchNorm, EPS, ref, xd, labels);
            assertEquals(refLoss, step.lossSum() / ROWS, 1e-5 * Math.abs(refLoss),
                    "the reference must compute the model's loss, or its finite differences prove nothing");
            for (double[][] layer : ReferenceMlp.lastPreActivations) {
                for (double[] row : layer) {
                    for (double v : row) {
                        assertTrue(Math.abs(v) > KINK_MARGIN, "a ReLU input " + v + " is within " + KINK_MARGIN
                                + " of the kink; pick another seed");
                    }
                }
            }

            Map<String, double[]> numeric = ReferenceMlp.numericGradients(SIZES, batchNorm, EPS, ref, xd, labels,
                    names, STEP);
            int checked = 0;
            for (Parameter p : model.parameters()) {
                float[] analytic = new float[p.grad().size()];
                backend.download(p.grad(), analytic);
                double[] n = numeric.get(p.name());
                int bad = 0;
                String first = null;
                for (int i = 0; i < n.length; i++) {
                    double err = Math.abs(analytic[i] - n[i]);
                    if (!(err <= ATOL + RTOL * Math.abs(n[i]))) {
                        if (first == null) {
                            first = p.name() + "[" + i + "]: finite difference " + n[i] + ", backward " + analytic[i];
                        }
                        bad++;
                    }
                    checked++;
                }
                if (bad > 0) fail(bad + " of " + n.length + " gradient elements of " + p.name() + " mismatch; first: "
                        + first);
            }
            assertEquals(batchNorm ? 58 : 5 * 4 + 4 + 4 * 3 + 3 + 3 * 3 + 3, checked);
        }
    }
}
