package io.github.batchnorm4j;

import static io.github.batchnorm4j.testing.TestData.gaussian;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import io.github.batchnorm4j.gpu.Device;
import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DeviceStream;
import io.github.batchnorm4j.gpu.DeviceResidentBatchNorm;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import org.junit.jupiter.api.Test;

/**
 * The API examples of the README and docs/usage.md, compiled and run. The code between the BEGIN/END README markers
 * below must be the code block of the same name (in README.md or a page of docs/), line for line (indentation aside):
 * {@link #readmeShowsExactlyThisCode} fails when either side changes alone.
 */
class ReadmeExampleTest {
    private static final Path README = Path.of("README.md");
    private static final Path SELF = Path.of("src/test/java/io/github/batchnorm4j/ReadmeExampleTest.java");

    @Test
    void layerExampleRuns() {
        Random r = new Random(1);
        float[] x = gaussian(r, 8 * 64 * 14 * 14, 2.0, 3.0);
        float[] dy = gaussian(r, x.length, 0, 1);
        float[][] results = new float[3][];
        float[] runningMean = null;
        // BEGIN README layer
        try (BatchNormOps ops = Backends.open("auto")) {        // cuda when available, else cpu
            BatchNorm bn = BatchNorm.builder(64).momentum(0.1).eps(1e-5).build(ops);
            Shape shape = Shape.channelsFirst(8, 64, 14, 14);   // NCHW
            float[] y = bn.forward(shape, x);                   // training mode: batch statistics
            float[] dx = bn.backward(shape, x, dy);             // also fills bn.gammaGrad(), bn.betaGrad()
            bn.eval();
            float[] yEval = bn.forward(shape, x);               // running statistics
        // END README layer
            results[0] = y;
            results[1] = dx;
            results[2] = yEval;
            runningMean = bn.runningMean().clone();
            assertEquals(1, bn.numBatchesTracked());
        }
        // Training y has zero mean per channel; the running mean moved 10% of the way to the batch mean (≈ 2);
        // eval output differs from training output (other statistics), and dx is finite.
        double sum = 0;
        for (int s = 0; s < 14 * 14; s++) sum += results[0][s + 5 * 64 * 14 * 14];
        assertTrue(Math.abs(sum / 196) < 2, "y of channel 0 in sample 5 is normalized: " + sum / 196);
        for (float m : runningMean) assertTrue(m > 0.1 && m < 0.3, "running mean " + m);
        assertTrue(!Arrays.equals(results[0], results[2]));
        for (float v : results[1]) assertTrue(Float.isFinite(v));
    }

    @Test
    void functionalExampleRuns() {
        Random r = new Random(2);
        float[] x = gaussian(r, 8 * 14 * 14 * 32, -1.0, 0.5);
        float[] dy = gaussian(r, x.length, 0, 1);
        float[] gamma = gaussian(r, 32, 1, 0.1);
        float[] beta = gaussian(r, 32, 0, 0.1);
        float[] out = null;
        float[] db = null;
        // BEGIN README functional
        try (BatchNormOps ops = Backends.open("cpu")) {
            Shape shape = Shape.channelsLast(8, 14, 14, 32);    // NHWC, C = 32
            int n = shape.elementCountAsInt();
            int c = shape.channels();
            float[] runningMean = new float[c];
            float[] runningVar = new float[c];
            Arrays.fill(runningVar, 1f);
            float[] y = new float[n];
            float[] saveMean = new float[c];
            float[] saveInvstd = new float[c];
            ops.forwardTraining(shape, x, gamma, beta, 1e-5, runningMean, runningVar, 0.1, y, saveMean, saveInvstd);
            float[] dx = new float[n];
            float[] dgamma = new float[c];
            float[] dbeta = new float[c];
            ops.backwardTraining(shape, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta);
        // END README functional
            out = saveMean;
            db = dbeta;
        }
        for (float m : out) assertEquals(-1.0, m, 0.1, "saved mean");
        double dySum = 0;
        for (int i = 0; i < dy.length; i += 32) dySum += dy[i];
        assertEquals(dySum, db[0], 1e-3 * Math.max(1, Math.abs(dySum)), "dbeta of channel 0 = Σdy");
    }

