package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.BackendInfo;
import io.github.batchnorm4j.Backends;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.DeviceResidentTiming;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.Shape;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The "emulator" backend: registered, opened by name, never picked by auto, and measuring each operation. */
class EmulatorBackendTest {
    @Test
    void openedByNameNeverByAuto() {
        assertNotEquals("emulator", Backends.resolveAuto());
        BackendInfo info = Backends.probeAll().stream().filter(i -> i.name().equals("emulator")).findFirst().orElseThrow();
        assertTrue(info.available(), info.toString());
        try (BatchNormOps ops = Backends.open("emulator")) {
            assertEquals("emulator", ops.name());
            assertInstanceOf(HostArrayBatchNormOps.class, ops);
        }
    }

    @Test
    void eachOperationReportsOnlyItsOwnKernelTraffic() {
        Shape s = Shape.channelsFirst(4, 3, 32, 32);
        int n = s.elementCountAsInt();
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) Math.sin(i * 0.37) * 3 + 1;
        try (BatchNormOps ops = Backends.open("emulator")) {
            MeasuredOps m = (MeasuredOps) ops;
            float[] y = new float[n], mean = new float[3], invstd = new float[3];
            ops.forwardTraining(s, x, null, null, 1e-5, null, null, 0.1, y, mean, invstd);
            TrafficMetrics train = m.lastOperationMetrics().orElseThrow();
            ops.forwardInference(s, x, null, null, mean, new float[]{1, 1, 1}, 1e-5, y);
            TrafficMetrics eval = m.lastOperationMetrics().orElseThrow();
            long bytes = 4L * n;
            assertEquals(2, train.launches(), "statistics + apply");
            assertTrue(train.bytesMoved() >= 3 * bytes && train.bytesMoved() <= 3.1 * bytes, train.toString());
            assertTrue(eval.bytesMoved() >= 2 * bytes && eval.bytesMoved() <= 2.1 * bytes, "reset per operation: " + eval);
        }
    }

    @Test
    void deviceResidentTimingRunsEveryOpWithTheHostOpsTrafficAndFreesItsBuffers() {
        Shape s = Shape.channelsLast(2, 48, 48, 8);
        int n = s.elementCountAsInt();
        float[] x = new float[n];
        float[] dy = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) Math.cos(i * 0.11) * 2 - 1;
            dy[i] = (float) Math.sin(i * 0.7);
        }
        float[] ones = {1, 1, 1, 1, 1, 1, 1, 1};
        float[] zeros = new float[8];
        EmulatedDevice dev = new EmulatedDevice();
        try (HostArrayBatchNormOps ops = new HostArrayBatchNormOps("emulator", dev, true)) {
            int live = dev.liveBufferCount();
            for (DeviceResidentTiming.Op op : DeviceResidentTiming.Op.values()) {
                try (DeviceResidentTiming.Timed t = ops.prepareTiming(op, s, x, dy, ones, zeros, zeros.clone(),
                        ones.clone(), zeros, ones, 1e-5, 0.1)) {
                    t.run();
                    TrafficMetrics m = ops.lastOperationMetrics().orElseThrow();
                    double ratio = (double) m.bytesMoved() / (4.0 * n);
                    double budget = op == DeviceResidentTiming.Op.FORWARD_TRAINING ? 3
                            : op == DeviceResidentTiming.Op.FORWARD_INFERENCE ? 2 : 5;
                    assertTrue(ratio >= budget && ratio <= budget + 0.1, op + ": traffic ratio " + ratio);
                }
                // Only the kernels' workspace (allocated once, reused by every later call) may remain.
                assertEquals(live + 1, dev.liveBufferCount(), op + ": buffers freed on close");
            }
            try (DeviceResidentTiming.Timed copy = ops.prepareCopy(4096)) {
                copy.run();
            }
            assertEquals(live + 1, dev.liveBufferCount());
        }
    }
}
