package io.github.batchnorm4j.train;

import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DeviceStream;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static io.github.batchnorm4j.testing.TestData.gaussian;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The shipped PTX of {@code cuda/train_kernels.cu}, run on the PTX emulator, against the Java counterparts in
 * {@link CpuTrainBackend} on random inputs (fixed seeds), with every output poisoned (NaN) before the launch.
 * Elementwise kernels must be bit-identical (same single roundings; SGD forbids FMA contraction); the softmax and the
 * column sums accumulate in double like Java and must agree to float rounding (the column sums are bit-identical too).
 */
class TrainKernelsEmulatorTest {
    static final int ROWS = 37;
    static final int COLS = 29; // rows·cols = 1073: five blocks of 256 and a partial one

    private EmulatedDevice device;
    private CpuTrainBackend cpu;
    private final List<DeviceBuffer> buffers = new ArrayList<>();

    @BeforeEach
    void open() {
        device = new EmulatedDevice();
        cpu = new CpuTrainBackend();
    }

    @AfterEach
    void close() {
        for (DeviceBuffer b : buffers) b.close();
        device.close();
        cpu.close();
    }

    private DeviceStream s() {
        return device.defaultStream();
    }

    private DeviceBuffer upload(float[] a) {
        DeviceBuffer b = device.allocate(4L * a.length);
        buffers.add(b);
        device.copyToDevice(a, 0, b.pointer(), a.length, s());
        return b;
    }

    private DeviceBuffer uploadInts(int[] a) {
        DeviceBuffer b = device.allocate(4L * a.length);
        buffers.add(b);
        device.copyToDevice(a, 0, b.pointer(), a.length, s());
        return b;
    }

    private DeviceBuffer poisoned(int n) {
        float[] nan = new float[n];
        Arrays.fill(nan, Float.NaN);
        return upload(nan);
    }

    private float[] download(DeviceBuffer b, int n) {
        float[] a = new float[n];
        device.copyToHost(b.pointer(), a, 0, n, s());
        return a;
    }

    private float[] cpu(int rows, int cols, float[] data, java.util.function.Consumer<Tensor> op) {
        CpuTensor t = new CpuTensor(rows, cols, data.clone());
        op.accept(t);
        return t.data();
    }

