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

    /** Every small inner extent from 1 to past {@link LaunchGeometry#SMALL_INNER}, with few and many channels. */
    private static List<Shape> smallInnerShapes() {
        List<Shape> out = new java.util.ArrayList<>();
        for (int inner = 1; inner <= LaunchGeometry.SMALL_INNER + 3; inner++) {
            for (int c : new int[]{1, 2, 3, 4, 5, 8, 12, 64, 112, 1000}) out.add(Shape.channelsFirst(37, c, inner));
        }
        return out;
    }

    @Test
    void reductionsCoverEveryValueExactlyOnceWithValidBlocks() {
        List<Shape> all = new java.util.ArrayList<>(SHAPES);
        all.addAll(smallInnerShapes());
        for (Shape s : all) {
            for (boolean vec : new boolean[]{false, true}) {
                if (vec && !LaunchGeometry.vectorizable(s)) {
                    assertThrows(IllegalArgumentException.class, () -> LaunchGeometry.reduction(s, true));
                    continue;
                }
                LaunchGeometry.Reduction g = LaunchGeometry.reduction(s, vec);
                String at = s + " vec=" + vec + ": " + g;
                if (g.view() == LaunchGeometry.View.CHANNELS_FIRST) assertEquals(0, g.block().volume() % 32, at);
                assertTrue(g.block().volume() <= LaunchGeometry.BLOCK, at);
                assertEquals(1, Integer.bitCount(g.block().y()), "by must be a power of two: " + at);
                if (g.view() == LaunchGeometry.View.CHANNELS_FIRST) {
                    long units = s.batch() * s.inner() / (vec ? 4 : 1);
                    assertTrue(g.chunk() * g.splits() >= units, "covers all: " + at);
                    assertTrue(g.chunk() * (g.splits() - 1) < units, "no empty block: " + at);
                    assertEquals(s.channels() * (long) g.splits(), g.grid().volume(), at);
                    assertTrue(g.splits() <= LaunchGeometry.MAX_CF_SPLITS, at);
                } else {
                    int w = vec ? 4 : 1;
                    long cols = (long) s.channels() * g.inner();
                    assertEquals(s.elementCount(), g.rows() * cols, "rows of C·inner floats: " + at);
                    assertTrue(g.chunk() * g.splits() >= g.rows(), "covers all: " + at);
                    assertTrue(g.chunk() * (g.splits() - 1) < g.rows(), "no empty block: " + at);
                    assertTrue((long) g.grid().x() * g.block().x() * w >= cols, at);
                    assertEquals(0, (long) g.block().x() * w % g.inner(), "whole channels per block: " + at);
                    assertTrue((long) g.block().x() * w / g.inner() <= g.block().volume(), "a thread per channel: " + at);
                    assertEquals(g.splits(), g.grid().y(), at);
                }
                assertEquals(g.splits() > 1 ? s.channels() * (long) g.splits() : 0, g.partials(), at);
            }
        }
    }

    /** Item 6 of issue 10: the merge tree of a reduction depends on the shape alone, never on the device. */
    @Test
    void reductionGeometryIsAFunctionOfTheShapeAlone() {
        LaunchGeometry.Reduction g = LaunchGeometry.reduction(Shape.channelsFirst(200, 3, 64, 64), true);
        assertEquals(176, g.splits(), "528 blocks for C = 3: " + g);
        g = LaunchGeometry.reduction(Shape.channelsFirst(48, 3, 64, 64), true);
        assertEquals(48, g.splits(), "limited by 1024 float4 units per block: " + g);
        g = LaunchGeometry.reduction(Shape.channelsFirst(66, 1, 64, 64), true);
        assertEquals(66, g.splits(), "C = 1: limited by 1024 float4 units per block: " + g);
        g = LaunchGeometry.reduction(Shape.channelsFirst(66, 1, 64, 65), false);
        assertEquals(268, g.splits(), "scalar: limited by 1024 floats per block: " + g);
    }

    @Test
    void elementwiseChunksAreWarpMultiples() {
        for (Shape s : SHAPES) {
            LaunchGeometry.Elementwise e = LaunchGeometry.elementwise(s, false, 132, 6);
            if (e.view() == LaunchGeometry.View.CHANNELS_FIRST) {
                assertEquals(0, e.block().volume() % 32, s.toString());
                assertEquals(0, e.chunk() % 32, s + " " + e);
            }
        }
        assertEquals(7, LaunchGeometry.ceilDiv(13, 2));
        assertEquals(0, LaunchGeometry.ceilDiv(0, 5));
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
    }
}