    @Test
    void deviceExampleRuns() {
        Random r = new Random(3);
        Shape shape = Shape.channelsFirst(4, 8, 6, 6);
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        float[] hostX = gaussian(r, n, 3.0, 2.0);
        float[] hostY = new float[n];
        Arrays.fill(hostY, Float.NaN);
        float[] initialRunningStats = new float[2 * c];
        Arrays.fill(initialRunningStats, c, 2 * c, 1f);
        float[] running = new float[2 * c];
        // BEGIN README device
        try (Device device = new EmulatedDevice();                // on a GPU: new CudaDevice(0)
             DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(device);
             DeviceBuffer x = device.allocate(4L * n);
             DeviceBuffer y = device.allocate(4L * n);
             DeviceBuffer stats = device.allocate(4L * 4 * c)) {   // running mean, running var, saved mean, saved invstd
            DeviceStream stream = device.defaultStream();
            device.copyToDevice(hostX, 0, x.pointer(), n, stream);
            device.copyToDevice(initialRunningStats, 0, stats.pointer(), 2 * c, stream);   // c zeros, then c ones
            for (int step = 0; step < 3; step++) {                 // a training loop: no allocation, no copy per step
                bn.forwardTraining(shape, x.pointer(), null, null, 1e-5, stats.at(0), stats.at(4L * c), 0.1,
                        y.pointer(), stats.at(8L * c), stats.at(12L * c), stream);
            }
            device.copyToHost(y.pointer(), hostY, 0, n, stream);
        // END README device
            device.copyToHost(stats.pointer(), running, 0, 2 * c, stream);
        }
        // Each channel of y has mean 0 and (biased) variance 1/(1 + eps/var); after three identical batches the
        // running mean is (1 − 0.9³)·mean, as the momentum update says.
        int inner = 36;
        for (int k = 0; k < c; k++) {
            double sum = 0, sq = 0, xs = 0;
            for (int b = 0; b < 4; b++) {
                for (int i = 0; i < inner; i++) {
                    int at = (b * c + k) * inner + i;
                    sum += hostY[at];
                    sq += (double) hostY[at] * hostY[at];
                    xs += hostX[at];
                }
            }
            assertEquals(0.0, sum / 144, 1e-5, "mean of y, channel " + k);
            assertEquals(1.0, sq / 144, 1e-3, "variance of y, channel " + k);
            assertEquals((1 - 0.9 * 0.9 * 0.9) * xs / 144, running[k], 1e-4, "running mean, channel " + k);
        }
    }

    @Test
    void reluExampleRuns() {
        Random r = new Random(4);
        float[] x = gaussian(r, 8 * 64 * 14 * 14, 2.0, 3.0);
        float[] shortcut = gaussian(r, x.length, 0, 1);
        float[] dy = gaussian(r, x.length, 0, 1);
        float[][] results = new float[3][];
        // BEGIN README relu
        try (BatchNormOps ops = Backends.open("auto")) {
            BatchNorm bn = BatchNorm.builder(64).activation(Activation.RELU).build(ops);
            Shape shape = Shape.channelsFirst(8, 64, 14, 14);
            float[] y = new float[x.length];
            bn.forward(shape, x, shortcut, y);                  // y = relu(bn(x) + shortcut); keeps a 1-bit mask
            float[] dx = new float[x.length];
            float[] dShortcut = new float[x.length];
            bn.backward(shape, x, dy, dx, dShortcut);           // dy through the mask: y is not needed
        // END README relu
            results[0] = y;
            results[1] = dx;
            results[2] = dShortcut;
        }
        int zeros = 0;
        for (int i = 0; i < x.length; i++) {
            assertTrue(results[0][i] >= 0, "relu output");
            boolean passed = results[0][i] > 0;
            if (!passed) zeros++;
            assertEquals(passed ? dy[i] : 0f, results[2][i], "the shortcut's gradient is dy through the mask");
            assertTrue(Float.isFinite(results[1][i]));
        }
        assertTrue(zeros > x.length / 4 && zeros < 3 * x.length / 4, "about half the elements blocked: " + zeros);
    }

    private static List<String> block(List<String> lines, Pattern start, Pattern end, String what) {
        List<String> out = new ArrayList<>();
        boolean in = false;
        for (String l : lines) {
            if (!in && start.matcher(l).find()) {
                in = true;
                continue;
            }
            if (in && end.matcher(l).find()) return out;
            if (in) out.add(l.strip());
        }
        throw new AssertionError("block not found: " + what);
    }

    /** The README, or the page under docs/ that shows the example {@code name} (exactly one of them). */
    private static List<String> pageShowing(String name) throws IOException {
        List<Path> pages = new ArrayList<>(List.of(README));
        try (var docs = Files.list(Path.of("docs"))) {
            docs.filter(p -> p.toString().endsWith(".md")).sorted().forEach(pages::add);
        }
        List<String> found = null;
        for (Path p : pages) {
            List<String> lines = Files.readAllLines(p);
            if (lines.contains("<!-- example: " + name + " -->")) {
                assertTrue(found == null, "example '" + name + "' is shown twice (again in " + p + ")");
                found = lines;
            }
        }
        assertTrue(found != null, "no page shows <!-- example: " + name + " --> (README.md, docs/*.md)");
        return found;
    }

    @Test
    void readmeShowsExactlyThisCode() throws IOException {
        List<String> self = Files.readAllLines(SELF);
        for (String name : new String[] {"layer", "functional", "device", "relu"}) {
            // In the README or a page of docs/: the ```java fence after <!-- example: NAME -->.
            List<String> readme = pageShowing(name);
            int marker = readme.indexOf("<!-- example: " + name + " -->");
            assertEquals("```java", readme.get(marker + 1), "a java block follows the marker");
            List<String> inReadme = block(readme.subList(marker + 1, readme.size()), Pattern.compile("^```java$"),
                    Pattern.compile("^```$"), "README " + name);
            List<String> inTest = block(self, Pattern.compile("// BEGIN README " + Matcher.quoteReplacement(name) + "$"),
                    Pattern.compile("// END README " + name + "$"), "test " + name);
            inTest.add("}"); // the test keeps the try block open to inspect results
            assertEquals(inReadme, inTest, "README example '" + name + "' and this test differ");
        }
    }
}
