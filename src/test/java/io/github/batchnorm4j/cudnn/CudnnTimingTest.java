package io.github.batchnorm4j.cudnn;

import static io.github.batchnorm4j.testing.Tolerances.FORWARD_RTOL;
import static io.github.batchnorm4j.testing.Tolerances.GRADIENT_RTOL;
import static io.github.batchnorm4j.testing.Tolerances.assertClose;
import static io.github.batchnorm4j.testing.Tolerances.toDouble;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.batchnorm4j.DeviceResidentTiming;
import io.github.batchnorm4j.DeviceResidentTiming.Op;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.testing.Reference64;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * {@link CudnnBatchNormOps} as {@link DeviceResidentTiming} (what bench times on a GPU), over the fake cuDNN: inputs
 * are uploaded once at prepare, each run is one cuDNN call on those same buffers with our argument mapping and
 * computes the right values, bad arguments fail before any allocation, and close frees everything.
 */
class CudnnTimingTest {
    /** atol = rtol·1: unit-scale data, held to |a − e| ≤ rtol + rtol·|e| as these checks always were. */
    private static final double UNIT_SCALE = 1.0;
    private final HostDevice device = new HostDevice();
    private final FakeCudnnApi api = new FakeCudnnApi(device);
    private final Random random = new Random(11);

