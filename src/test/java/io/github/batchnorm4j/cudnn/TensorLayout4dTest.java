package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.Shape;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** How each layout and rank is folded into cuDNN's 4-D (n, c, h, w) descriptor with explicit strides. */
class TensorLayout4dTest {

    @Test
    void channelsFirstIsPackedNchwWithSpatialDimsFolded() {
        assertEquals(new TensorLayout4d(2, 3, 5, 1, 15, 5, 1, 1), TensorLayout4d.of(Shape.channelsFirst(2, 3, 5)));
        assertEquals(new TensorLayout4d(2, 3, 4, 5, 60, 20, 5, 1), TensorLayout4d.of(Shape.channelsFirst(2, 3, 4, 5)));
        assertEquals(new TensorLayout4d(2, 3, 20, 6, 360, 120, 6, 1),
                TensorLayout4d.of(Shape.channelsFirst(2, 3, 4, 5, 6)));
        assertEquals(new TensorLayout4d(1, 4099, 7, 1, 4099 * 7, 7, 1, 1),
                TensorLayout4d.of(Shape.channelsFirst(1, 4099, 7)));
    }

    @Test
    void channelsLastIsPackedNhwcWithSpatialDimsFolded() {
        assertEquals(new TensorLayout4d(2, 3, 5, 1, 15, 1, 3, 3), TensorLayout4d.of(Shape.channelsLast(2, 5, 3)));
        assertEquals(new TensorLayout4d(2, 3, 4, 5, 60, 1, 15, 3), TensorLayout4d.of(Shape.channelsLast(2, 4, 5, 3)));
        assertEquals(new TensorLayout4d(2, 3, 20, 6, 360, 1, 18, 3), TensorLayout4d.of(Shape.channelsLast(2, 4, 5, 6, 3)));
        // plain [N, C] is channels-last whichever factory made it
        assertEquals(new TensorLayout4d(7, 5, 1, 1, 5, 1, 5, 5), TensorLayout4d.of(Shape.channelsFirst(7, 5)));
        assertEquals(new TensorLayout4d(7, 5, 1, 1, 5, 1, 5, 5), TensorLayout4d.of(Shape.channelsLast(7, 5)));
    }

    @Test
    void shapesBeyondIntDescriptorsAreRejectedNamingTheValue() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TensorLayout4d.of(Shape.channelsFirst(2, 64, 65536, 1024)));
        assertTrue(e.getMessage().contains("nStride = 4294967296"), e.getMessage());
    }
}
