package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.BackendInfo;
import io.github.batchnorm4j.Backends;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.MeasuredOps;
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
            assertInstanceOf(GpuBatchNormOps.class, ops);
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
}
