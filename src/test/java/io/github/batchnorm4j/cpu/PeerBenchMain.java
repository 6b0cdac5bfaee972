package io.github.batchnorm4j.cpu;

import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.StringJoiner;

/**
 * The Java side of the peer benchmark (bench/peer-torch.sh, bench/peer_torch.py): a benchmark, not a test. The Python
 * side starts this main as a child process and drives it with one command per line on stdin; every command is
 * answered with one line on stdout ("ok ..." or "error ..."), so the two sides take turns and never run at once.
 *
 * <pre>
 * load LAYOUT D0,D1,...  XFILE DYFILE PARAMFILE   raw little-endian float32: x and dy in the layout's memory order,
 *                                                 PARAMFILE = gamma, beta, running mean, running var (C each)
 * check OUTDIR                                    runs each op once, writes y, save_mean, save_invstd, running_mean,
 *                                                 running_var, y_eval, dx, dgamma, dbeta (raw float32) into OUTDIR
 * time OP CALLS WARMUP_S                          OP = forward-train, forward-eval or backward: warms up for WARMUP_S
 *                                                 seconds (at least 2 calls; a WARMUP_S of 1 s or more: at least 30
 *                                                 calls, so that C2 has compiled the vector loops, which run a hundred
 *                                                 times slower before), then answers "ok t1 t2 ..." with the
 *                                                 nanoseconds of CALLS calls, each timed alone
 * copy FLOATS CALLS WARMUP_S                       times copies of a float[] of FLOATS into another (the fastest Java copy
 *                                                 that bench tries: System.arraycopy on 1 thread and split across the
 *                                                 threads): "ok 1 t1 t2 ... | 2 t1 t2 ..." in nanoseconds
 * quit
 * </pre>
 *
 * <p>Arguments: the thread count (default 2). The ops are the host API of {@link CpuBatchNormOps} on preallocated
 * outputs; backward uses the saved statistics of one forward-train of the same x (as torch's
 * native_batch_norm_backward does with its save_mean and save_invstd).
 */
public final class PeerBenchMain {
    private static final double EPS = 1e-5;
    private static final double MOMENTUM = 0.1;

    private Shape shape;
    private float[] x;
    private float[] dy;
    private float[] gamma;
    private float[] beta;
    private float[] runningMean;
    private float[] runningVar;
    private float[] y;
    private float[] dx;
    private float[] saveMean;
    private float[] saveInvstd;
    private float[] dgamma;
    private float[] dbeta;

    private PeerBenchMain() {
    }

    public static void main(String[] args) throws IOException {
        int threads = args.length > 0 ? Integer.parseInt(args[0]) : 2;
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PeerBenchMain main = new PeerBenchMain();
        try (CpuBatchNormOps ops = new CpuBatchNormOps(threads)) {
            out.println("ok ready threads " + ops.threads() + " loops " + ops.loopsName() + " java "
                    + System.getProperty("java.version"));
            for (String line; (line = in.readLine()) != null; ) {
                String[] w = line.trim().split("\\s+");
                try {
                    switch (w[0]) {
                        case "load" -> out.println(main.load(w));
                        case "check" -> out.println(main.check(ops, Path.of(w[1])));
                        case "time" -> out.println(main.time(ops, w[1], Integer.parseInt(w[2]),
                                Double.parseDouble(w[3])));
                        case "copy" -> out.println(copy(threads, Integer.parseInt(w[1]), Integer.parseInt(w[2]),
                                Double.parseDouble(w[3])));
                        case "quit" -> {
                            out.println("ok bye");
                            return;
                        }
                        default -> out.println("error unknown command '" + w[0] + "'");
                    }
                } catch (RuntimeException | IOException e) {
                    out.println("error " + e.toString().replace('\n', ' '));
                }
            }
        }
    }

    private String load(String[] w) throws IOException {
        Layout layout = Layout.parse(w[1]);
        shape = Shape.parse(layout, w[2]);
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        x = read(Path.of(w[3]), n);
        dy = read(Path.of(w[4]), n);
        float[] p = read(Path.of(w[5]), 4 * c);
        gamma = Arrays.copyOfRange(p, 0, c);
        beta = Arrays.copyOfRange(p, c, 2 * c);
        runningMean = Arrays.copyOfRange(p, 2 * c, 3 * c);
        runningVar = Arrays.copyOfRange(p, 3 * c, 4 * c);
        y = new float[n];
        dx = new float[n];
        saveMean = new float[c];
        saveInvstd = new float[c];
        dgamma = new float[c];
        dbeta = new float[c];
        return "ok " + shape;
    }

