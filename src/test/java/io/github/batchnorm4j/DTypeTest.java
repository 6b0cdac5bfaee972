package io.github.batchnorm4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.batchnorm4j.testing.HalfReference;
import io.github.batchnorm4j.testing.HalfReference.Mode;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * {@link DType}'s conversions against {@link HalfReference} (the formats written from their definitions): every one of
 * the 65,536 patterns of each type decoded; float32 → 16 bits on every edge case (each value of the type and its
 * float32 neighbours, each tie and its neighbours, subnormal boundaries, overflow, NaN payloads) and on a sweep of
 * float32 patterns. The sweep over all 2^32 float32 patterns is {@link DTypeExhaustiveCheck} (a main, about a minute).
 */
class DTypeTest {

    static HalfReference reference(DType t) {
        return t == DType.FLOAT16 ? HalfReference.FLOAT16 : HalfReference.BFLOAT16;
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"FLOAT16", "BFLOAT16"})
    void decodesAllPatternsExactly(DType t) {
        HalfReference ref = reference(t);
        int nans = 0;
        for (int p = 0; p < 65536; p++) {
            int bits = t.decodeToFloatBits((short) p);
            double expected = ref.value(p);
            if (Double.isNaN(expected)) {
                nans++;
                // sign kept, payload moved to the top of the float32 fraction
                int want = ((p & 0x8000) << 16) | 0x7F800000 | (ref.fraction(p) << (23 - ref.fractionBits()));
                if (bits != want) fail(t + " NaN pattern " + hex(p) + ": expected float bits " + hex(want) + ", got " + hex(bits));
                continue;
            }
            float got = Float.intBitsToFloat(bits);
            if (Double.compare(expected, got) != 0) { // compare() tells -0 from +0
                fail(t + " pattern " + hex(p) + ": expected " + expected + ", got " + got);
            }
            assertEquals(Float.floatToRawIntBits(got), Float.floatToRawIntBits(t.decode((short) p)));
        }
        assertEquals(t == DType.FLOAT16 ? 2 * 1023 : 2 * 127, nans, "NaN patterns seen");
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"FLOAT16", "BFLOAT16"})
    void everyPatternSurvivesARoundTrip(DType t) {
        for (int p = 0; p < 65536; p++) {
            short back = t.encodeFloatBits(t.decodeToFloatBits((short) p));
            if ((back & 0xFFFF) != p) fail(t + ": " + hex(p) + " came back as " + hex(back & 0xFFFF));
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"FLOAT16", "BFLOAT16"})
    void encodesEdgeCasesToNearestEven(DType t) {
        HalfReference ref = reference(t);
        int checked = 0;
        for (float f : ref.edgeFloatArray()) {
            assertEncodes(t, ref, Float.floatToRawIntBits(f));
            checked++;
        }
        assertTrue(checked > 300_000, "edge cases: " + checked);
    }

    /** Every 1021st float32 pattern from a random start, both signs: about 4.2 million conversions. */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"FLOAT16", "BFLOAT16"})
    void encodesASweepOfFloat32Patterns(DType t) {
        HalfReference ref = reference(t);
        // Walking the positive patterns in increasing order, the pattern below the value only moves up: the
        // reference's search is done incrementally (same rule, linear time).
        int below = 0;
        for (long f = new SplittableRandom(13).nextInt(1021); f <= 0x7F800000L; f += 1021) {
            float a = Float.intBitsToFloat((int) f);
            while (below < ref.maxFinite() && ref.value(below + 1) <= a) below++;
            int expected = nearestEven(ref, below, a);
            int got = t.encodeFloatBits((int) f) & 0xFFFF;
            int gotNeg = t.encodeFloatBits((int) f | 0x80000000) & 0xFFFF;
            if (got != expected || gotNeg != (expected | 0x8000)) {
                fail(t + ": " + a + " (" + hex((int) f) + ") expected " + hex(expected) + ", got " + hex(got)
                        + " and " + hex(gotNeg) + " for its negative");
            }
        }
    }

    /** The reference rounding given the largest finite pattern {@code below} with value ≤ a (a ≥ 0, not NaN). */
    static int nearestEven(HalfReference ref, int below, float a) {
        if (Float.isInfinite(a)) return ref.infinity();
        double vb = ref.value(below);
        if (vb == a) return below;
        int above = below + 1;
        double va = above == ref.infinity() ? Math.scalb(1.0, ref == HalfReference.FLOAT16 ? 16 : 128) : ref.value(above);
        double db = a - vb;
        double da = va - a;
        if (db < da) return below;
        if (da < db) return above;
        return (below & 1) == 0 ? below : above;
    }

    private static void assertEncodes(DType t, HalfReference ref, int floatBits) {
        float f = Float.intBitsToFloat(floatBits);
        int got = t.encodeFloatBits(floatBits) & 0xFFFF;
        int expected;
        if (Float.isNaN(f)) {
            int kept = (floatBits & 0x7FFFFF) >>> (23 - ref.fractionBits());
            int quiet = 1 << (ref.fractionBits() - 1);
            expected = ((floatBits >>> 16) & 0x8000) | ref.infinity() | (kept != 0 ? kept : quiet);
        } else {
            expected = ref.round(f, Mode.NEAREST_EVEN);
        }
        if (got != expected) {
            fail(t + ": " + f + " (" + hex(floatBits) + ") expected " + hex(expected) + " (" + ref.value(expected)
                    + "), got " + hex(got) + " (" + ref.value(got) + ")");
        }
    }

    @Test
    void namedEdgeCases() {
        DType h = DType.FLOAT16;
        assertEquals(0x7BFF, h.encode(65504f) & 0xFFFF, "max float16");
        assertEquals(0x7BFF, h.encode(65519.996f) & 0xFFFF, "just below the overflow tie");
        assertEquals(0x7C00, h.encode(65520f) & 0xFFFF, "the tie above 65504 rounds to even: Inf");
        assertEquals(0xFC00, h.encode(-1e6f) & 0xFFFF, "overflow keeps the sign");
        assertEquals(0x0001, h.encode(0x1p-24f) & 0xFFFF, "smallest subnormal");
        assertEquals(0x0000, h.encode(0x1p-25f) & 0xFFFF, "the tie at half the smallest subnormal goes to 0 (even)");
        assertEquals(0x8001, h.encode(Math.nextUp(0x1p-25f) * -1f) & 0xFFFF, "just above the tie: -min subnormal");
        assertEquals(0x0002, h.encode(0x1.8p-24f) & 0xFFFF, "1.5 subnormal units tie to 2 (even)");
        assertEquals(0x3C00, h.encode(1f + 0x1p-11f) & 0xFFFF, "1 + half an ulp ties to 1 (even)");
        assertEquals(0x3C02, h.encode(1f + 3 * 0x1p-11f) & 0xFFFF, "1 + 1.5 ulp ties to 1 + 2 ulp (even)");
        assertEquals(0x0400, h.encode(0x1.ffcp-15f) & 0xFFFF, "largest subnormal + half a unit rounds up to 2^-14");
        assertEquals(0x7E00, h.encode(Float.NaN) & 0xFFFF, "Java's NaN (0x7FC00000) is the quiet NaN");
        assertEquals(0xFE00, h.encode(Float.intBitsToFloat(0xFF800001)) & 0xFFFF, "payload only in dropped bits");
        assertEquals(0x7D55, h.encode(Float.intBitsToFloat(0x7FAAA000)) & 0xFFFF, "top payload bits kept");
        DType b = DType.BFLOAT16;
        assertEquals(0x3F80, b.encode(1f) & 0xFFFF);
        assertEquals(0x3F80, b.encode(Float.intBitsToFloat(0x3F808000)) & 0xFFFF, "tie to even (down)");
        assertEquals(0x3F82, b.encode(Float.intBitsToFloat(0x3F818000)) & 0xFFFF, "tie to even (up)");
        assertEquals(0x7F80, b.encode(Float.MAX_VALUE) & 0xFFFF, "float32 max rounds to Inf");
        assertEquals(0x7F7F, b.encode(Float.intBitsToFloat(0x7F7F7FFF)) & 0xFFFF, "just below the overflow tie");
        assertEquals(0x0001, b.encode(Float.intBitsToFloat(0x00008001)) & 0xFFFF, "subnormal rounds up");
        assertEquals(0x8000, b.encode(-Float.MIN_VALUE) & 0xFFFF, "-tiny rounds to -0");
        assertEquals(0x7FC0, b.encode(Float.NaN) & 0xFFFF);
        assertEquals(-1f / 3, h.round(-1f / 3), 0x1p-13, "round: within half an ulp");
        assertEquals(0.333251953125f, h.round(1f / 3));
        assertEquals(0.333984375f, b.round(1f / 3));
        assertEquals(1f / 3, DType.FLOAT32.round(1f / 3));
    }

    @Test
    void bulkConversionsAndMisuse() {
        float[] v = {1f, -2.5f, 1e-6f, 70000f, Float.NaN};
        for (DType t : new DType[] {DType.FLOAT16, DType.BFLOAT16}) {
            short[] s = t.encode(v);
            float[] back = t.decode(s);
            for (int i = 0; i < v.length; i++) {
                assertEquals(t.encode(v[i]), s[i]);
                assertEquals(Float.floatToRawIntBits(t.decode(s[i])), Float.floatToRawIntBits(back[i]));
            }
            assertThrows(IllegalArgumentException.class, () -> t.encode(v, new short[4]));
            assertThrows(IllegalArgumentException.class, () -> t.decode(new short[3], new float[2]));
            assertThrows(IllegalArgumentException.class, () -> t.decode((short[]) null));
        }
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> DType.FLOAT32.encode(1f));
        assertTrue(e.getMessage().contains("float32"), e.getMessage());
        assertThrows(IllegalStateException.class, () -> DType.FLOAT32.decode((short) 0));
    }

    @Test
    void namesAndSizes() {
        assertEquals(DType.FLOAT16, DType.parse("float16"));
        assertEquals(DType.FLOAT16, DType.parse("FP16"));
        assertEquals(DType.BFLOAT16, DType.parse("bf16"));
        assertEquals(DType.FLOAT32, DType.parse("float32"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DType.parse("int8"));
        assertTrue(e.getMessage().contains("float32, float16 or bfloat16") && e.getMessage().contains("int8"));
        assertArrayEquals(new int[] {4, 2, 2}, new int[] {DType.FLOAT32.bytes(), DType.FLOAT16.bytes(),
                DType.BFLOAT16.bytes()});
        assertEquals(0x1p-11, DType.FLOAT16.unitRoundoff());
        assertEquals(0x1p-8, DType.BFLOAT16.unitRoundoff());
        assertEquals("<f2", DType.FLOAT16.npyDescr());
        assertEquals(null, DType.BFLOAT16.npyDescr());
        assertEquals("bfloat16", DType.BFLOAT16.toString());
    }

    static String hex(int v) {
        return String.format("0x%X", v);
    }
}
