package io.github.batchnorm4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.batchnorm4j.BackendInfo;
import io.github.batchnorm4j.BackendProvider;
import io.github.batchnorm4j.BackendUnavailableException;
import io.github.batchnorm4j.Backends;
import io.github.batchnorm4j.BatchNormOps;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Exit-code mapping, and exit 3 for an unavailable backend. The latter runs {@link Main#run} in this JVM, because
 * only here can a backend that is registered but unavailable be planted (every other CLI test goes through the
 * launcher).
 */
class MainTest {
    @TempDir
    Path dir;

    private static String errOf(Exception e, int expectedCode) {
        StringWriter sw = new StringWriter();
        assertEquals(expectedCode, Main.exitCodeOf(e, new PrintWriter(sw)));
        return sw.toString();
    }

    @Test
    void exceptionsMapToTheDocumentedExitCodes() {
        assertEquals("error: backend 'cuda' is unavailable: no driver\n",
                errOf(new BackendUnavailableException("cuda", "no driver"), Main.UNAVAILABLE).replace("\r", ""));
        assertEquals("error: eps: bad value on two lines\n",
                errOf(new IllegalArgumentException("eps: bad value\n  on two lines"), Main.BAD_INPUT).replace("\r", ""));
        assertTrue(errOf(new NpyFormatException("x.npy: big-endian"), Main.BAD_INPUT).startsWith("error: x.npy"));
        assertTrue(errOf(new IllegalStateException("boom"), Main.FAILED).startsWith("error: internal error: "));
    }

    /** A registered backend that is never available. */
    private static final class Unavailable implements BackendProvider {
        @Override
        public String name() {
            return "unavailable-for-test";
        }

        @Override
        public BackendInfo probe() {
            return new BackendInfo(name(), false, "planted by MainTest");
        }

        @Override
        public BatchNormOps open() {
            throw new BackendUnavailableException(name(), "planted by MainTest");
        }
    }

    private record Run(int code, String out, String err) {
    }

    private static Run inProcess(String... args) {
        PrintStream oldOut = System.out;
        PrintStream oldErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            int code = Main.run(args);
            return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }

    @Test
    void anUnavailableBackendIsExitThreeWithTheReason() throws Exception {
        Backends.register(new Unavailable());
        Path x = dir.resolve("x.npy");
        Npy.write(x, new long[] {2, 3}, new float[] {1, 2, 3, 4, 5, 7});

        Run fwd = inProcess("forward", "--x", x.toString(), "--backend", "unavailable-for-test", "--out",
                dir.resolve("out").toString());
        assertEquals(Main.UNAVAILABLE, fwd.code(), fwd.toString());
        assertEquals("error: backend 'unavailable-for-test' is unavailable: planted by MainTest", fwd.err().strip());

        Run named = inProcess("check", "--backends", "cpu,unavailable-for-test");
        assertEquals(Main.UNAVAILABLE, named.code(), named.toString());
        assertTrue(named.err().strip().startsWith("error: backend 'unavailable-for-test' is unavailable"), named.err());

        // With 'all', it is listed with its reason and skipped; the CPU backend is still checked.
        Run all = inProcess("check");
        assertEquals(Main.OK, all.code(), all.toString());
        assertTrue(all.out().contains("skipped unavailable-for-test: unavailable (planted by MainTest)"), all.out());
        assertTrue(all.out().contains("check: PASS"), all.out());
    }
}