    private String check(CpuBatchNormOps ops, Path dir) throws IOException {
        float[] rm = runningMean.clone();
        float[] rv = runningVar.clone();
        Arrays.fill(y, Float.NaN);
        ops.forwardTraining(shape, x, gamma, beta, EPS, rm, rv, MOMENTUM, y, saveMean, saveInvstd);
        write(dir.resolve("y"), y);
        write(dir.resolve("save_mean"), saveMean);
        write(dir.resolve("save_invstd"), saveInvstd);
        write(dir.resolve("running_mean"), rm);
        write(dir.resolve("running_var"), rv);
        Arrays.fill(dx, Float.NaN);
        ops.backwardTraining(shape, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
        write(dir.resolve("dx"), dx);
        write(dir.resolve("dgamma"), dgamma);
        write(dir.resolve("dbeta"), dbeta);
        Arrays.fill(y, Float.NaN);
        ops.forwardInference(shape, x, gamma, beta, runningMean, runningVar, EPS, y);
        write(dir.resolve("y_eval"), y);
        return "ok checked";
    }

    private String time(CpuBatchNormOps ops, String op, int calls, double warmupSeconds) {
        float[] rm = runningMean.clone();
        float[] rv = runningVar.clone();
        Runnable body = switch (op) {
            case "forward-train" -> () -> ops.forwardTraining(shape, x, gamma, beta, EPS, rm, rv, MOMENTUM, y,
                    saveMean, saveInvstd);
            case "forward-eval" -> () -> ops.forwardInference(shape, x, gamma, beta, runningMean, runningVar, EPS, y);
            case "backward" -> {
                ops.forwardTraining(shape, x, gamma, beta, EPS, null, null, 0, y, saveMean, saveInvstd);
                yield () -> ops.backwardTraining(shape, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
            }
            default -> throw new IllegalArgumentException("op: unknown '" + op + "'");
        };
        long start = System.nanoTime();
        int minCalls = warmupSeconds >= 1 ? 30 : 2;
        for (int i = 0; i < minCalls || System.nanoTime() - start < warmupSeconds * 1e9; i++) body.run();
        StringJoiner j = new StringJoiner(" ", "ok ", "");
        for (int i = 0; i < calls; i++) {
            long t0 = System.nanoTime();
            body.run();
            j.add(Long.toString(System.nanoTime() - t0));
        }
        return j.toString();
    }

    private static String copy(int threads, int n, int calls, double warmupSeconds) {
        float[] src = new float[n];
        float[] dst = new float[n];
        for (int i = 0; i < n; i++) src[i] = i + 1;
        StringJoiner j = new StringJoiner(" ", "ok ", "");
        try (CpuBatchNormOps pool = new CpuBatchNormOps(threads)) {
            for (int t : new int[] {1, threads}) {
                Runnable body = t == 1 ? () -> System.arraycopy(src, 0, dst, 0, n) : () -> pool.parallel(t, k -> {
                    int lo = (int) ((long) n * k / t);
                    int hi = (int) ((long) n * (k + 1) / t);
                    System.arraycopy(src, lo, dst, lo, hi - lo);
                });
                long start = System.nanoTime();
                for (int i = 0; i < 2 || System.nanoTime() - start < warmupSeconds * 1e9; i++) body.run();
                j.add("| " + t);
                for (int i = 0; i < calls; i++) {
                    long t0 = System.nanoTime();
                    body.run();
                    j.add(Long.toString(System.nanoTime() - t0));
                }
            }
        }
        return j.toString().replaceFirst("^ok \\| ", "ok ");
    }

    private static float[] read(Path file, int n) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            if (ch.size() != 4L * n) {
                throw new IOException(file + ": expected " + 4L * n + " bytes, got " + ch.size());
            }
            ByteBuffer b = ByteBuffer.allocate(4 * n).order(ByteOrder.LITTLE_ENDIAN);
            while (b.hasRemaining()) {
                if (ch.read(b) < 0) throw new IOException(file + ": short read");
            }
            b.flip();
            float[] a = new float[n];
            b.asFloatBuffer().get(a);
            return a;
        }
    }

    private static void write(Path file, float[] a) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(4 * a.length).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(a);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            while (b.hasRemaining()) ch.write(b);
        }
    }
}
