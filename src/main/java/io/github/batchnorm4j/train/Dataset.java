package io.github.batchnorm4j.train;

/**
 * A labelled classification data set in memory: {@code rows} samples of {@code features} floats (row-major) and one
 * class index per sample.
 *
 * @param name     a short name for logs and metrics ("digits-train", "fashion-mnist-test", ...)
 * @param x        rows·features floats, already normalized
 * @param labels   rows class indices in [0, classes)
 * @param features floats per sample
 * @param classes  number of classes
 */
public record Dataset(String name, float[] x, int[] labels, int features, int classes) {
    /** Validates the sizes and labels; the message names the argument. */
    public Dataset {
        if (features < 1) throw new IllegalArgumentException("features: expected >= 1, got " + features);
        if (classes < 2) throw new IllegalArgumentException("classes: expected >= 2, got " + classes);
        if (labels == null || x == null) throw new IllegalArgumentException("x and labels must not be null");
        if ((long) labels.length * features != x.length) {
            throw new IllegalArgumentException("x: expected " + labels.length + "·" + features + " floats, got "
                    + x.length);
        }
        for (int i = 0; i < labels.length; i++) {
            if (labels[i] < 0 || labels[i] >= classes) {
                throw new IllegalArgumentException("labels[" + i + "]: expected [0, " + classes + "), got "
                        + labels[i]);
            }
        }
    }

    /** Number of samples. */
    public int rows() {
        return labels.length;
    }

    /** The samples at {@code index[from..to)} gathered into {@code xOut} (count·features) and {@code yOut}. */
    public void gather(int[] index, int from, int to, float[] xOut, int[] yOut) {
        for (int i = from; i < to; i++) {
            int s = index[i];
            System.arraycopy(x, s * features, xOut, (i - from) * features, features);
            yOut[i - from] = labels[s];
        }
    }

    /** A training and a test set. */
    public record Split(Dataset train, Dataset test) {
    }
}