    private static void assertBits(float[] expected, float[] actual, String what) {
        int bad = 0;
        String first = null;
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToIntBits(expected[i]) != Float.floatToIntBits(actual[i])) {
                if (first == null) first = what + "[" + i + "]: expected " + expected[i] + ", got " + actual[i];
                bad++;
            }
        }
        assertEquals(0, bad, bad + " of " + expected.length + " elements of " + what + " differ; first " + first);
    }

    /**
     * One thread per element with the normal grid; with a single block each thread strides over ~16 elements, which
     * runs the loop bodies nvcc unrolls by 4 (a mutated instruction there went unnoticed with fewer rounds).
     */
    @ParameterizedTest(name = "maxBlocks={0} rows={1} cols={2}")
    @CsvSource({TrainKernels.MAX_BLOCKS + "," + ROWS + "," + COLS, "1,67,61"})
    void elementwiseKernelsAreBitIdenticalToJava(int maxBlocks, int rowsCase, int colsCase) {
        Random rng = new Random(100 + maxBlocks);
        final int ROWS = rowsCase, COLS = colsCase;
        int n = ROWS * COLS;
        try (TrainKernels k = new TrainKernels(device, maxBlocks)) {
            // bias add
            float[] x = gaussian(rng, n), bias = gaussian(rng, COLS);
            DeviceBuffer dx = upload(x);
            k.biasAdd(dx.pointer(), upload(bias).pointer(), ROWS, COLS, s());
            assertBits(cpu(ROWS, COLS, x, t -> cpu.addBias(t, new CpuTensor(1, COLS, bias.clone()))),
                    download(dx, n), "biasAdd");

            // ReLU forward, with NaN and -0 among the inputs
            float[] z = gaussian(rng, n);
            z[5] = Float.NaN;
            z[6] = -0f;
            DeviceBuffer y = poisoned(n);
            k.reluForward(upload(z).pointer(), y.pointer(), n, s());
            float[] yGpu = download(y, n);
            float[] yCpu = new float[n];
            cpu.reluForward(new CpuTensor(ROWS, COLS, z.clone()), new CpuTensor(ROWS, COLS, yCpu));
            for (int i = 0; i < n; i++) {
                // -0 vs +0 is the one permitted difference (both are "not positive"; Math.max gives +0).
                assertTrue(yCpu[i] == yGpu[i] || (Float.isNaN(yCpu[i]) && Float.isNaN(yGpu[i])),
                        "reluForward[" + i + "]: expected " + yCpu[i] + ", got " + yGpu[i]);
            }

            // ReLU backward, into a separate buffer and in place
            float[] dy = gaussian(rng, n);
            DeviceBuffer dxOut = poisoned(n);
            DeviceBuffer yBuf = upload(yCpu);
            k.reluBackward(yBuf.pointer(), upload(dy).pointer(), dxOut.pointer(), n, s());
            float[] expect = new float[n];
            cpu.reluBackward(new CpuTensor(ROWS, COLS, yCpu.clone()), new CpuTensor(ROWS, COLS, dy.clone()),
                    new CpuTensor(ROWS, COLS, expect));
            assertBits(expect, download(dxOut, n), "reluBackward");
            DeviceBuffer inPlace = upload(dy);
            k.reluBackward(yBuf.pointer(), inPlace.pointer(), inPlace.pointer(), n, s());
            assertBits(expect, download(inPlace, n), "reluBackward in place");

            // SGD with momentum and weight decay
            float[] p = gaussian(rng, n), g = gaussian(rng, n), v = gaussian(rng, n);
            DeviceBuffer pb = upload(p), vb = upload(v);
            k.sgdMomentum(pb.pointer(), upload(g).pointer(), vb.pointer(), n, 0.05f, 0.9f, 1e-3f, s());
            CpuTensor pc = new CpuTensor(ROWS, COLS, p.clone()), vc = new CpuTensor(ROWS, COLS, v.clone());
            cpu.sgdUpdate(pc, new CpuTensor(ROWS, COLS, g.clone()), vc, 0.05f, 0.9f, 1e-3f);
            assertBits(pc.data(), download(pb, n), "sgd param");
            assertBits(vc.data(), download(vb, n), "sgd velocity");
        }
    }

    @Test
    void biasGradientMatchesJava() {
        Random rng = new Random(7);
        int rows = 300, cols = 300; // two blocks of columns, the second partial
        float[] dy = gaussian(rng, rows * cols);
        try (TrainKernels k = new TrainKernels(device)) {
            DeviceBuffer out = poisoned(cols);
            k.biasGrad(upload(dy).pointer(), out.pointer(), rows, cols, s());
            float[] expect = new float[cols];
            cpu.sumRows(new CpuTensor(rows, cols, dy), new CpuTensor(1, cols, expect));
            // Both sum in double in row order and round once: identical.
            assertBits(expect, download(out, cols), "biasGrad");
        }
    }

    @ParameterizedTest(name = "classes={0}")
    @ValueSource(ints = {10, 3, 300})
    void softmaxCrossEntropyMatchesJava(int classes) {
        Random rng = new Random(classes);
        int rows = ROWS;
        float[] z = gaussian(rng, rows * classes);
        for (int i = 0; i < z.length; i++) z[i] *= 3;
        z[classes + 1] = 85f; // exp(85) overflows float: the max subtraction must prevent it
        z[2 * classes] = z[2 * classes + 1] = 50f; // a tie for the maximum: the lowest index wins
        int[] labels = new int[rows];
        for (int r = 0; r < rows; r++) labels[r] = rng.nextInt(classes);
        labels[2] = 0;
        try (TrainKernels k = new TrainKernels(device)) {
            DeviceBuffer g = poisoned(rows * classes), loss = poisoned(rows), correct = poisoned(rows);
            k.softmaxCrossEntropy(upload(z).pointer(), uploadInts(labels).pointer(), g.pointer(), loss.pointer(),
                    correct.pointer(), rows, classes, s());
            float[] gGpu = download(g, rows * classes);
            float[] lossGpu = download(loss, rows);
            int[] correctGpu = new int[rows];
            device.copyToHost(correct.pointer(), correctGpu, 0, rows, s());

            float[] gCpu = new float[rows * classes];
            double lossCpu = cpu.softmaxCrossEntropy(new CpuTensor(rows, classes, z.clone()), labels,
                    new CpuTensor(rows, classes, gCpu));
            int correctCpu = cpu.countCorrect(new CpuTensor(rows, classes, z.clone()), labels);

            // Same double formulas; exp/log implementations may differ in the last bit of a double, which rounding
            // to float almost always hides: allow one float ulp.
            for (int i = 0; i < gCpu.length; i++) {
                assertEquals(gCpu[i], gGpu[i], Math.ulp(gCpu[i]), "dlogits[" + i + "]");
            }
            double sum = 0;
            for (int r = 0; r < rows; r++) {
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < classes; j++) max = Math.max(max, z[r * classes + j]);
                double e = 0;
                for (int j = 0; j < classes; j++) e += Math.exp(z[r * classes + j] - max);
                double expected = Math.log(e) - (z[r * classes + labels[r]] - max);
                assertEquals(expected, lossGpu[r], Math.ulp((float) expected), "loss[" + r + "]");
                sum += lossGpu[r];
            }
            assertEquals(lossCpu, sum, 1e-6 * lossCpu, "Σ loss");
            int total = 0;
            for (int r = 0; r < rows; r++) {
                int best = 0;
                for (int j = 1; j < classes; j++) if (z[r * classes + j] > z[r * classes + best]) best = j;
                assertEquals(best == labels[r] ? 1 : 0, correctGpu[r], "correct[" + r + "]");
                total += correctGpu[r];
            }
            assertEquals(correctCpu, total);
            assertEquals(1, correctGpu[2], "row 2: tie between classes 0 and 1, label 0");
        }
    }

    @Test
    void argumentsAreCheckedBeforeLaunching() {
        try (TrainKernels k = new TrainKernels(device)) {
            DeviceBuffer small = upload(new float[10]);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> k.reluForward(small.pointer(), small.pointer(), 11, s()));
            assertEquals("x: expected room for 11 floats, got 40 bytes", e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> k.biasAdd(small.pointer(), small.pointer(), 0, 3, s()));
            assertEquals("rows: expected >= 1, got 0", e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> k.sgdMomentum(small.at(2), small.pointer(), small.pointer(), 1, 1f, 0f, 0f, s()));
            assertTrue(e.getMessage().startsWith("p: expected a 4-byte aligned address"), e.getMessage());
        }
    }
}
