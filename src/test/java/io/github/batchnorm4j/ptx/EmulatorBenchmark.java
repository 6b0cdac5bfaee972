package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DeviceModule;
import io.github.batchnorm4j.gpu.Dim3;
import io.github.batchnorm4j.gpu.KernelArgs;
import io.github.batchnorm4j.gpu.TrafficMetrics;

import java.util.Random;

/**
 * Emulator speed (a benchmark, not a test): runs the reduce_sum test kernel (grid-stride loads, shuffles, shared
 * memory, a last-block merge) on a few million floats and prints thread-instructions per second on one core, with all
 * checks on, with all checks off, and with checks and {@link Coverage} on. Validates the result against Java before timing.
 * Rates are given per second of wall time and per second of this thread's CPU time (the latter is what to compare on a
 * shared, loaded machine).
 *
 * <pre>
 * mvn -q -o test-compile && java -cp target/classes:target/test-classes io.github.batchnorm4j.ptx.EmulatorBenchmark [n] [reps]
 * </pre>
 */
public final class EmulatorBenchmark {
    private EmulatorBenchmark() {
    }

    public static void main(String[] args) {
        int n = args.length > 0 ? Integer.parseInt(args[0]) : 4_000_000;
        int reps = args.length > 1 ? Integer.parseInt(args[1]) : 5;
        int grid = 264, block = 256;
        float[] x = new float[n];
        Random r = new Random(42);
        for (int i = 0; i < n; i++) x[i] = (float) r.nextGaussian();
        float expect = CorrectKernelsTest.referenceReduce(x, grid, block);
        String ptx = TestPtx.load("correct_kernels.ptx");
        for (String mode : new String[]{"on", "off", "on+coverage"}) {
            boolean checks = !mode.equals("off");
            EmulatorOptions opt = checks ? EmulatorOptions.defaults() : EmulatorOptions.defaults().withoutChecks();
            Coverage coverage = mode.endsWith("coverage") ? new Coverage() : null;
            try (EmulatedDevice dev = new EmulatedDevice(opt, coverage); DeviceBuffer dx = dev.allocate(4L * n);
                 DeviceBuffer partial = dev.allocate(4L * grid); DeviceBuffer counter = dev.allocate(4);
                 DeviceBuffer out = dev.allocate(4)) {
                DeviceModule m = dev.loadModule("correct_kernels.ptx", ptx);
                dev.copyToDevice(x, 0, dx.pointer(), n, dev.defaultStream());
                dev.memset(counter.pointer(), (byte) 0, 4, dev.defaultStream());
                double best = 0, bestCpu = 0;
                java.lang.management.ThreadMXBean mx = java.lang.management.ManagementFactory.getThreadMXBean();
                for (int rep = 0; rep < reps; rep++) {
                    dev.resetMetrics();
                    long c0 = mx.getCurrentThreadCpuTime();
                    long t0 = System.nanoTime();
                    dev.launch(m.kernel("reduce_sum"), Dim3.of(grid), Dim3.of(block), 0, dev.defaultStream(),
                            new KernelArgs().ptr(dx).i64(n).ptr(partial).ptr(counter).ptr(out));
                    long t1 = System.nanoTime();
                    long c1 = mx.getCurrentThreadCpuTime();
                    float[] got = new float[1];
                    dev.copyToHost(out.pointer(), got, 0, 1, dev.defaultStream());
                    if (Float.floatToIntBits(got[0]) != Float.floatToIntBits(expect)) {
                        throw new AssertionError("wrong sum " + got[0] + ", expected " + expect);
                    }
                    TrafficMetrics t = dev.metrics();
                    double rate = t.threadInstructions() / ((t1 - t0) / 1e9);
                    double cpuRate = t.threadInstructions() / ((c1 - c0) / 1e9);
                    best = Math.max(best, rate);
                    bestCpu = Math.max(bestCpu, cpuRate);
                    System.out.printf("checks %-3s rep %d: %,d thread-instructions in %.1f ms = %.1f M/s (%.1f M per"
                                    + " CPU-second; loaded %,d B, sector efficiency %.3f)%n", mode, rep,
                            t.threadInstructions(), (t1 - t0) / 1e6, rate / 1e6, cpuRate / 1e6,
                            t.globalBytesLoaded(), t.sectorEfficiency());
                }
                System.out.printf("BEST checks %s: %.1f M thread-instructions/s (%.1f M per CPU-second)%n", mode,
                        best / 1e6, bestCpu / 1e6);
            }
        }
    }
}
