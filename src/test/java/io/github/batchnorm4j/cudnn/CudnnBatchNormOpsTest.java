package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.gpu.DeviceException;
import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.testing.Reference64;
import jcuda.jcudnn.cudnnBatchNormMode;
import jcuda.jcudnn.cudnnDataType;
import jcuda.jcudnn.cudnnTensorDescriptor;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static io.github.batchnorm4j.testing.TestData.gaussian;
import static io.github.batchnorm4j.testing.Tolerances.FORWARD_RTOL;
import static io.github.batchnorm4j.testing.Tolerances.GRADIENT_RTOL;
import static io.github.batchnorm4j.testing.Tolerances.assertClose;
import static io.github.batchnorm4j.testing.Tolerances.toDouble;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The cuDNN argument mapping, against a fake cuDNN that executes the calls on host memory through the descriptors'
 * strides: descriptors per layout and rank, factor = momentum, eps, alpha/beta, which buffer goes where, affine off,
 * saved statistics reused by backward, error mapping, and that every handle, descriptor and buffer is released.
 */
class CudnnBatchNormOpsTest {
    /**
     * atol = rtol·1: the data here are unit-scale, and these tests have always held every element to
     * |a − e| ≤ rtol + rtol·|e| (an absolute floor of rtol itself, not rtol·rms as the contract suite does).
     */
    private static final double UNIT_SCALE = 1.0;
    private static final List<Shape> SHAPES = List.of(
            Shape.channelsFirst(4, 3, 5), Shape.channelsFirst(2, 3, 4, 5), Shape.channelsFirst(2, 5, 3, 2, 3),
            Shape.channelsFirst(1, 1, 7),
            Shape.channelsLast(4, 5, 3), Shape.channelsLast(2, 4, 5, 3), Shape.channelsLast(6, 5),
            Shape.channelsLast(2, 3, 2, 2, 4), Shape.channelsLast(3, 1));

    private final HostDevice device = new HostDevice();
    private final FakeCudnnApi api = new FakeCudnnApi(device);

    private CudnnBatchNormOps ops(double minEps) {
        return new CudnnBatchNormOps(api, device, false, minEps);
    }

    private static float[] positive(Random r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (0.5 + r.nextDouble());
        return a;
    }

    private static float[] nan(int n) {
        float[] a = new float[n];
        Arrays.fill(a, Float.NaN);
        return a;
    }

    private void assertEverythingReleased() {
        assertTrue(device.live.isEmpty(), device.live.size() + " device buffers left open");
        assertEquals(0, api.liveDescriptors, "tensor descriptors left alive");
    }

    private void assertDescriptorsMatch(Shape s, Map<String, Object> call) {
        cudnnTensorDescriptor xd = (cudnnTensorDescriptor) call.get("xDesc");
        cudnnTensorDescriptor bn = (cudnnTensorDescriptor) call.get("bnDesc");
        TensorLayout4d l = TensorLayout4d.of(s);
        assertArrayEquals(new int[] {cudnnDataType.CUDNN_DATA_FLOAT, l.n(), l.c(), l.h(), l.w(), l.nStride(),
                l.cStride(), l.hStride(), l.wStride()}, api.descriptors.get(xd), "x descriptor of " + s);
        assertEquals(cudnnBatchNormMode.CUDNN_BATCHNORM_SPATIAL, api.derivedMode.get(bn), "bn descriptor derived SPATIAL");
        assertEquals(cudnnBatchNormMode.CUDNN_BATCHNORM_SPATIAL, call.get("mode"));
    }

