package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Invariants of the launch geometry that the kernels rely on, over shapes from tiny to large. */
class LaunchGeometryTest {
    private static final List<Shape> SHAPES = List.of(Shape.channelsFirst(2, 3, 5, 7), Shape.channelsFirst(1, 1, 300),
            Shape.channelsFirst(3, 5, 1), Shape.channelsFirst(2, 4099, 3), Shape.channelsFirst(32, 64, 56, 56),
            Shape.channelsFirst(1, 3, 224, 224), Shape.channelsLast(2, 3), Shape.channelsLast(300, 1),
            Shape.channelsLast(256, 1024), Shape.channelsLast(2, 7, 4099), Shape.channelsLast(32, 56, 56, 64),
            Shape.channelsLast(1_000_000, 4));

    @Test
    void reductionsCoverEveryValueExactlyOnceWithValidBlocks() {
        for (int sms : new int[]{1, 8, 132}) {
            for (Shape s : SHAPES) {
                for (boolean vec : new boolean[]{false, true}) {
                    boolean ok = s.layout() == Layout.CHANNELS_FIRST ? s.inner() % 4 == 0 : s.channels() % 4 == 0;
                    if (!ok) {
                        assertThrows(IllegalArgumentException.class, () -> LaunchGeometry.reduction(s, true, sms));
                        continue;
                    }
                    LaunchGeometry.Reduction g = LaunchGeometry.reduction(s, vec, sms);
                    String at = s + " vec=" + vec + " sms=" + sms + ": " + g;
                    assertEquals(0, g.block().volume() % 32, at);
                    assertTrue(g.block().volume() <= LaunchGeometry.BLOCK, at);
                    assertEquals(1, Integer.bitCount(g.block().y()), "by must be a power of two: " + at);
                    long units = s.layout() == Layout.CHANNELS_FIRST ? s.batch() * s.inner() / (vec ? 4 : 1) : s.rows();
                    assertTrue(g.chunk() * g.splits() >= units, "covers all: " + at);
                    assertTrue(g.chunk() * (g.splits() - 1) < units, "no empty block: " + at);
                    if (s.layout() == Layout.CHANNELS_FIRST) {
                        assertEquals(s.channels() * g.splits(), g.grid().volume(), at);
                    } else {
                        long cu = s.channels() / (vec ? 4 : 1);
                        assertTrue((long) g.grid().x() * g.block().x() >= cu, at);
                        assertEquals(g.splits(), g.grid().y(), at);
                    }
                    assertEquals(g.splits() > 1 ? s.channels() * g.splits() : 0, g.partials(), at);
                }
            }
        }
    }

    @Test
    void smallChannelCountsAreSplitToFillTheGpu() {
        LaunchGeometry.Reduction g = LaunchGeometry.reduction(Shape.channelsFirst(32, 64, 56, 56), true, 132);
        assertTrue(g.grid().volume() >= 132 * 2, "at least two blocks per SM: " + g);
        g = LaunchGeometry.reduction(Shape.channelsFirst(1, 3, 224, 224), true, 132);
        assertTrue(g.grid().volume() >= 132, "C = 3 still fills the GPU: " + g);
    }

    @Test
    void elementwiseChunksAreWarpMultiples() {
        for (Shape s : SHAPES) {
            LaunchGeometry.Elementwise e = LaunchGeometry.elementwise(s, false, 132, 6);
            assertEquals(0, e.block().volume() % 32, s.toString());
            if (s.layout() == Layout.CHANNELS_FIRST) assertEquals(0, e.chunk() % 32, s + " " + e);
        }
        assertEquals(7, LaunchGeometry.ceilDiv(13, 2));
    }

    @Test
    void elementwiseGridsAreOneWaveOfResidentBlocks() {
        // Large tensors: exactly the blocks the device holds at once, whatever the occupancy.
        for (int perSm : new int[]{3, 6}) {
            LaunchGeometry.Elementwise cf = LaunchGeometry.elementwise(Shape.channelsFirst(32, 64, 56, 56), true, 132, perSm);
            assertEquals(132L * perSm, cf.grid().volume(), "channels-first, " + perSm + " blocks per SM: " + cf);
            LaunchGeometry.Elementwise cl = LaunchGeometry.elementwise(Shape.channelsLast(1_000_000, 4), true, 132, perSm);
            assertEquals(132L * perSm, cl.grid().volume(), "channels-last, " + perSm + " blocks per SM: " + cl);
        }
        // Fewer rows than 256 per block would need: fewer blocks (392 for 100352 rows), never more than a wave.
        assertEquals(392, LaunchGeometry.elementwise(Shape.channelsLast(32, 56, 56, 64), true, 132, 6).grid().volume());
        // Small tensors need fewer blocks than a wave; an occupancy of 0 (a refused kernel) still gives a grid.
        assertEquals(1, LaunchGeometry.elementwise(Shape.channelsFirst(2, 3, 5, 7), false, 132, 6).grid().volume());
        assertEquals(132, LaunchGeometry.elementwise(Shape.channelsFirst(32, 64, 56, 56), true, 132, 0).grid().volume());
        assertEquals(0, LaunchGeometry.ceilDiv(0, 5));
    }
}