    private float[] gaussian(int n, double sd, double mean) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (random.nextGaussian() * sd + mean);
        return a;
    }

    private float[] read(Map<String, Object> call, String arg, int n) {
        return device.read((DevicePointer) call.get(arg), n);
    }

    @Test
    void forwardTrainingRunsOneCudnnCallPerRunOnTheUploadedBuffers() {
        Shape s = Shape.channelsLast(4, 3, 5);
        int n = s.elementCountAsInt();
        float[] x = gaussian(n, 2, 3);
        float[] gamma = gaussian(5, 0.5, 1);
        float[] beta = gaussian(5, 0.5, 0);
        float[] rm = gaussian(5, 1, 0);
        float[] rv = new float[] {1, 2, 0.5f, 1.5f, 3};
        float[] rmBefore = rm.clone();
        try (CudnnBatchNormOps ops = new CudnnBatchNormOps(api, device, false, 0.0)) {
            try (DeviceResidentTiming.Timed t = ops.prepareTiming(Op.FORWARD_TRAINING, s, x, null, gamma, beta, rm, rv,
                    null, null, 1e-5, 0.25)) {
                assertTrue(api.calls("cudnnBatchNormalizationForwardTraining").isEmpty(), "nothing runs at prepare");
                t.run();
                t.run();
                var calls = api.calls("cudnnBatchNormalizationForwardTraining");
                assertEquals(2, calls.size());
                Map<String, Object> call = calls.get(1).args();
                assertSame(calls.get(0).args().get("x"), call.get("x"), "the same uploaded x every run");
                assertEquals(0.25, (double) call.get("factor"), 0.0);
                Reference64.Forward f = Reference64.forwardTraining(s, x, gamma, beta, 1e-5, null, null, 0);
                assertClose("y", f.y(), toDouble(read(call, "y", n)), FORWARD_RTOL, UNIT_SCALE);
                // two runs of the running update on the device: rm <- 0.75 rm + 0.25 mean, twice
                float[] rmDevice = read(call, "runMean", 5);
                double[] expected = new double[5];
                for (int c = 0; c < 5; c++) {
                    double mean = f.mean()[c];
                    expected[c] = 0.75 * (0.75 * rmBefore[c] + 0.25 * mean) + 0.25 * mean;
                }
                assertClose("running mean after two runs", expected, toDouble(rmDevice), FORWARD_RTOL, UNIT_SCALE);
            }
            assertTrue(rm[0] == rmBefore[0], "the caller's arrays are not modified");
        }
        assertTrue(device.live.isEmpty(), device.live.size() + " buffers left");
    }

    @Test
    void inferenceAndBackwardComputeTheRightValues() {
        Shape s = Shape.channelsFirst(2, 3, 4, 5);
        int n = s.elementCountAsInt();
        float[] x = gaussian(n, 2, 3);
        float[] dy = gaussian(n, 1, 0.1);
        float[] gamma = gaussian(3, 0.5, 1);
        float[] rm = gaussian(3, 1, 3);
        float[] rv = new float[] {4, 2, 5};
        Reference64.Forward f = Reference64.forwardTraining(s, x, gamma, null, 1e-5, null, null, 0);
        float[] mean = new float[3];
        float[] invstd = new float[3];
        for (int c = 0; c < 3; c++) {
            mean[c] = (float) f.mean()[c];
            invstd[c] = (float) f.invstd()[c];
        }
        try (CudnnBatchNormOps ops = new CudnnBatchNormOps(api, device, false, 0.0)) {
            try (DeviceResidentTiming.Timed t = ops.prepareTiming(Op.FORWARD_INFERENCE, s, x, null, gamma, null, rm,
                    rv, null, null, 1e-5, 0.1)) {
                t.run();
                Map<String, Object> call = api.calls("cudnnBatchNormalizationForwardInference").get(0).args();
                assertClose("eval y", Reference64.forwardEval(s, x, gamma, null, rm, rv, 1e-5), toDouble(read(call, "y", n)),
                        FORWARD_RTOL, UNIT_SCALE);
            }
            try (DeviceResidentTiming.Timed t = ops.prepareTiming(Op.BACKWARD_TRAINING, s, x, dy, gamma, null, null,
                    null, mean, invstd, 1e-5, 0.1)) {
                t.run();
                Map<String, Object> call = api.calls("cudnnBatchNormalizationBackward").get(0).args();
                Reference64.Backward e = Reference64.backwardTraining(s, x, dy, gamma, f.mean(), f.invstd());
                assertClose("dx", e.dx(), toDouble(read(call, "dx", n)), GRADIENT_RTOL, UNIT_SCALE);
                assertClose("dgamma", e.dgamma(), toDouble(read(call, "dScale", 3)), GRADIENT_RTOL, UNIT_SCALE);
                assertClose("dbeta", e.dbeta(), toDouble(read(call, "dBias", 3)), GRADIENT_RTOL, UNIT_SCALE);
            }
        }
        assertTrue(device.live.isEmpty(), device.live.size() + " buffers left");
    }

    @Test
    void badArgumentsFailBeforeAnyAllocationAndAClosedRunIsRefused() {
        Shape s = Shape.channelsFirst(2, 3, 4);
        float[] x = gaussian(24, 1, 0);
        float[] three = {1, 1, 1};
        try (CudnnBatchNormOps ops = new CudnnBatchNormOps(api, device, false, 0.0)) {
            int before = device.allocations;
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ops.prepareTiming(
                    Op.FORWARD_TRAINING, s, x, null, null, null, three, new float[2], null, null, 1e-5, 0.1));
            assertTrue(e.getMessage().contains("runningVar"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> ops.prepareTiming(Op.BACKWARD_TRAINING, s,
                    new float[23], x, null, null, null, null, three, three, 1e-5, 0.1));
            assertTrue(e.getMessage().contains("x"), e.getMessage());
            assertEquals(before, device.allocations, "no allocation for a rejected call");

            DeviceResidentTiming.Timed t = ops.prepareTiming(Op.FORWARD_INFERENCE, s, x, null, null, null, three,
                    three, null, null, 1e-5, 0.1);
            t.close();
            t.close(); // idempotent
            assertThrows(IllegalStateException.class, t::run);

            try (DeviceResidentTiming.Timed copy = ops.prepareCopy(64)) {
                copy.run();
            }
        }
        assertTrue(device.live.isEmpty(), device.live.size() + " buffers left");
        CudnnBatchNormOps closed = new CudnnBatchNormOps(api, device, false, 0.0);
        closed.close();
        assertThrows(IllegalStateException.class, () -> closed.prepareTiming(Op.FORWARD_INFERENCE, s, x, null, null,
                null, three, three, null, null, 1e-5, 0.1));
    }
}
