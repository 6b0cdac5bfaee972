package io.github.batchnorm4j.train;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import java.util.zip.GZIPOutputStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DataTest {
    @Test
    void embeddedDigitsLoadWithTheirNotice() throws IOException {
        Dataset d = DigitsData.load();
        assertEquals(1797, d.rows());
        assertEquals(64, d.features());
        int[] perClass = new int[10];
        for (int y : d.labels()) perClass[y]++;
        assertArrayEquals(new int[] {178, 182, 177, 183, 181, 182, 181, 179, 174, 180}, perClass);
        float min = Float.MAX_VALUE, max = -Float.MAX_VALUE;
        for (float v : d.x()) {
            min = Math.min(min, v);
            max = Math.max(max, v);
        }
        assertEquals(0f, min);
        assertEquals(1f, max, "16/16");
        // First sample of the file: 0,0,5,13,9,1,... label 0
        assertEquals(5 / 16f, d.x()[2]);
        assertEquals(13 / 16f, d.x()[3]);
        assertEquals(0, d.labels()[0]);
        try (var notice = DigitsData.class.getResourceAsStream("/io/github/batchnorm4j/train/optdigits-README.md")) {
            assertNotNull(notice, "the licence notice must sit beside the data");
            assertTrue(new String(notice.readAllBytes()).contains("CC BY 4.0"));
        }
    }

    @Test
    void stratifiedSplitIsSeededDisjointAndBalanced() {
        Dataset all = DigitsData.load();
        Dataset.Split a = DigitsData.stratifiedSplit(all, 0.2, 42);
        Dataset.Split b = DigitsData.stratifiedSplit(all, 0.2, 42);
        Dataset.Split c = DigitsData.stratifiedSplit(all, 0.2, 43);
        assertArrayEquals(a.test().x(), b.test().x(), "same seed, same split");
        assertTrue(!Arrays.equals(a.test().x(), c.test().x()), "another seed, another split");
        assertEquals(all.rows(), a.train().rows() + a.test().rows());
        int[] perClass = new int[10];
        for (int y : a.test().labels()) perClass[y]++;
        for (int k = 0; k < 10; k++) {
            int n = 0;
            for (int y : all.labels()) if (y == k) n++;
            assertEquals(Math.round(0.2 * n), perClass[k], "class " + k);
        }
        // Disjoint, and together exactly the original samples (as a multiset of rows).
        Map<String, Integer> count = new HashMap<>();
        for (Dataset d : new Dataset[] {a.train(), a.test()}) {
            for (int r = 0; r < d.rows(); r++) count.merge(row(d, r), 1, Integer::sum);
        }
        for (int r = 0; r < all.rows(); r++) count.merge(row(all, r), -1, Integer::sum);
        assertTrue(count.values().stream().allMatch(v -> v == 0), "train ∪ test must be the data set");
        assertThrows(IllegalArgumentException.class, () -> DigitsData.stratifiedSplit(all, 1.0, 1));
    }

    private static String row(Dataset d, int r) {
        return Arrays.toString(Arrays.copyOfRange(d.x(), r * d.features(), (r + 1) * d.features())) + d.labels()[r];
    }

    @Test
    void fashionMnistReadsIdxFilesGzippedOrNot(@TempDir Path dir) throws IOException {
        Random rng = new Random(3);
        byte[] trainPx = new byte[3 * 28 * 28], testPx = new byte[2 * 28 * 28];
        rng.nextBytes(trainPx);
        rng.nextBytes(testPx);
        writeIdx(dir.resolve("train-images-idx3-ubyte.gz"), true, 0x803, new int[] {3, 28, 28}, trainPx);
        writeIdx(dir.resolve("train-labels-idx1-ubyte.gz"), true, 0x801, new int[] {3}, new byte[] {9, 0, 4});
        writeIdx(dir.resolve("t10k-images-idx3-ubyte"), false, 0x803, new int[] {2, 28, 28}, testPx);
        writeIdx(dir.resolve("t10k-labels-idx1-ubyte"), false, 0x801, new int[] {2}, new byte[] {1, 7});
        Dataset.Split s = FashionMnistData.load(dir);
        assertEquals(3, s.train().rows());
        assertEquals(784, s.train().features());
        assertArrayEquals(new int[] {9, 0, 4}, s.train().labels());
        assertArrayEquals(new int[] {1, 7}, s.test().labels());
        for (int i = 0; i < trainPx.length; i++) assertEquals((trainPx[i] & 0xff) / 255f, s.train().x()[i]);
        assertEquals((testPx[100] & 0xff) / 255f, s.test().x()[100]);
    }

    @Test
    void fashionMnistMissingFilesSayWhichAndHow(@TempDir Path dir) throws IOException {
        writeIdx(dir.resolve("train-labels-idx1-ubyte.gz"), true, 0x801, new int[] {1}, new byte[] {1});
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> FashionMnistData.load(dir));
        assertTrue(e.getMessage().contains("train-images-idx3-ubyte[.gz]"), e.getMessage());
        assertTrue(!e.getMessage().contains("train-labels"), e.getMessage());
        assertTrue(e.getMessage().contains("apt-get install dataset-fashion-mnist"), e.getMessage());
    }

    @Test
    void fashionMnistRejectsAWrongMagic(@TempDir Path dir) throws IOException {
        for (String f : FashionMnistData.FILES) {
            writeIdx(dir.resolve(f), false, 0x803, new int[] {1, 28, 28}, new byte[784]);
        }
        IOException e = assertThrows(IOException.class, () -> FashionMnistData.load(dir));
        assertTrue(e.getMessage().contains("expected IDX magic 0x801"), e.getMessage());
    }

    static void writeIdx(Path p, boolean gz, int magic, int[] dims, byte[] data) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (DataOutputStream out = new DataOutputStream(bytes)) {
            out.writeInt(magic);
            for (int d : dims) out.writeInt(d);
            out.write(data);
        }
        try (OutputStream os = Files.newOutputStream(p);
             OutputStream o = gz ? new GZIPOutputStream(os) : os) {
            o.write(bytes.toByteArray());
        }
    }
}
