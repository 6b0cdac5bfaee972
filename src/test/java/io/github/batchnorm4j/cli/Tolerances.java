package io.github.batchnorm4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/** Tolerances of the tests (DESIGN §6) and the assertion that applies them. */
final class Tolerances {
    /** Forward outputs and statistics: |a − e| ≤ FORWARD·max(|e|, 1). */
    static final double FORWARD = 1e-5;
    /** Gradients: |a − e| ≤ GRADIENT·max(|e|, 1). */
    static final double GRADIENT = 1e-4;

    private Tolerances() {
    }

    /** Fails naming the tensor, the first bad index, expected and actual, and how many elements mismatched. */
    static void assertClose(String name, double[] expected, float[] actual, double tol) {
        assertEquals(expected.length, actual.length, name + ": length");
        int bad = 0;
        int first = -1;
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs(actual[i] - expected[i]);
            if (!(err <= tol * Math.max(Math.abs(expected[i]), 1.0))) {
                if (first < 0) first = i;
                bad++;
            }
        }
        if (bad > 0) {
            fail(name + ": " + bad + " of " + expected.length + " elements differ by more than " + tol
                    + " relative; first at index " + first + ": expected " + expected[first] + ", got " + actual[first]);
        }
    }
}