    @Test
    void forwardTrainingMatchesTheReferenceAndMapsMomentumEpsAndScaling() {
        Random r = new Random(7);
        for (Shape s : SHAPES) {
            int n = s.elementCountAsInt();
            int c = s.channels();
            float[] x = gaussian(r, n, 3, 2);
            float[] gamma = gaussian(r, c, 1, 1);
            float[] beta = gaussian(r, c, 0, 1);
            float[] rm = gaussian(r, c, 0, 1);
            float[] rv = positive(r, c);
            float[] rm0 = rm.clone();
            float[] rv0 = rv.clone();
            float[] y = nan(n);
            float[] mean = nan(c);
            float[] invstd = nan(c);
            double eps = 1e-3;
            double momentum = 1.0 / 3; // e.g. cumulative momentum at num_batches_tracked = 3
            api.calls.clear();
            try (CudnnBatchNormOps ops = new CudnnBatchNormOps(api, device, false, 0.0)) {
                ops.forwardTraining(s, x, gamma, beta, eps, rm, rv, momentum, y, mean, invstd);
            }
            // running ← (1 − momentum)·running + momentum·batch, var unbiased (·M/(M − 1)), as cuDNN stores it
            Reference64.Forward e = Reference64.forwardTraining(s, x, gamma, beta, eps, rm0, rv0, momentum);
            assertClose("y " + s, e.y(), toDouble(y), FORWARD_RTOL, UNIT_SCALE);
            assertClose("saveMean " + s, e.mean(), toDouble(mean), FORWARD_RTOL, UNIT_SCALE);
            assertClose("saveInvstd " + s, e.invstd(), toDouble(invstd), FORWARD_RTOL, UNIT_SCALE);
            assertClose("runningMean " + s, e.runningMean(), toDouble(rm), FORWARD_RTOL, UNIT_SCALE);
            assertClose("runningVar " + s, e.runningVar(), toDouble(rv), FORWARD_RTOL, UNIT_SCALE);

            Map<String, Object> call = api.calls("cudnnBatchNormalizationForwardTraining").get(0).args();
            assertEquals(momentum, (double) call.get("factor"), 0.0, "exponentialAverageFactor = momentum");
            assertEquals(eps, (double) call.get("eps"), 0.0);
            assertEquals(1f, call.get("alpha"));
            assertEquals(0f, call.get("beta"));
            assertSame(call.get("xDesc"), call.get("yDesc"));
            assertDescriptorsMatch(s, call);
            assertEverythingReleased();
        }
    }

    @Test
    void affineOffGetsOnesAndZerosAndNoRunningStatsGetsScratchThatIsDiscarded() {
        Random r = new Random(11);
        Shape s = Shape.channelsLast(3, 4, 6);
        float[] x = gaussian(r, s.elementCountAsInt(), -2, 1);
        float[] y = nan(x.length);
        try (CudnnBatchNormOps ops = ops(0.0)) {
            ops.forwardTraining(s, x, null, null, 1e-5, null, null, 0.9, y, nan(6), nan(6));
        }
        assertClose("y affine off", Reference64.forwardTraining(s, x, null, null, 1e-5, null, null, 0).y(), toDouble(y),
                FORWARD_RTOL, UNIT_SCALE);
        Map<String, Object> call = api.calls("cudnnBatchNormalizationForwardTraining").get(0).args();
        // the scale/bias buffers were freed; the fake executed with them, so y above proves gamma = 1, beta = 0
        assertEquals(0.0, (double) call.get("factor"), 0.0, "no running statistics: nothing to average into");
        DevicePointer sinkMean = (DevicePointer) call.get("runMean");
        DevicePointer sinkVar = (DevicePointer) call.get("runVar");
        assertNotSame(sinkMean, sinkVar);
        assertTrue(sinkMean.byteOffset() != sinkVar.byteOffset() || sinkMean.buffer() != sinkVar.buffer(),
                "distinct sinks for running mean and variance");
        assertEverythingReleased();
    }

