package io.github.batchnorm4j.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.batchnorm4j.testing.TestData;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * {@link FloatCopy}: every range of arrays whose lengths reach the aligned head, the 4-vector loop, the 1-vector loop
 * and the scalar tail copies exactly that range (bits, NaN payloads included) and touches nothing else.
 */
class FloatCopyTest {
    @Test
    void copiesExactlyTheRange() {
        assertTrue(FloatCopy.vectorized(), "the tests run with the Vector API (pom.xml)");
        SplittableRandom rng = TestData.random(4242);
        for (int n : new int[] {0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 200, 1000, 4099}) {
            float[] src = TestData.normal(rng, n, 0, 1);
            if (n > 3) src[n / 2] = Float.intBitsToFloat(0x7fc01234); // a NaN with a payload
            for (int rep = 0; rep < 6; rep++) {
                int from = rep == 0 ? 0 : rng.nextInt(n + 1);
                int to = rep == 0 ? n : from + rng.nextInt(n - from + 1);
                float[] dst = TestData.poisoned(n);
                FloatCopy.copy(src, dst, from, to);
                for (int i = 0; i < n; i++) {
                    int expected = Float.floatToRawIntBits(i >= from && i < to ? src[i] : Float.NaN);
                    assertEquals(expected, Float.floatToRawIntBits(dst[i]), "n " + n + " [" + from + ", " + to + ") at " + i);
                }
            }
        }
    }

    @Test
    void rangesOutsideTheArraysAreRefused() {
        float[] a = new float[10];
        float[] b = new float[8];
        assertThrows(IndexOutOfBoundsException.class, () -> FloatCopy.copy(a, b, 0, 9));
        assertThrows(IndexOutOfBoundsException.class, () -> FloatCopy.copy(a, a, -1, 3));
        assertThrows(IndexOutOfBoundsException.class, () -> FloatCopy.copy(a, a, 5, 4));
    }
}
