package io.github.batchnorm4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Runs the image's entry point, src/main/docker/batchnorm4j, with a stand-in {@code java} first on the PATH that
 * records its arguments and answers chosen exit statuses: the launcher must pass arguments through unchanged,
 * run {@code info} then {@code check} when given none, and report the status of what failed. The jar it runs
 * must be the one the Dockerfile installs, with the JVM options the image adds where they apply (the Vector API
 * module unless the runtime's release file lists its modules without it, 2 MB pages where this host's kernel offers
 * them on request). Needs a POSIX shell at /bin/sh (skipped elsewhere).
 */
class DockerLauncherTest {

    private static final Path LAUNCHER = Path.of("src/main/docker/batchnorm4j");
    /** The stand-in: one line per call, each argument in brackets, exit status from INFO_STATUS/OTHER_STATUS. */
    private static final String FAKE_JAVA = """
            #!/bin/sh
            printf 'java' >> "$CALLS"
            for a in "$@"; do printf ' [%s]' "$a" >> "$CALLS"; done
            printf '\\n' >> "$CALLS"
            for a in "$@"; do if [ "$a" = info ]; then exit "${INFO_STATUS:-0}"; fi; done
            exit "${OTHER_STATUS:-0}"
            """;

    private static String jar;

    @TempDir
    Path dir;

    @BeforeAll
    static void readJarPath() throws IOException {
        assumeTrue(Files.isExecutable(Path.of("/bin/sh")), "no /bin/sh: the launcher is a POSIX shell script");
        jar = DockerfileTest.installedJar(ParsedDockerfile.read(Path.of("Dockerfile")));
    }

    @Test
    void withoutArgumentsPrintsInfoThenRunsCheck() throws Exception {
        Run run = launch(Map.of("INFO_STATUS", "0", "OTHER_STATUS", "0"));
        assertEquals(0, run.status(), run.output());
        assertEquals(List.of(call("info"), call("check")), run.calls());
    }

    @Test
    void withoutArgumentsExitsWithTheStatusOfAFailingCheck() throws Exception {
        Run run = launch(Map.of("INFO_STATUS", "0", "OTHER_STATUS", "3"));
        assertEquals(3, run.status(), "exit status of the default command when check fails; " + run.output());
        assertEquals(List.of(call("info"), call("check")), run.calls());
    }

    @Test
    void aFailingInfoStopsBeforeCheckAndGivesItsStatus() throws Exception {
        Run run = launch(Map.of("INFO_STATUS", "2", "OTHER_STATUS", "0"));
        assertEquals(2, run.status(), "exit status when info fails; " + run.output());
        assertEquals(List.of(call("info")), run.calls());
    }

    @Test
    void argumentsPassThroughUnchanged() throws Exception {
        Run run = launch(Map.of("OTHER_STATUS", "4"), "forward", "--x", "my data/x.npy", "--eps", "1e-5", "");
        assertEquals(4, run.status(), "the command's exit status must be the container's; " + run.output());
        assertEquals(List.of(call("forward", "--x", "my data/x.npy", "--eps", "1e-5", "")), run.calls());
    }

    private record Run(int status, List<String> calls, String output) {
    }

    /** The options the launcher adds on this host when the runtime has the Vector API module and nothing is off. */
    private static List<String> defaultOptions() throws IOException {
        List<String> opts = new ArrayList<>(List.of("--add-modules", "jdk.incubator.vector"));
        if (hostOffersHugePages()) opts.add("-XX:+UseTransparentHugePages");
        return opts;
    }

    private static boolean hostOffersHugePages() throws IOException {
        Path thp = Path.of("/sys/kernel/mm/transparent_hugepage/enabled");
        if (!Files.isReadable(thp)) return false;
        String mode = Files.readString(thp, StandardCharsets.UTF_8);
        return mode.contains("[madvise]") || mode.contains("[always]");
    }

    private static String call(String... args) throws IOException {
        return call(defaultOptions(), args);
    }

    private static String call(List<String> options, String... args) {
        StringBuilder s = new StringBuilder("java");
        for (String o : options) {
            s.append(" [").append(o).append(']');
        }
        s.append(" [-jar] [").append(jar).append(']');
        for (String a : args) {
            s.append(" [").append(a).append(']');
        }
        return s.toString();
    }

    private static final String RELEASE_WITH_VECTOR =
            "JAVA_VERSION=\"17.0.17\"\nMODULES=\"java.base java.logging jdk.incubator.vector jdk.unsupported\"\n";
    private static final String RELEASE_WITHOUT_VECTOR =
            "JAVA_VERSION=\"17.0.17\"\nMODULES=\"java.base java.logging jdk.unsupported\"\n";

    /** A Java home holding only a release file with the given text. */
    private Path runtime(String release) throws IOException {
        Path home = Files.createDirectories(dir.resolve("jre-" + Integer.toHexString(release.hashCode())));
        Files.writeString(home.resolve("release"), release, StandardCharsets.UTF_8);
        return home;
    }

    @Test
    void aRuntimeWithoutTheVectorModuleStartsWithoutIt() throws Exception {
        Run run = launch(Map.of("JAVA_HOME", runtime(RELEASE_WITHOUT_VECTOR).toString()), "info");
        assertEquals(0, run.status(), run.output());
        List<String> opts = hostOffersHugePages() ? List.of("-XX:+UseTransparentHugePages") : List.of();
        assertEquals(List.of(call(opts, "info")), run.calls());
    }

    @Test
    void theEnvironmentTurnsEachOptionOff() throws Exception {
        Run noVector = launch(Map.of("BATCHNORM4J_VECTOR", "0"), "check");
        List<String> thp = hostOffersHugePages() ? List.of("-XX:+UseTransparentHugePages") : List.of();
        assertEquals(List.of(call(thp, "check")), noVector.calls(), noVector.output());
        Run noThp = launch(Map.of("BATCHNORM4J_THP", "0"), "check");
        assertEquals(List.of(call(List.of("--add-modules", "jdk.incubator.vector"), "check")), noThp.calls(),
                noThp.output());
        Run neither = launch(Map.of("BATCHNORM4J_VECTOR", "0", "BATCHNORM4J_THP", "0"), "check");
        assertEquals(List.of(call(List.of(), "check")), neither.calls(), neither.output());
    }

    private Run launch(Map<String, String> env, String... args) throws Exception {
        Path bin = Files.createDirectories(dir.resolve("bin"));
        Path java = bin.resolve("java");
        Files.writeString(java, FAKE_JAVA, StandardCharsets.UTF_8);
        Files.setPosixFilePermissions(java, PosixFilePermissions.fromString("rwxr-xr-x"));
        Path calls = dir.resolve("calls.txt");
        Files.deleteIfExists(calls);

        List<String> command = new ArrayList<>(List.of("/bin/sh", LAUNCHER.toAbsolutePath().toString()));
        command.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true);
        pb.environment().put("PATH", bin + ":/usr/bin:/bin");
        pb.environment().put("CALLS", calls.toString());
        pb.environment().put("JAVA_HOME", runtime(RELEASE_WITH_VECTOR).toString());
        pb.environment().remove("BATCHNORM4J_VECTOR");
        pb.environment().remove("BATCHNORM4J_THP");
        pb.environment().putAll(env);
        Process p = pb.start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(30, TimeUnit.SECONDS), "launcher did not finish");
        List<String> lines = Files.exists(calls) ? Files.readAllLines(calls, StandardCharsets.UTF_8) : List.of();
        return new Run(p.exitValue(), lines, "launcher output: " + output);
    }
}
