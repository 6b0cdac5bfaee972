package io.github.batchnorm4j.train;

import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.GZIPInputStream;

/**
 * Fashion-MNIST from its IDX files (28x28 grey images, 10 classes; 60000 training and 10000 test images), as
 * Debian's {@code dataset-fashion-mnist} package installs them under {@link #DEBIAN_DIR}, or from any folder holding
 * the same four files, gzipped or not. Pixels are scaled to [0, 1] (value/255).
 */
public final class FashionMnistData {
    /** Where {@code apt-get install dataset-fashion-mnist} puts the files. */
    public static final Path DEBIAN_DIR = Path.of("/usr/share/datasets/fashion-mnist");
    static final String[] FILES = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

    private FashionMnistData() {
    }

    /**
     * Reads the training and test sets from {@code dir}.
     *
     * @throws IllegalArgumentException naming the missing files and how to get them
     * @throws IOException              on a malformed file
     */
    public static Dataset.Split load(Path dir) throws IOException {
        List<String> missing = new ArrayList<>();
        Path[] paths = new Path[FILES.length];
        for (int i = 0; i < FILES.length; i++) {
            paths[i] = find(dir, FILES[i]);
            if (paths[i] == null) missing.add(FILES[i] + "[.gz]");
        }
        if (!missing.isEmpty()) {
            throw new IllegalArgumentException("data: Fashion-MNIST files not found in " + dir + ": missing "
                    + String.join(", ", missing) + " (on Debian/Ubuntu: apt-get install dataset-fashion-mnist, which"
                    + " installs them under " + DEBIAN_DIR + "; or pass --data DIR with the four IDX files)");
        }
        Dataset train = read("fashion-mnist-train", paths[0], paths[1]);
        Dataset test = read("fashion-mnist-test", paths[2], paths[3]);
        return new Dataset.Split(train, test);
    }

    private static Path find(Path dir, String name) {
        for (Path p : new Path[] {dir.resolve(name + ".gz"), dir.resolve(name)}) {
            if (Files.isRegularFile(p)) return p;
        }
        return null;
    }

    private static Dataset read(String name, Path images, Path labels) throws IOException {
        int[] y;
        try (DataInputStream in = open(labels)) {
            int magic = in.readInt();
            if (magic != 0x00000801) throw new IOException(labels + ": expected IDX magic 0x801, got 0x" + Integer.toHexString(magic));
            int n = in.readInt();
            byte[] b = in.readNBytes(n);
            if (b.length != n) throw new IOException(labels + ": expected " + n + " labels, file ends after " + b.length);
            y = new int[n];
            for (int i = 0; i < n; i++) y[i] = b[i] & 0xff;
        }
        float[] x;
        int features;
        try (DataInputStream in = open(images)) {
            int magic = in.readInt();
            if (magic != 0x00000803) throw new IOException(images + ": expected IDX magic 0x803, got 0x" + Integer.toHexString(magic));
            int n = in.readInt();
            int rows = in.readInt();
            int cols = in.readInt();
            if (n != y.length) throw new IOException(images + ": " + n + " images but " + y.length + " labels in " + labels);
            features = rows * cols;
            byte[] b = in.readNBytes(n * features);
            if (b.length != n * features) throw new IOException(images + ": truncated after " + b.length + " bytes");
            x = new float[b.length];
            for (int i = 0; i < b.length; i++) x[i] = (b[i] & 0xff) / 255f;
        }
        return new Dataset(name, x, y, features, 10);
    }

    private static DataInputStream open(Path p) throws IOException {
        InputStream in = new BufferedInputStream(Files.newInputStream(p), 1 << 16);
        if (p.getFileName().toString().endsWith(".gz")) in = new GZIPInputStream(in, 1 << 16);
        return new DataInputStream(in);
    }
}
