package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.Shape;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Host orchestration without executing kernels ({@link RecordingDevice}): arguments match every kernel's PTX
 * parameter list, invalid input is rejected before any launch, the vector path is chosen only when alignment allows,
 * and the workspace is allocated once per shape.
 */
class DeviceResidentBatchNormHostTest {
    private static final List<Shape> SHAPES = List.of(Shape.channelsFirst(2, 3, 5, 7), Shape.channelsFirst(4, 8, 16),
            Shape.channelsFirst(32, 64, 56, 56), Shape.channelsLast(256, 1024), Shape.channelsLast(3, 5, 7, 3),
            Shape.channelsLast(2, 7, 4099), Shape.channelsFirst(1, 4099, 3));

    private static DeviceBuffer tensor(Device d, Shape s) {
        return d.allocate(s.elementCount() * 4 + 64);
    }

    @Test
    void everyOperationLaunchesWithArgumentsMatchingThePtx() {
        RecordingDevice dev = new RecordingDevice(132);
        try (DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev)) {
            for (Shape s : SHAPES) {
                DeviceBuffer x = tensor(dev, s), dy = tensor(dev, s), y = tensor(dev, s);
                DeviceBuffer ch = dev.allocate(s.channels() * 4L * 8 + 64);
                DevicePointer[] c = new DevicePointer[8];
                for (int i = 0; i < 8; i++) c[i] = ch.at(i * s.channels() * 4L);
                bn.forwardTraining(s, x.pointer(), c[0], c[1], 1e-5, c[2], c[3], 0.1, y.pointer(), c[4], c[5], null);
                bn.forwardTraining(s, x.pointer(), null, null, 1e-5, null, null, 0.1, y.pointer(), c[4], c[5], null);
                bn.forwardInference(s, x.pointer(), c[0], c[1], c[2], c[3], 1e-5, y.pointer(), null);
                bn.normalize(s, x.pointer(), c[0], null, c[2], c[3], y.pointer(), null);
                bn.backwardTraining(s, x.pointer(), dy.pointer(), c[0], c[4], c[5], y.pointer(), c[6], c[7], null);
                bn.backwardInference(s, x.pointer(), dy.pointer(), null, c[2], c[3], 1e-5, y.pointer(), null, c[7], null);
                bn.backwardInference(s, x.pointer(), dy.pointer(), c[0], c[2], c[3], 1e-5, y.pointer(), null, null, null);
                bn.statistics(s, x.pointer(), null);
            }
        }
        assertTrue(dev.launches.size() > SHAPES.size() * 10, "launches were recorded");
    }

    @Test
    void vectorPathOnlyWhenAlignedAndDivisible() {
        RecordingDevice dev = new RecordingDevice(132);
        Shape s = Shape.channelsFirst(4, 8, 128);
        try (DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev)) {
            DeviceBuffer x = tensor(dev, s), y = tensor(dev, s), ch = dev.allocate(1024);
            bn.forwardTraining(s, x.pointer(), null, null, 1e-5, null, null, 0.1, y.pointer(), ch.at(0), ch.at(512), null);
            assertEquals(List.of("bn_stats_cf_vec4", "bn_apply_cf_vec4"), names(dev));
            dev.launches.clear();
            bn.forwardTraining(s, x.at(4), null, null, 1e-5, null, null, 0.1, y.pointer(), ch.at(0), ch.at(512), null);
            assertEquals(List.of("bn_stats_cf", "bn_apply_cf"), names(dev), "x misaligned by 4 bytes");
            dev.launches.clear();
            Shape small = Shape.channelsFirst(4, 8, 3);   // inner < 128: rows of C·inner = 24 floats, float4 ok
            bn.forwardTraining(small, x.pointer(), null, null, 1e-5, null, null, 0.1, y.pointer(), ch.at(0), ch.at(512),
                    null);
            assertEquals(List.of("bn_stats_cl_vec4", "bn_apply_cl_vec4"), names(dev), "small inner runs as rows");
            dev.launches.clear();
            Shape odd = Shape.channelsLast(16, 6);
            bn.forwardTraining(odd, x.pointer(), null, null, 1e-5, null, null, 0.1, y.pointer(), ch.at(0), ch.at(512), null);
            assertEquals(List.of("bn_stats_cl", "bn_apply_cl"), names(dev), "C % 4 != 0");
        }
    }

    @Test
    void invalidInputIsRejectedBeforeAnyLaunch() {
        RecordingDevice dev = new RecordingDevice(132);
        Shape s = Shape.channelsFirst(2, 3, 5);
        try (DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev)) {
            DeviceBuffer x = tensor(dev, s), y = tensor(dev, s), ch = dev.allocate(1024);
            DevicePointer m = ch.at(0), v = ch.at(256);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () ->
                    bn.forwardTraining(s, x.pointer(), null, null, 1e-5, null, null, 0.1, y.at(64 + 4 * 27), m, v, null));
            assertTrue(e.getMessage().startsWith("y: expected room for 30 floats"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () ->
                    bn.forwardTraining(s, x.pointer(), null, null, 0, null, null, 0.1, y.pointer(), m, v, null));
            assertTrue(e.getMessage().contains("eps"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () ->
                    bn.forwardTraining(s, x.pointer(), null, null, 1e-5, m, v, 1.5, y.pointer(), m, v, null));
            assertTrue(e.getMessage().contains("momentum"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () ->
                    bn.forwardTraining(s, x.at(2), null, null, 1e-5, null, null, 0.1, y.pointer(), m, v, null));
            assertTrue(e.getMessage().contains("4-byte aligned"), e.getMessage());
            Shape one = Shape.channelsFirst(1, 3, 1);
            e = assertThrows(IllegalArgumentException.class, () ->
                    bn.backwardTraining(one, x.pointer(), x.pointer(), null, m, v, y.pointer(), null, null, null));
            assertTrue(e.getMessage().contains("expected more than 1 value per channel when training"), e.getMessage());
            ch.close();
            assertThrows(IllegalStateException.class, () ->
                    bn.forwardInference(s, x.pointer(), null, null, m, v, 1e-5, y.pointer(), null));
            assertTrue(dev.launches.isEmpty(), "nothing may be launched for invalid input");
        }
    }

    @Test
    void overlapsOtherThanExactInPlaceAreRejectedBeforeAnyLaunch() {
        RecordingDevice dev = new RecordingDevice(132);
        Shape s = Shape.channelsFirst(2, 3, 8);   // 48 floats, 192 bytes
        try (DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev)) {
            DeviceBuffer t = dev.allocate(4096), ch = dev.allocate(1024);
            DevicePointer x = t.at(0), dy = t.at(1024), dx = t.at(2048), m = ch.at(0), v = ch.at(256);
            // exact in place is allowed: y = x, dx = dy
            bn.forwardTraining(s, x, null, null, 1e-5, null, null, 0.1, x, m, v, null);
            bn.forwardInference(s, x, null, null, m, v, 1e-5, x, null);
            bn.normalize(s, x, null, null, m, v, x, null);
            bn.backwardTraining(s, x, dy, null, m, v, dy, ch.at(512), ch.at(768), null);
            bn.backwardInference(s, x, dy, null, m, v, 1e-5, dy, null, null, null);
            int launched = dev.launches.size();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> bn.backwardTraining(s, x, dy, null, m, v, dy.plus(4), null, null, null));
            assertTrue(e.getMessage().startsWith("dx (bytes [1028, 1220)) overlaps dy (bytes [1024, 1216))"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> bn.backwardTraining(s, x, dy, null, m, v, x, null, null, null));
            assertTrue(e.getMessage().startsWith("dx (bytes [0, 192)) overlaps x (bytes [0, 192))"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> bn.forwardTraining(s, x, null, null, 1e-5, null, null, 0.1, dx, m, m.plus(4), null));
            assertTrue(e.getMessage().startsWith("saveMean (bytes [0, 12)) overlaps saveInvstd (bytes [4, 16))"),
                    e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> bn.forwardTraining(s, x, m, null, 1e-5, null, null, 0.1, dx, m, v, null));
            assertTrue(e.getMessage().startsWith("saveMean (bytes [0, 12)) overlaps gamma (bytes [0, 12))"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> bn.forwardTraining(s, x, null, null, 1e-5, m, v, 0.1, dx, m, ch.at(512), null));
            assertTrue(e.getMessage().contains("runningMean (bytes [0, 12)) overlaps saveMean"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> bn.backwardInference(s, x, dy, null, m, v, 1e-5, dx, v, null, null));
            assertTrue(e.getMessage().startsWith("dgamma (bytes [256, 268)) overlaps runningVar"), e.getMessage());
            assertTrue(e.getMessage().contains("an output may only be exactly its elementwise input (y = x, dx = dy)"));
            assertEquals(launched, dev.launches.size(), "nothing may be launched for overlapping arguments");
        }
    }

    @Test
    void workspaceIsAllocatedOncePerShape() {
        RecordingDevice dev = new RecordingDevice(132);
        Shape s = Shape.channelsFirst(32, 64, 56, 56);
        try (DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev)) {
            DeviceBuffer x = tensor(dev, s), y = tensor(dev, s), dy = tensor(dev, s), ch = dev.allocate(64 * 4 * 8);
            DevicePointer[] c = new DevicePointer[8];
            for (int i = 0; i < 8; i++) c[i] = ch.at(i * 256L);
            bn.forwardTraining(s, x.pointer(), c[0], c[1], 1e-5, c[2], c[3], 0.1, y.pointer(), c[4], c[5], null);
            bn.backwardTraining(s, x.pointer(), dy.pointer(), c[0], c[4], c[5], y.pointer(), c[6], c[7], null);
            int before = dev.allocations;
            for (int step = 0; step < 5; step++) {
                bn.forwardTraining(s, x.pointer(), c[0], c[1], 1e-5, c[2], c[3], 0.1, y.pointer(), c[4], c[5], null);
                bn.backwardTraining(s, x.pointer(), dy.pointer(), c[0], c[4], c[5], y.pointer(), c[6], c[7], null);
            }
            assertEquals(before, dev.allocations, "no allocation per training step");
            x.close(); y.close(); dy.close(); ch.close();
        }
        assertEquals(0, dev.live, "every allocation freed");
    }

    @Test
    void hostApiClosesAnOwnedDevice() {
        RecordingDevice dev = new RecordingDevice(8);
        HostArrayBatchNormOps ops = new HostArrayBatchNormOps("recording", dev, true);
        ops.forwardInference(Shape.channelsLast(4, 3), new float[12], null, null, new float[3], new float[]{1, 1, 1},
                1e-5, new float[12]);
        assertFalse(ops.lastOperationMetrics().isPresent(), "no metrics from a device that does not measure");
        ops.close();
        ops.close();
        assertTrue(dev.isClosed());
        assertEquals(0, dev.live, "every allocation freed");
        assertThrows(IllegalStateException.class, () -> ops.statistics(Shape.channelsLast(4, 3), new float[12]));
    }

    private static List<String> names(RecordingDevice dev) {
        return dev.launches.stream().map(RecordingDevice.Launch::kernel).toList();
    }
}