    @Test
    void forwardInferenceMatchesTheReference() {
        Random r = new Random(13);
        for (Shape s : SHAPES) {
            int c = s.channels();
            float[] x = gaussian(r, s.elementCountAsInt(), 1, 3);
            float[] gamma = gaussian(r, c, 1, 1);
            float[] beta = gaussian(r, c, 0, 1);
            float[] rm = gaussian(r, c, 1, 1);
            float[] rv = positive(r, c);
            float[] y = nan(x.length);
            api.calls.clear();
            try (CudnnBatchNormOps ops = ops(0.0)) {
                ops.forwardInference(s, x, gamma, beta, rm, rv, 2e-5, y);
                ops.forwardInference(s, x, null, null, rm, rv, 2e-5, y);
            }
            assertClose("eval y affine off " + s, Reference64.forwardEval(s, x, null, null, rm, rv, 2e-5), toDouble(y),
                    FORWARD_RTOL, UNIT_SCALE);
            Map<String, Object> call = api.calls("cudnnBatchNormalizationForwardInference").get(0).args();
            assertEquals(2e-5, (double) call.get("eps"), 0.0);
            assertDescriptorsMatch(s, call);
            assertEverythingReleased();
        }
    }

    @Test
    void backwardReusesTheSavedStatisticsAndMatchesTheReference() {
        Random r = new Random(17);
        for (Shape s : SHAPES) {
            int n = s.elementCountAsInt();
            int c = s.channels();
            if (s.reductionSize() < 2) continue;
            float[] x = gaussian(r, n, -1, 1.5);
            float[] dy = gaussian(r, n, 0, 1);
            float[] gamma = gaussian(r, c, 1, 1);
            double eps = 1e-5;
            float[] mean = nan(c);
            float[] invstd = nan(c);
            float[] dx = nan(n);
            float[] dg = nan(c);
            float[] db = nan(c);
            api.calls.clear();
            try (CudnnBatchNormOps ops = ops(0.0)) {
                ops.forwardTraining(s, x, gamma, null, eps, null, null, 0.1, nan(n), mean, invstd);
                ops.backwardTraining(s, x, dy, gamma, mean, invstd, dx, dg, db);
            }
            Reference64.Forward f = Reference64.forwardTraining(s, x, gamma, null, eps, null, null, 0);
            Reference64.Backward e = Reference64.backwardTraining(s, x, dy, gamma, f.mean(), f.invstd());
            assertClose("dx " + s, e.dx(), toDouble(dx), GRADIENT_RTOL, UNIT_SCALE);
            assertClose("dgamma " + s, e.dgamma(), toDouble(dg), GRADIENT_RTOL, UNIT_SCALE);
            assertClose("dbeta " + s, e.dbeta(), toDouble(db), GRADIENT_RTOL, UNIT_SCALE);
            Map<String, Object> call = api.calls("cudnnBatchNormalizationBackward").get(0).args();
            for (String k : List.of("alphaData", "alphaParam")) assertEquals(1f, call.get(k), k);
            for (String k : List.of("betaData", "betaParam")) assertEquals(0f, call.get(k), k + " (overwrite, not accumulate)");
            assertDescriptorsMatch(s, call);
            assertSame(call.get("xDesc"), call.get("dxDesc"));
            assertEverythingReleased();
        }
    }

    @Test
    void backwardPassesTheCallersSavedStatisticsNotRecomputedOnes() {
        Random r = new Random(19);
        Shape s = Shape.channelsFirst(3, 2, 4);
        float[] x = gaussian(r, 24, 0, 1);
        float[] dy = gaussian(r, 24, 0, 1);
        float[] mean = {0.25f, -0.5f};
        float[] invstd = {2f, 0.75f};
        float[] dx = nan(24);
        float[] dg = nan(2);
        try (CudnnBatchNormOps ops = ops(0.0)) {
            ops.backwardTraining(s, x, dy, null, mean, invstd, dx, dg, null);
        }
        // with arbitrary saved statistics, dgamma = Σ dy·(x − mean)·invstd uses exactly the given ones
        double[] expected = Reference64.backwardTraining(s, x, dy, null, mean, invstd).dgamma();
        for (int c = 0; c < 2; c++) {
            double e = expected[c];
            assertEquals(e, dg[c], 1e-4 * (1 + Math.abs(e)), "dgamma[" + c + "]");
        }
        assertEverythingReleased();
    }

