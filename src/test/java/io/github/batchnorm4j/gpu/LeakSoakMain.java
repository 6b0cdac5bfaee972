package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.cpu.CpuBatchNormOps;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.testing.TestData;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * A leak soak, not a test (minutes): many forward + backward training steps, and many opens and closes of a backend,
 * with the JVM heap (after garbage collection), the live threads, the device's live buffers and its leak report read
 * before, during and after. A training loop runs millions of steps: anything a step keeps shows up here as heap that
 * grows with the step count.
 *
 * <ul>
 *   <li>{@code emulator}: the device-resident API ({@link DeviceResidentBatchNorm}) on the PTX emulator, checks on,
 *       one small shape; device buffers allocated once, as a training loop does.</li>
 *   <li>{@code cpu}: the CPU backend's host API ({@link BatchNormOps} on float[]), the same steps.</li>
 *   <li>{@code open-close}: opening and closing the CPU backend (its thread pool) and a device with its kernels.</li>
 * </ul>
 *
 * <pre>
 * mvn -q -B -o package -DskipTests &amp;&amp; mvn -q -B -o test-compile     # the CLI jar brings the dependencies
 * java -Xmx512m -cp target/classes:target/test-classes:target/batchnorm4j-cli.jar \
 *     io.github.batchnorm4j.gpu.LeakSoakMain [steps=10000] [emulator,cpu,open-close]
 * </pre>
 * Exit code 1 when the heap grew by more than 16 bytes per step, a buffer leaked or threads were left behind.
 */
public final class LeakSoakMain {
    private static final double EPS = 1e-5;

    private LeakSoakMain() {
    }

    /** Heap in use after collecting garbage, in bytes (several collections: one may leave floating garbage). */
    static long heapAfterGc() {
        long used = Long.MAX_VALUE;
        for (int i = 0; i < 4; i++) {
            System.gc();
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            used = Math.min(used, ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed());
        }
        return used;
    }

    static int threads() {
        return ManagementFactory.getThreadMXBean().getThreadCount();
    }

    private static String mib(long bytes) {
        return String.format(Locale.ROOT, "%.2f MiB", bytes / 1048576.0);
    }

    /** One step of a soak; {@code step} numbers it from 0. */
    @FunctionalInterface
    interface Step {
        void run(int step);
    }

    /** Heap samples every {@code steps / 10} steps; returns the growth per step (bytes) from the first sample on. */
    static double soak(String name, int steps, Step step, List<String> problems) {
        int every = Math.max(1, steps / 10);
        // Warm-up: workspaces sized, JIT done, bounded histories (the emulator's last 1024 launches) full.
        for (int i = 0; i < Math.min(400, steps); i++) step.run(i);
        long start = heapAfterGc();
        int threadsStart = threads();
        long stepNanos = 0; // the steps only, not the sampling's collections
        System.out.printf(Locale.ROOT, "%-9s %8s %12s %10s%n", name, "step", "heap", "s");
        System.out.printf(Locale.ROOT, "%-9s %8d %12s %10.1f%n", "", 0, mib(start), 0.0);
        long last = start;
        long settled = -1; // the first sample: growth is judged from there, past one-time allocations
        for (int i = 0; i < steps; i++) {
            long t = System.nanoTime();
            step.run(i);
            stepNanos += System.nanoTime() - t;
            if ((i + 1) % every == 0) {
                last = heapAfterGc();
                if (settled < 0) settled = last;
                System.out.printf(Locale.ROOT, "%-9s %8d %12s %10.1f%n", "", i + 1, mib(last), stepNanos / 1e9);
            }
        }
        double perStep = (double) (last - settled) / (steps - every);
        System.out.printf(Locale.ROOT, "%s: %d steps in %.1f s (%.3f ms/step), heap after GC %s -> %s -> %s"
                        + " (%+.1f bytes/step from step %d on), threads %d -> %d%n", name, steps, stepNanos / 1e9,
                stepNanos / 1e6 / steps, mib(start), mib(settled), mib(last), perStep, every, threadsStart, threads());
        if (perStep > 16) problems.add(name + ": heap grew " + perStep + " bytes per step");
        if (threads() > threadsStart) problems.add(name + ": " + (threads() - threadsStart) + " threads more");
        return perStep;
    }

