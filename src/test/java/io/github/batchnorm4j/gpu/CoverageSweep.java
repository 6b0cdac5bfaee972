package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.ptx.Coverage;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.ptx.EmulatorOptions;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * What the host can make the batch-norm kernels execute (not a test: run it by hand; minutes). Runs every operation
 * (forward training with and without running statistics, eval forward, normalize, statistics, backward training with
 * and without dgamma/dbeta, eval backward with and without them, and in-place y = x / dx = dy) on realistic shapes,
 * with emulated devices of 1, 108, 114 and 132 SMs, checks off, and prints the coverage of the batch-norm modules: an
 * instruction this sweep never executes is unreachable from the host (dead code), the set the coverage gate of
 * {@link EmulatorBatchNormOpsTest} must execute is everything else.
 *
 * <pre>
 * mvn -q -o test-compile && java -cp target/classes:target/test-classes:$(cat cp.txt) \
 *     io.github.batchnorm4j.gpu.CoverageSweep [out-folder] [sms,sms,...] [layout:dims ...]
 * </pre>
 * The folder (default target/coverage-sweep) receives coverage.tsv and coverage.txt as {@link Coverage#mergeInto}.
 */
public final class CoverageSweep {
    /** Realistic shapes: few and many channels, inner 1 / small / large, both layouts, float4 and scalar paths. */
    static final List<Shape> SHAPES = List.of(
            Shape.channelsFirst(160, 3, 64, 64),    // C = 3, many partials per channel
            Shape.channelsFirst(66, 1, 64, 64),     // C = 1
            Shape.channelsFirst(32, 64, 28, 28),    // a ResNet stage
            Shape.channelsFirst(48, 3, 64, 64),
            Shape.channelsFirst(64, 64, 7, 7),      // small odd inner
            Shape.channelsFirst(256, 64, 3),        // tiny inner
            Shape.channelsFirst(4096, 64, 1, 1),    // inner = 1
            Shape.channelsFirst(8, 3, 127, 129),    // odd inner, scalar path, long runs
            Shape.channelsFirst(2, 4099, 3),        // very many channels
            Shape.channelsLast(64, 32, 32, 64),     // NHWC
            Shape.channelsLast(256, 1024),          // [N, C]
            Shape.channelsLast(65536, 3),           // few channels, many rows
            Shape.channelsLast(4096, 131),          // odd C, several column blocks
            Shape.channelsLast(16, 33, 33, 36),     // C % 4 == 0, not a multiple of 32 channel units
            Shape.channelsLast(2, 7, 4099));        // very many channels, few rows

    private CoverageSweep() {
    }

    public static void main(String[] args) {
        Path out = Path.of(args.length > 0 ? args[0] : "target/coverage-sweep");
        int[] sms = args.length > 1 ? java.util.Arrays.stream(args[1].split(",")).mapToInt(Integer::parseInt).toArray()
                : new int[]{1, 108, 114, 132};
        List<Shape> shapes = new ArrayList<>();
        for (int i = 2; i < args.length; i++) {
            String[] p = args[i].split(":");
            shapes.add(Shape.parse(Layout.parse(p[0]), p[1]));
        }
        if (shapes.isEmpty()) shapes = SHAPES;
        Coverage coverage = new Coverage();
        for (int n : sms) {
            EmulatorOptions o = EmulatorOptions.defaults().withoutChecks().withMultiprocessorCount(n);
            try (BatchNormOps ops = new HostArrayBatchNormOps("emulator", new EmulatedDevice(o, coverage), true)) {
                for (Shape s : shapes) {
                    long t0 = System.nanoTime();
                    runAll(ops, s);
                    System.err.printf("%d SMs %s: %.1f s%n", n, s, (System.nanoTime() - t0) / 1e9);
                }
            }
        }
        System.out.print(coverage.report(m -> m.startsWith("batchnorm_")));
        coverage.mergeInto(out);
        System.err.println("wrote " + out.resolve(Coverage.TSV));
    }

    /** Every operation of the host API on one shape, with random inputs. */
    static void runAll(BatchNormOps ops, Shape s) {
        SplittableRandom r = new SplittableRandom(s.hashCode());
        int n = s.elementCountAsInt(), c = s.channels();
        float[] x = fill(r, n, 3, 2), dy = fill(r, n, 0, 1);
        float[] g = fill(r, c, 1, 0.2), b = fill(r, c, 0, 1);
        float[] rm = fill(r, c, 0, 1), rv = fill(r, c, 1, 0.1);
        for (int i = 0; i < c; i++) rv[i] = Math.abs(rv[i]) + 0.1f;
        float[] y = new float[n], mean = new float[c], invstd = new float[c];
        ops.forwardTraining(s, x, g, b, 1e-5, rm, rv, 0.1, y, mean, invstd);
        ops.forwardTraining(s, x, null, null, 1e-5, null, null, 0, y, mean, invstd);
        ops.forwardInference(s, x, g, b, rm, rv, 1e-5, y);
        ops.normalize(s, x, g, b, mean, invstd, y);
        ops.statistics(s, x);
        ops.backwardTraining(s, x, dy, g, mean, invstd, y, new float[c], new float[c]);
        ops.backwardTraining(s, x, dy, null, mean, invstd, y, null, null);
        ops.backwardInference(s, x, dy, g, rm, rv, 1e-5, y, new float[c], new float[c]);
        ops.backwardInference(s, x, dy, g, rm, rv, 1e-5, y, null, null);
    }

    private static float[] fill(SplittableRandom r, int n, double mean, double std) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (mean + std * r.nextGaussian());
        return a;
    }
}
