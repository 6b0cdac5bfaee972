package io.github.batchnorm4j.testing;

import static io.github.batchnorm4j.testing.Tolerances.FINITE_DIFFERENCE_RTOL;
import static io.github.batchnorm4j.testing.Tolerances.assertClose;

import io.github.batchnorm4j.Shape;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Function;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The float64 reference's backward formulas against central finite differences of its own forward, in double: with
 * the scalar loss L = Σ w·y for random w, dy = w and every gradient component is (L(θ + h) − L(θ − h))/2h. This
 * checks the backward formulas of docs/design.md §1 independently of any backend (train mode: mean and var depend on x,
 * so a wrong formula for that dependence fails; eval mode: frozen statistics).
 */
class GradientCheckTest {
    private static final double EPS = 1e-3; // a larger eps than the default keeps the check sensitive to its place
    private static final double H = 1e-5;

    static List<Shape> shapes() {
        return List.of(Shape.channelsFirst(2, 3, 4), Shape.channelsFirst(1, 2, 5), Shape.channelsFirst(3, 2, 1, 3),
                Shape.channelsLast(5, 3), Shape.channelsLast(2, 3, 2), Shape.channelsLast(2, 2, 3, 1));
    }

    private record Case(double[] x, double[] w, double[] gamma, double[] beta, double[] runningMean,
                        double[] runningVar) {
        static Case draw(Shape shape) {
            SplittableRandom rng = TestData.random(shape.hashCode() * 7L);
            int n = shape.elementCountAsInt();
            int c = shape.channels();
            return new Case(Reference64.wide(TestData.normal(rng, n, 0.5, 1.5)),
                    Reference64.wide(TestData.normal(rng, n, 0, 1)),
                    Reference64.wide(TestData.uniform(rng, c, 0.5, 1.5)),
                    Reference64.wide(TestData.normal(rng, c, 0, 1)),
                    Reference64.wide(TestData.normal(rng, c, 0, 1)),
                    Reference64.wide(TestData.uniform(rng, c, 0.5, 2)));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("shapes")
    void trainingBackwardMatchesFiniteDifferences(Shape shape) {
        Case k = Case.draw(shape);
        Function<double[][], Double> loss = p -> dot(k.w,
                Reference64.forwardTraining(shape, p[0], p[1], p[2], EPS, null, null, 0).y());
        Reference64.Forward f = Reference64.forwardTraining(shape, k.x, k.gamma, k.beta, EPS, null, null, 0);
        Reference64.Backward b = Reference64.backwardTraining(shape, k.x, k.w, k.gamma, f.mean(), f.invstd());
        double[][] params = {k.x.clone(), k.gamma.clone(), k.beta.clone()};

        assertClose("dx", numeric(loss, params, 0), b.dx(), FINITE_DIFFERENCE_RTOL);
        assertClose("dgamma", numeric(loss, params, 1), b.dgamma(), FINITE_DIFFERENCE_RTOL);
        assertClose("dbeta", numeric(loss, params, 2), b.dbeta(), FINITE_DIFFERENCE_RTOL);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("shapes")
    void evalBackwardMatchesFiniteDifferences(Shape shape) {
        Case k = Case.draw(shape);
        Function<double[][], Double> loss = p -> dot(k.w,
                Reference64.forwardEval(shape, p[0], p[1], p[2], k.runningMean, k.runningVar, EPS));
        Reference64.Backward b = Reference64.backwardEval(shape, k.x, k.w, k.gamma, k.runningMean, k.runningVar, EPS);
        double[][] params = {k.x.clone(), k.gamma.clone(), k.beta.clone()};

        assertClose("dx", numeric(loss, params, 0), b.dx(), FINITE_DIFFERENCE_RTOL);
        assertClose("dgamma", numeric(loss, params, 1), b.dgamma(), FINITE_DIFFERENCE_RTOL);
        assertClose("dbeta", numeric(loss, params, 2), b.dbeta(), FINITE_DIFFERENCE_RTOL);
    }

    /** Central differences of the loss with respect to every element of params[which]. */
    private static double[] numeric(Function<double[][], Double> loss, double[][] params, int which) {
        double[] p = params[which];
        double[] g = new double[p.length];
        for (int i = 0; i < p.length; i++) {
            double keep = p[i];
            p[i] = keep + H;
            double up = loss.apply(params);
            p[i] = keep - H;
            double down = loss.apply(params);
            p[i] = keep;
            g[i] = (up - down) / (2 * H);
        }
        return g;
    }

    private static double dot(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
    }
}