    public static void main(String[] args) {
        int steps = args.length > 0 ? Integer.parseInt(args[0]) : 10_000;
        List<String> parts = List.of((args.length > 1 ? args[1] : "emulator,cpu,open-close").split(","));
        List<String> problems = new ArrayList<>();
        System.out.printf(Locale.ROOT, "leak soak: %d steps, Java %s, %d processors, max heap %s%n", steps,
                System.getProperty("java.version"), Runtime.getRuntime().availableProcessors(),
                mib(Runtime.getRuntime().maxMemory()));

        Shape shape = Shape.channelsFirst(4, 8, 4, 4);  // 512 floats, C = 8: a launch is cheap on the emulator
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        SplittableRandom rng = TestData.random(2024);
        float[] hostX = TestData.normal(rng, n, 1, 2);
        float[] hostDy = TestData.normal(rng, n, 0, 1);
        float[] gamma = TestData.uniform(rng, c, 0.5, 1.5);
        float[] beta = TestData.normal(rng, c, 0, 1);

        if (parts.contains("emulator")) {
            EmulatedDevice device = new EmulatedDevice();
            DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(device);
            List<DeviceBuffer> buffers = new ArrayList<>();
            DeviceBuffer x = add(buffers, device.allocate(4L * n));
            DeviceBuffer dy = add(buffers, device.allocate(4L * n));
            DeviceBuffer y = add(buffers, device.allocate(4L * n));
            DeviceBuffer dx = add(buffers, device.allocate(4L * n));
            DeviceBuffer params = add(buffers, device.allocate(4L * 8 * c)); // gamma beta rm rv sm si dgamma dbeta
            DeviceStream s = device.defaultStream();
            device.copyToDevice(hostX, 0, x.pointer(), n, s);
            device.copyToDevice(hostDy, 0, dy.pointer(), n, s);
            device.copyToDevice(gamma, 0, params.at(0), c, s);
            device.copyToDevice(beta, 0, params.at(4L * c), c, s);
            float[] init = new float[2 * c];
            for (int i = c; i < 2 * c; i++) init[i] = 1f;
            device.copyToDevice(init, 0, params.at(8L * c), 2 * c, s);
            int[] live = new int[1];
            long[] workspace = new long[1];
            soak("emulator", steps, i -> {
                bn.forwardTraining(shape, x.pointer(), params.at(0), params.at(4L * c), EPS, params.at(8L * c),
                        params.at(12L * c), 0.1, y.pointer(), params.at(16L * c), params.at(20L * c), s);
                bn.backwardTraining(shape, x.pointer(), dy.pointer(), params.at(0), params.at(16L * c),
                        params.at(20L * c), dx.pointer(), params.at(24L * c), params.at(28L * c), s);
                if (i == 0) {
                    workspace[0] = bn.workspaceBytes(); // sized by the first step, then reused
                    live[0] = device.liveBufferCount();
                }
            }, problems);
            float[] out = new float[n];
            device.copyToHost(dx.pointer(), out, 0, n, s);
            for (float v : out) if (!Float.isFinite(v)) problems.add("emulator: dx not finite after the soak");
            System.out.printf(Locale.ROOT, "emulator: live device buffers %d before, %d after; workspace %d bytes"
                    + " after the first step, %d after the last%n", live[0], device.liveBufferCount(), workspace[0],
                    bn.workspaceBytes());
            if (device.liveBufferCount() != live[0]) problems.add("emulator: live buffers " + live[0] + " -> "
                    + device.liveBufferCount());
            if (bn.workspaceBytes() != workspace[0]) problems.add("emulator: the workspace grew");
            for (DeviceBuffer b : buffers) b.close();
            bn.close();
            device.close(); // throws on a leak (EmulatorOptions.throwOnLeak)
            System.out.println("emulator: leak report after close: " + device.leakReport());
            if (!device.leakReport().isEmpty()) problems.add("emulator: leaked " + device.leakReport());
        }

        if (parts.contains("cpu")) {
            cpuSoak("cpu", shape, steps, problems);
            // A shape large enough for the backend to split the work over its threads.
            cpuSoak("cpu-large", Shape.channelsLast(8, 16, 16, 64), steps, problems);
        }

        if (parts.contains("open-close")) {
            int cycles = Math.max(10, steps / 10);
            soak("cpu-open", cycles, i -> new CpuBatchNormOps().close(), problems);
            soak("emu-open", Math.max(10, cycles / 10), i -> {
                try (EmulatedDevice d = new EmulatedDevice(); DeviceResidentBatchNorm b = new DeviceResidentBatchNorm(d)) {
                    b.workspaceBytes();
                }
            }, problems);
        }

        System.out.println(problems.isEmpty() ? "leak soak: PASS" : "leak soak: FAIL " + problems);
        System.exit(problems.isEmpty() ? 0 : 1);
    }

    /** The CPU backend's host API: forward and backward training steps on one shape. */
    private static void cpuSoak(String name, Shape shape, int steps, List<String> problems) {
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        SplittableRandom rng = TestData.random(n);
        float[] x = TestData.normal(rng, n, 1, 2);
        float[] dy = TestData.normal(rng, n, 0, 1);
        float[] gamma = TestData.uniform(rng, c, 0.5, 1.5);
        float[] beta = TestData.normal(rng, c, 0, 1);
        try (BatchNormOps ops = new CpuBatchNormOps()) {
            float[] rm = new float[c];
            float[] rv = new float[c];
            java.util.Arrays.fill(rv, 1f);
            float[] y = new float[n];
            float[] dx = new float[n];
            float[] sm = new float[c];
            float[] si = new float[c];
            float[] dg = new float[c];
            float[] db = new float[c];
            soak(name, steps, i -> {
                ops.forwardTraining(shape, x, gamma, beta, EPS, rm, rv, 0.1, y, sm, si);
                ops.backwardTraining(shape, x, dy, gamma, sm, si, dx, dg, db);
            }, problems);
            for (float v : dx) if (!Float.isFinite(v)) problems.add(name + ": dx not finite after the soak");
        }
    }

    private static DeviceBuffer add(List<DeviceBuffer> list, DeviceBuffer b) {
        list.add(b);
        return b;
    }
}
