package io.github.batchnorm4j;

import io.github.batchnorm4j.testing.HalfReference;

/**
 * {@link DType#encode} on every one of the 2^32 float32 patterns against {@link HalfReference}, for float16 and
 * bfloat16 (the unit test {@link DTypeTest} sweeps every 1021st): {@code mvn -q -o test-compile exec:java} is not
 * configured, so run {@code java -cp target/classes:target/test-classes io.github.batchnorm4j.DTypeExhaustiveCheck}.
 * Prints the count checked and the first mismatch, and exits 1 on any.
 */
public final class DTypeExhaustiveCheck {
    private DTypeExhaustiveCheck() {
    }

    public static void main(String[] args) {
        boolean ok = true;
        for (DType t : new DType[] {DType.FLOAT16, DType.BFLOAT16}) {
            HalfReference ref = DTypeTest.reference(t);
            long t0 = System.nanoTime();
            long checked = 0;
            long bad = 0;
            int below = 0;
            for (long f = 0; f <= 0xFFFFFFFFL; f++) {
                int bits = (int) f;
                if (f == 0x80000000L) below = 0; // the negative half: the same walk again
                float v = Float.intBitsToFloat(bits);
                int got = t.encodeFloatBits(bits) & 0xFFFF;
                int expected;
                if (Float.isNaN(v)) {
                    int kept = (bits & 0x7FFFFF) >>> (23 - ref.fractionBits());
                    expected = ((bits >>> 16) & 0x8000) | ref.infinity()
                            | (kept != 0 ? kept : 1 << (ref.fractionBits() - 1));
                } else {
                    float a = Math.abs(v);
                    while (below < ref.maxFinite() && ref.value(below + 1) <= a) below++;
                    expected = DTypeTest.nearestEven(ref, below, a) | ((bits >>> 16) & 0x8000);
                }
                checked++;
                if (got != expected && bad++ == 0) {
                    System.out.printf("%s: first mismatch at float bits 0x%08X: expected 0x%04X, got 0x%04X%n", t, bits,
                            expected, got);
                }
            }
            System.out.printf("%s: %d float32 patterns checked, %d mismatches, %.1f s%n", t, checked, bad,
                    (System.nanoTime() - t0) / 1e9);
            ok &= bad == 0;
        }
        if (!ok) System.exit(1);
    }
}
