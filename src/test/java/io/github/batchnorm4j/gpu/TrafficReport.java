package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.Backends;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;

import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Prints the kernels' global-memory traffic per operation, measured by a {@link MeasuringDevice} backend (the
 * emulator): one JSON object per line with traffic_ratio = bytes moved / S (S = bytes of x) and sector_efficiency,
 * against the budget of docs/design.md §3 (forward training ≤ 3 S, eval ≤ 2 S, backward ≤ 5 S). Not a test: run it by
 * hand.
 *
 * <pre>
 * java -cp target/classes:target/test-classes:... io.github.batchnorm4j.gpu.TrafficReport [backend] [dtype=T]
 *     [layout:shape]...
 * e.g. TrafficReport emulator dtype=float16 channels-first:32,64,56,56 channels-last:32,56,56,64 channels-last:256,1024
 * </pre>
 * With {@code dtype=float16} or {@code bfloat16} the 16-bit operations run and S counts bytes of that type.
 */
public final class TrafficReport {
    private TrafficReport() {
    }

    public static void main(String[] args) {
        String backend = args.length > 0 ? args[0] : "emulator";
        int first = 1;
        DType dtype = DType.FLOAT32;
        if (args.length > 1 && args[1].startsWith("dtype=")) {
            dtype = DType.parse(args[1].substring("dtype=".length()));
            first = 2;
        }
        String[] shapes = args.length > first ? java.util.Arrays.copyOfRange(args, first, args.length)
                : new String[]{"channels-first:32,64,56,56", "channels-last:32,56,56,64", "channels-last:256,1024"};
        try (BatchNormOps ops = Backends.open(backend)) {
            if (!(ops instanceof MeasuredOps measured)) {
                throw new IllegalArgumentException("backend " + backend + " does not measure traffic");
            }
            for (String spec : shapes) {
                String[] parts = spec.split(":");
                Shape shape = Shape.parse(Layout.parse(parts[0]), parts[1]);
                if (dtype == DType.FLOAT32) run(ops, measured, shape);
                else run16(ops, measured, shape, dtype);
            }
        }
    }

    private static void run(BatchNormOps ops, MeasuredOps measured, Shape shape) {
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        SplittableRandom rng = new SplittableRandom(42);
        float[] x = new float[n];
        float[] dy = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (rng.nextGaussian() * 2 + 3);
            dy[i] = (float) rng.nextGaussian();
        }
        ChannelParameters p = ChannelParameters.draw(c, rng);
        float[] gamma = p.gamma(), beta = p.beta(), rm = p.runningMean(), rv = p.runningVar();
        float[] y = new float[n];
        float[] mean = new float[c];
        float[] invstd = new float[c];
        long bytes = 4L * n;
        long t0 = System.nanoTime();
        ops.forwardTraining(shape, x, gamma, beta, 1e-5, rm, rv, 0.1, y, mean, invstd);
        print("forward-train", shape, bytes, measured, t0);
        t0 = System.nanoTime();
        ops.forwardInference(shape, x, gamma, beta, rm, rv, 1e-5, y);
        print("forward-eval", shape, bytes, measured, t0);
        t0 = System.nanoTime();
        ops.backwardTraining(shape, x, dy, gamma, mean, invstd, y, new float[c], new float[c]);
        print("backward", shape, bytes, measured, t0);
    }

    /** The same three operations on 16-bit x, y, dy, dx: S = 2 bytes per element. */
    private static void run16(BatchNormOps ops, MeasuredOps measured, Shape shape, DType dtype) {
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        SplittableRandom rng = new SplittableRandom(42);
        short[] x = new short[n];
        short[] dy = new short[n];
        for (int i = 0; i < n; i++) {
            x[i] = dtype.encode((float) (rng.nextGaussian() * 2 + 3));
            dy[i] = dtype.encode((float) rng.nextGaussian());
        }
        ChannelParameters p = ChannelParameters.draw(c, rng);
        float[] gamma = p.gamma(), beta = p.beta(), rm = p.runningMean(), rv = p.runningVar();
        short[] y = new short[n];
        float[] mean = new float[c];
        float[] invstd = new float[c];
        long bytes = (long) dtype.bytes() * n;
        String suffix = "-" + dtype.cliName();
        long t0 = System.nanoTime();
        ops.forwardTraining(shape, dtype, x, gamma, beta, 1e-5, rm, rv, 0.1, y, mean, invstd);
        print("forward-train" + suffix, shape, bytes, measured, t0);
        t0 = System.nanoTime();
        ops.forwardInference(shape, dtype, x, gamma, beta, rm, rv, 1e-5, y);
        print("forward-eval" + suffix, shape, bytes, measured, t0);
        t0 = System.nanoTime();
        ops.backwardTraining(shape, dtype, x, dy, gamma, mean, invstd, y, new float[c], new float[c]);
        print("backward" + suffix, shape, bytes, measured, t0);
    }

    /** gamma near 1, beta, running mean 0 and running variance 1, drawn after x and dy from the same generator. */
    private record ChannelParameters(float[] gamma, float[] beta, float[] runningMean, float[] runningVar) {
        static ChannelParameters draw(int c, SplittableRandom rng) {
            ChannelParameters p = new ChannelParameters(new float[c], new float[c], new float[c], new float[c]);
            for (int i = 0; i < c; i++) {
                p.gamma[i] = (float) (1 + 0.1 * rng.nextGaussian());
                p.beta[i] = (float) rng.nextGaussian();
                p.runningVar[i] = 1;
            }
            return p;
        }
    }

    private static void print(String op, Shape shape, long bytes, MeasuredOps measured, long t0) {
        TrafficMetrics m = measured.lastOperationMetrics().orElseThrow();
        System.out.println(String.format(Locale.ROOT,
                "{\"op\":\"%s\",\"layout\":\"%s\",\"shape\":\"%s\",\"bytes\":%d,\"bytes_moved\":%d,"
                        + "\"traffic_ratio\":%.4f,\"sector_efficiency\":%.4f,\"launches\":%d,\"thread_instructions\":%d,"
                        + "\"atomics\":%d,\"wall_s\":%.1f}",
                op, shape.layout().cliName(), java.util.Arrays.toString(shape.dims()).replace(" ", ""), bytes,
                m.bytesMoved(), (double) m.bytesMoved() / bytes, m.sectorEfficiency(), m.launches(),
                m.threadInstructions(), m.atomics(), (System.nanoTime() - t0) / 1e9));
    }
}
