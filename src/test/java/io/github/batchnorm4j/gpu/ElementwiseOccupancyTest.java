package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.Shape;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Elementwise grids are one wave of the kernel's real occupancy, asked of the device, and every operation reports
 * its launches with registers, blocks per SM, occupancy and waves ({@link DeviceResidentBatchNorm#lastOperationLaunches()}).
 */
class ElementwiseOccupancyTest {
    private static final Shape NCHW = Shape.channelsFirst(64, 64, 56, 56);

    private static List<KernelLaunch> forward(RecordingDevice dev, Shape s) {
        try (DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev)) {
            DeviceBuffer x = dev.allocate(s.elementCount() * 4);
            DeviceBuffer y = dev.allocate(s.elementCount() * 4);
            DeviceBuffer ch = dev.allocate(4096);
            bn.forwardTraining(s, x.pointer(), null, null, 1e-5, null, null, 0.1, y.pointer(), ch.at(0), ch.at(2048), null);
            List<KernelLaunch> launches = bn.lastOperationLaunches();
            x.close();
            y.close();
            ch.close();
            return launches;
        }
    }

    @Test
    void theApplyGridIsOneWaveOfResidentBlocks() {
        for (int[] regsAndBlocks : new int[][]{{40, 6}, {74, 3}, {32, 8}}) {
            RecordingDevice dev = new RecordingDevice(132);
            dev.resources = new KernelResources(regsAndBlocks[0], 512, 0, 256, "test");
            List<KernelLaunch> launches = forward(dev, NCHW);
            assertEquals(List.of("bn_stats_cf_vec4", "bn_apply_cf_vec4"), launches.stream().map(KernelLaunch::kernel).toList());
            KernelLaunch apply = launches.get(1);
            int perSm = regsAndBlocks[1];
            String at = regsAndBlocks[0] + " registers: " + apply;
            assertEquals(perSm, apply.blocksPerSm(), at);
            assertEquals(132L * perSm, apply.grid().volume(), at);
            assertEquals(1.0, apply.waves(), 1e-12, at);
            assertEquals(perSm * 8 / 64.0, apply.occupancy(), 1e-12, at);
            assertEquals(regsAndBlocks[0], apply.registersPerThread(), at);
            assertEquals(dev.launches.get(1).grid(), apply.grid(), "the record is what was launched");
        }
    }

    @Test
    void everyLaunchOfAnOperationIsReportedAndTheListStartsAfresh() {
        RecordingDevice dev = new RecordingDevice(8);
        Shape s = Shape.channelsLast(256, 1024);
        try (DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev)) {
            assertTrue(bn.lastOperationLaunches().isEmpty());
            DeviceBuffer x = dev.allocate(s.elementCount() * 4);
            DeviceBuffer ch = dev.allocate(4 * 4096 * 4);
            bn.forwardInference(s, x.pointer(), null, null, ch.at(0), ch.at(4096), 1e-5, x.pointer(), null);
            List<KernelLaunch> eval = bn.lastOperationLaunches();
            assertEquals(List.of("bn_prepare", "bn_apply_cl_vec4"), eval.stream().map(KernelLaunch::kernel).toList());
            for (KernelLaunch k : eval) {
                assertEquals(Occupancy.waves(k.grid().volume(), k.blocksPerSm(), 8), k.waves(), 0, k.toString());
            }
            bn.statistics(s, x.pointer(), null);
            assertEquals(List.of("bn_stats_cl_vec4"), bn.lastOperationLaunches().stream().map(KernelLaunch::kernel).toList());
            x.close();
            ch.close();
        }
    }
}
