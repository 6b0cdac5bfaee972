package io.github.batchnorm4j.cli;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs the command line as users do, through {@code scripts/batchnorm4j}, in a subprocess. BATCHNORM4J_CLASSPATH is
 * this test JVM's class path, so the launcher skips its Maven build (no nested Maven in {@code mvn test}) and runs the
 * classes under test; JAVA_HOME is this JVM's.
 */
final class Launcher {
    static final Path SCRIPT = Path.of("scripts", "batchnorm4j").toAbsolutePath();

    /** What one run produced. */
    record Result(int exitCode, String stdout, String stderr) {
        /** stderr's non-empty lines. */
        List<String> stderrLines() {
            List<String> out = new ArrayList<>();
            for (String l : stderr.split("\\R")) {
                if (!l.isBlank()) out.add(l);
            }
            return out;
        }

        @Override
        public String toString() {
            return "exit " + exitCode + "\n--- stdout\n" + stdout + "--- stderr\n" + stderr;
        }
    }

    private Launcher() {
    }

    /** Runs {@code scripts/batchnorm4j args...} in {@code workDir} (relative paths in args resolve there). */
    static Result run(Path workDir, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>();
        cmd.add(SCRIPT.toString());
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(workDir.toFile());
        pb.environment().put("BATCHNORM4J_CLASSPATH", System.getProperty("java.class.path"));
        pb.environment().put("JAVA_HOME", System.getProperty("java.home"));
        // Small JVMs start faster; tests use tiny tensors.
        pb.environment().put("BATCHNORM4J_JAVA_OPTS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto");
        Path out = Files.createTempFile("bn4j-out", ".txt");
        Path err = Files.createTempFile("bn4j-err", ".txt");
        try {
            pb.redirectOutput(out.toFile()).redirectError(err.toFile());
            Process p = pb.start();
            if (!p.waitFor(120, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError("batchnorm4j " + String.join(" ", args) + " did not finish in 120 s");
            }
            return new Result(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8),
                    Files.readString(err, StandardCharsets.UTF_8));
        } finally {
            Files.deleteIfExists(out);
            Files.deleteIfExists(err);
        }
    }
}
