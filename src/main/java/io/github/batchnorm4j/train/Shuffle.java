package io.github.batchnorm4j.train;

import java.util.Random;

/** Seeded Fisher–Yates shuffles, so that the same seed gives the same order on every machine and JVM. */
final class Shuffle {
    private Shuffle() {
    }

    /** Shuffles {@code a} in place with {@code rng}. */
    static void shuffle(int[] a, Random rng) {
        for (int i = a.length - 1; i > 0; i--) {
            int j = rng.nextInt(i + 1);
            int t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
    }

    /** 0, 1, …, n−1. */
    static int[] identity(int n) {
        int[] a = new int[n];
        for (int i = 0; i < n; i++) a[i] = i;
        return a;
    }
}