    @Test
    void epsBelowTheCudnnMinimumIsRejectedBeforeAnything() {
        Shape s = Shape.channelsFirst(2, 3, 4);
        float[] rm = {1, 2, 3};
        float[] y = nan(24);
        try (CudnnBatchNormOps ops = ops(1e-5)) {
            api.calls.clear();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ops.forwardTraining(s,
                    gaussian(new Random(1), 24, 0, 1), null, null, 1e-6, rm, new float[] {1, 1, 1}, 0.1, y, nan(3), nan(3)));
            assertEquals("eps must be >= CUDNN_BN_MIN_EPSILON (1.0E-5) for the cuDNN backend, got 1.0E-6", e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> ops.forwardInference(s, new float[24], null, null, rm,
                    new float[] {1, 1, 1}, 5e-6, y));
            ops.forwardInference(s, gaussian(new Random(2), 24, 0, 1), null, null, rm, new float[] {1, 1, 1}, 1e-5, y);
        }
        assertArrayEquals(new float[] {1, 2, 3}, rm, "running mean untouched");
        assertEquals(1, api.calls("cudnnBatchNormalizationForwardInference").size(), "only the valid call reached cuDNN");
        assertEquals(0, api.calls("cudnnBatchNormalizationForwardTraining").size());
    }

    @Test
    void cudnnFailuresNameTheErrorStringAndChangeNothing() {
        Shape s = Shape.channelsLast(4, 3);
        float[] rm = {1, 2, 3};
        float[] rv = {1, 1, 1};
        float[] y = nan(12);
        float[] mean = nan(3);
        api.failures.put("cudnnBatchNormalizationForwardTraining", FakeCudnnApi.BAD_PARAM);
        try (CudnnBatchNormOps ops = ops(0.0)) {
            DeviceException e = assertThrows(DeviceException.class, () -> ops.forwardTraining(s,
                    gaussian(new Random(3), 12, 0, 1), null, null, 1e-5, rm, rv, 0.1, y, mean, nan(3)));
            assertEquals("cudnnBatchNormalizationForwardTraining(shape=[4, 3] channels-last) failed: "
                    + "CUDNN_STATUS_BAD_PARAM (cudnnStatus_t 2000)", e.getMessage());
        }
        assertArrayEquals(new float[] {1, 2, 3}, rm);
        assertArrayEquals(new float[] {1, 1, 1}, rv);
        assertTrue(Float.isNaN(y[0]) && Float.isNaN(mean[0]), "outputs untouched");
        assertEverythingReleased();

        api.failures.clear();
        api.failures.put("cudnnSetTensor4dDescriptorEx", FakeCudnnApi.BAD_PARAM);
        try (CudnnBatchNormOps ops = ops(0.0)) {
            DeviceException e = assertThrows(DeviceException.class,
                    () -> ops.forwardInference(s, new float[12], null, null, rm, rv, 1e-5, y));
            assertTrue(e.getMessage().startsWith("cudnnSetTensor4dDescriptorEx(TensorLayout4d[n=4, c=3"), e.getMessage());
        }
        assertEverythingReleased();

        api.failures.clear();
        api.failures.put("cudnnCreate", FakeCudnnApi.BAD_PARAM);
        DeviceException e = assertThrows(DeviceException.class, () -> ops(0.0));
        assertTrue(e.getMessage().contains("cudnnCreate") && e.getMessage().contains("CUDNN_STATUS_BAD_PARAM"));
        assertEquals(0, api.liveHandles);
    }

    @Test
    void unsupportedOperationsSayWhy() {
        Shape s = Shape.channelsFirst(2, 2, 3);
        float[] one = {1, 1};
        try (CudnnBatchNormOps ops = ops(0.0)) {
            UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class,
                    () -> ops.backwardInference(s, new float[12], new float[12], null, one, one, 1e-5, new float[12],
                            null, null));
            assertTrue(e.getMessage().contains("frozen"), e.getMessage());
            assertThrows(UnsupportedOperationException.class, () -> ops.statistics(s, new float[12]));
            assertThrows(UnsupportedOperationException.class,
                    () -> ops.normalize(s, new float[12], null, null, one, one, new float[12]));
        }
    }

    @Test
    void deviceResidentCallsUseTheCallersBuffersAndOffsetsAndReuseTheScratch() {
        Random r = new Random(29);
        Shape s = Shape.channelsFirst(3, 4, 5);
        int n = 60;
        float[] x = gaussian(r, n, 2, 1);
        float[] dyHost = gaussian(r, n, 0, 1);
        try (CudnnBatchNormOps ops = ops(0.0)) {
            // one big buffer, tensors at odd offsets inside it, as a training loop's workspace might hold them
            io.github.batchnorm4j.gpu.DeviceBuffer big = device.allocate(4 * 400);
            DevicePointer dx = big.at(4 * 3);
            DevicePointer dy = big.at(4 * 70);
            DevicePointer mean = big.at(4 * 140);
            DevicePointer invstd = big.at(4 * 150);
            DevicePointer grad = big.at(4 * 160);
            DevicePointer dOut = big.at(4 * 230);
            DevicePointer dbeta = big.at(4 * 300);
            device.copyToDevice(x, 0, dx, n, device.defaultStream());
            device.copyToDevice(dyHost, 0, grad, n, device.defaultStream());
            ops.forwardTrainingOnDevice(s, dx, null, null, 1e-5, null, null, 0.1, dy, mean, invstd);
            int allocationsAfterFirst = device.allocations;
            ops.forwardTrainingOnDevice(s, dx, null, null, 1e-5, null, null, 0.1, dy, mean, invstd);
            assertEquals(allocationsAfterFirst, device.allocations, "scratch allocated once per channel count");
            Reference64.Forward f = Reference64.forwardTraining(s, x, null, null, 1e-5, null, null, 0);
            assertClose("y on device", f.y(), toDouble(device.read(dy, n)), FORWARD_RTOL, UNIT_SCALE);
            ops.backwardTrainingOnDevice(s, dx, grad, null, mean, invstd, dOut, null, dbeta);
            Reference64.Backward e = Reference64.backwardTraining(s, x, dyHost, null, f.mean(), f.invstd());
            assertClose("dx on device", e.dx(), toDouble(device.read(dOut, n)), GRADIENT_RTOL, UNIT_SCALE);
            assertClose("dbeta on device", e.dbeta(), toDouble(device.read(dbeta, 4)), GRADIENT_RTOL, UNIT_SCALE);
            Map<String, Object> call = api.calls("cudnnBatchNormalizationBackward").get(0).args();
            assertSame(dx, call.get("x"));
            assertSame(grad, call.get("dy"));
            assertSame(dbeta, call.get("dBias"));
            assertNotSame(dbeta, call.get("dScale"), "unwanted dgamma goes to a sink");
            big.close();
        }
        assertEverythingReleased();
    }

    @Test
    void closeDestroysTheHandleOnceAndClosesAnOwnedDevice() {
        CudnnBatchNormOps ops = new CudnnBatchNormOps(api, device, true, 0.0);
        assertEquals(1, api.liveHandles);
        assertSame(device.defaultStream(), api.calls("cudnnSetStream").get(0).args().get("stream"));
        assertEquals("9.1.0", ops.cudnnVersion());
        ops.close();
        ops.close();
        assertEquals(0, api.liveHandles);
        assertEquals(1, api.calls("cudnnDestroy").size());
        assertTrue(device.closed);
        assertThrows(IllegalStateException.class, () -> ops.forwardInference(Shape.channelsLast(2, 1),
                new float[2], null, null, new float[1], new float[1], 1e-5, new float[2]));
    }
}
