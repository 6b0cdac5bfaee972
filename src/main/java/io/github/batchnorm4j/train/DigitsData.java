package io.github.batchnorm4j.train;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.zip.GZIPInputStream;

/**
 * The embedded default data set: 1797 handwritten digits, 8x8 pixels of counts 0..16, classes 0..9 (the test set of
 * UCI's "Optical Recognition of Handwritten Digits", Alpaydin and Kaynak 1998, CC BY 4.0; the notice
 * {@code optdigits-README.md} sits beside the data in this package's resources).
 *
 * <p>Pixels are scaled to [0, 1] (count/16). The split is stratified: for every class, its samples are shuffled with
 * the seed and the first {@code round(testFraction·n)} go to the test set, so both sets keep the class balance and
 * the same seed gives the same split on every machine.
 */
public final class DigitsData {
    /** Classpath resource of the gzipped CSV: 64 pixel counts then the label per line. */
    public static final String RESOURCE = "/io/github/batchnorm4j/train/optdigits-test-1797.csv.gz";
    static final int FEATURES = 64;
    static final int CLASSES = 10;

    private DigitsData() {
    }

    /** All 1797 samples, pixels scaled to [0, 1]. */
    public static Dataset load() {
        try (InputStream in = DigitsData.class.getResourceAsStream(RESOURCE)) {
            if (in == null) throw new IllegalStateException("resource " + RESOURCE + " missing from the classpath");
            return parse(new GZIPInputStream(in));
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + RESOURCE, e);
        }
    }

    static Dataset parse(InputStream in) throws IOException {
        List<float[]> xs = new ArrayList<>();
        List<Integer> ys = new ArrayList<>();
        BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.US_ASCII));
        String line;
        int lineNo = 0;
        while ((line = r.readLine()) != null) {
            lineNo++;
            if (line.isBlank()) continue;
            String[] f = line.split(",");
            if (f.length != FEATURES + 1) {
                throw new IOException("digits line " + lineNo + ": expected " + (FEATURES + 1) + " fields, got "
                        + f.length);
            }
            float[] px = new float[FEATURES];
            for (int i = 0; i < FEATURES; i++) px[i] = Integer.parseInt(f[i].trim()) / 16f;
            xs.add(px);
            ys.add(Integer.parseInt(f[FEATURES].trim()));
        }
        float[] x = new float[xs.size() * FEATURES];
        int[] y = new int[xs.size()];
        for (int i = 0; i < y.length; i++) {
            System.arraycopy(xs.get(i), 0, x, i * FEATURES, FEATURES);
            y[i] = ys.get(i);
        }
        return new Dataset("digits", x, y, FEATURES, CLASSES);
    }

    /** The embedded digits split into train and test (stratified, seeded). */
    public static Dataset.Split loadSplit(double testFraction, long seed) {
        return stratifiedSplit(load(), testFraction, seed);
    }

    /**
     * Splits a data set per class: each class's samples are shuffled with {@code seed} and
     * {@code round(testFraction·n_class)} of them go to the test set. Sample order within each set is by class, then
     * shuffled order; training shuffles anyway.
     */
    public static Dataset.Split stratifiedSplit(Dataset all, double testFraction, long seed) {
        if (!(testFraction > 0 && testFraction < 1)) {
            throw new IllegalArgumentException("testFraction: expected a value in (0, 1), got " + testFraction);
        }
        Random rng = new Random(seed);
        List<Integer> train = new ArrayList<>();
        List<Integer> test = new ArrayList<>();
        for (int c = 0; c < all.classes(); c++) {
            List<Integer> idx = new ArrayList<>();
            for (int i = 0; i < all.rows(); i++) if (all.labels()[i] == c) idx.add(i);
            int[] a = idx.stream().mapToInt(Integer::intValue).toArray();
            Shuffle.shuffle(a, rng);
            int nTest = (int) Math.round(testFraction * a.length);
            for (int i = 0; i < a.length; i++) (i < nTest ? test : train).add(a[i]);
        }
        return new Dataset.Split(subset(all, train, all.name() + "-train"), subset(all, test, all.name() + "-test"));
    }

    private static Dataset subset(Dataset all, List<Integer> index, String name) {
        int f = all.features();
        float[] x = new float[index.size() * f];
        int[] y = new int[index.size()];
        for (int i = 0; i < y.length; i++) {
            int s = index.get(i);
            System.arraycopy(all.x(), s * f, x, i * f, f);
            y[i] = all.labels()[s];
        }
        return new Dataset(name, x, y, f, all.classes());
    }
}
