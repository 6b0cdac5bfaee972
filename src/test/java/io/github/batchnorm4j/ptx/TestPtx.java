package io.github.batchnorm4j.ptx;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;

/** Loads the committed PTX of the test kernels (src/test/cuda, built by scripts/build-ptx.sh --tests). */
final class TestPtx {
    private TestPtx() {
    }

    static String load(String name) {
        try (InputStream in = TestPtx.class.getResourceAsStream("/ptx/" + name)) {
            if (in == null) throw new IllegalStateException("missing test resource /ptx/" + name);
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
