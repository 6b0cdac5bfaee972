package io.github.batchnorm4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.testing.Reference64;
import org.junit.jupiter.api.Test;

/**
 * {@link Float64Check} (main code, used by {@code check} and {@code bench}) agrees with the tests' independent
 * float64 reference ({@link Reference64}) to double precision on every check shape, so a wrong reference cannot make a wrong backend pass.
 */
class Float64CheckTest {
    private static final double EPS = 1e-3; // larger than the default so eps mistakes show

    private static void same(String what, double[] expected, double[] actual) {
        assertEquals(expected.length, actual.length, what);
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], 1e-12 * Math.max(1, Math.abs(expected[i])), what + "[" + i + "]");
        }
    }

    @Test
    void agreesWithTheTestReferenceOnEveryCheckShape() {
        long seed = 5;
        for (Shape s : CrossCheck.shapes()) {
            RandomInputs in = RandomInputs.of(s, seed++);
            String at = " at " + s;
            Float64Check.Forward f = Float64Check.forwardTraining(s, in.x(), in.gamma(), in.beta(), EPS,
                    in.runningMean(), in.runningVar(), 0.2);
            Reference64.Forward r = Reference64.forwardTraining(s, in.x(), in.gamma(), in.beta(), EPS,
                    in.runningMean(), in.runningVar(), 0.2);
            same("y" + at, r.y(), f.y());
            same("mean" + at, r.mean(), f.mean());
            same("invstd" + at, r.invstd(), f.invstd());
            same("running_mean" + at, r.runningMean(), f.runningMean());
            same("running_var" + at, r.runningVar(), f.runningVar());
            same("eval y" + at, Reference64.forwardEval(s, in.x(), in.gamma(), in.beta(), in.runningMean(),
                    in.runningVar(), EPS), Float64Check.forwardInference(s, in.x(), in.gamma(), in.beta(),
                    in.runningMean(), in.runningVar(), EPS));
            Float64Check.Gradients g = Float64Check.backwardTraining(s, in.x(), in.dy(), in.gamma(), EPS);
            Reference64.Backward rg = Reference64.backwardTraining(s, in.x(), in.dy(), in.gamma(), EPS);
            same("dx" + at, rg.dx(), g.dx());
            same("dgamma" + at, rg.dgamma(), g.dgamma());
            same("dbeta" + at, rg.dbeta(), g.dbeta());
            Float64Check.Gradients ge = Float64Check.backwardInference(s, in.x(), in.dy(), in.gamma(),
                    in.runningMean(), in.runningVar(), EPS);
            Reference64.Backward rge = Reference64.backwardEval(s, in.x(), in.dy(), in.gamma(), in.runningMean(),
                    in.runningVar(), EPS);
            same("eval dx" + at, rge.dx(), ge.dx());
            same("eval dgamma" + at, rge.dgamma(), ge.dgamma());
            same("eval dbeta" + at, rge.dbeta(), ge.dbeta());
        }
    }

    @Test
    void randomInputsAreWellConditionedAndNeverZero() {
        for (Shape s : CrossCheck.shapes()) {
            RandomInputs in = RandomInputs.of(s, 9);
            double[] var = Float64Check.variance(s, in.x(), Float64Check.mean(s, in.x()));
            for (int c = 0; c < var.length; c++) {
                assertEquals(true, var[c] >= 0.25 / 9, "channel " + c + " of " + s + " variance " + var[c]);
            }
            for (float v : in.x()) assertEquals(true, v != 0, "x has a zero");
        }
    }
}
