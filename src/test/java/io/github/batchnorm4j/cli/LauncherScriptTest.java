package io.github.batchnorm4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The launcher's own logic, with stand-ins for {@code mvn} and {@code java} on the PATH (so no Maven build nests in
 * the test run): it builds when the jar is missing or older than pom.xml or a file under src/main, not otherwise, runs
 * the jar with the arguments as given, and works from any directory and through a symlink.
 */
class LauncherScriptTest {
    /** The JVM options that add the Vector API module (the CPU backend's vector loops). */
    private static final String MODULE = "[--add-modules][jdk.incubator.vector]";

    /** The option the launcher adds where this host's kernel offers transparent huge pages on request. */
    private static final String THP = thpOffered() ? "[-XX:+UseTransparentHugePages]" : "";

    /** The JVM options the launcher adds here by default. */
    private static final String VECTOR = MODULE + THP;

    private static boolean thpOffered() {
        try {
            String s = Files.readString(Path.of("/sys/kernel/mm/transparent_hugepage/enabled"));
            return s.contains("[madvise]") || s.contains("[always]");
        } catch (IOException e) {
            return false;
        }
    }

    @TempDir
    Path tmp;

    private Path repo;
    private Path log;
    private Path bin;

    private static void executable(Path p, String text) throws IOException {
        Files.writeString(p, text);
        Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rwxr-xr-x"));
    }

    @BeforeEach
    void fakeRepository() throws IOException {
        repo = tmp.resolve("repo");
        Files.createDirectories(repo.resolve("scripts"));
        Files.createDirectories(repo.resolve("src/main/java"));
        Files.copy(Launcher.SCRIPT, repo.resolve("scripts/batchnorm4j"), StandardCopyOption.COPY_ATTRIBUTES);
        Files.writeString(repo.resolve("pom.xml"), "<project/>");
        Files.writeString(repo.resolve("src/main/java/A.java"), "class A {}");
        log = tmp.resolve("log.txt");
        bin = tmp.resolve("bin");
        Files.createDirectories(bin);
        // mvn: record the call and its directory, produce the jar. java: record the call.
        executable(bin.resolve("mvn"), "#!/bin/sh\necho \"mvn $* in $(pwd)\" >> \"$LAUNCHER_LOG\"\n"
                + "mkdir -p target && echo jar > target/batchnorm4j-cli.jar\n");
        executable(bin.resolve("java"), "#!/bin/sh\nfor a in \"$@\"; do printf '[%s]' \"$a\" >> \"$LAUNCHER_LOG\"; done\n"
                + "echo >> \"$LAUNCHER_LOG\"\n");
        // Directories count too (a file added or removed changes its directory's time).
        for (String p : new String[] {"pom.xml", "src/main/java/A.java", "src/main/java", "src/main"}) {
            setAge(repo.resolve(p), 100);
        }
    }

    private static void setAge(Path p, long secondsAgo) throws IOException {
        Files.setLastModifiedTime(p, FileTime.from(Instant.now().minusSeconds(secondsAgo)));
    }

    private List<String> run(Path script, Path cwd, String... args) throws Exception {
        Files.deleteIfExists(log);
        List<String> cmd = new java.util.ArrayList<>(List.of(script.toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(cwd.toFile()).redirectErrorStream(true);
        Map<String, String> env = pb.environment();
        env.remove("BATCHNORM4J_CLASSPATH");
        env.remove("BATCHNORM4J_JAVA_OPTS");
        env.remove("BATCHNORM4J_THP");
        env.remove("JAVA_HOME");
        env.put("PATH", bin + ":" + env.getOrDefault("PATH", "/usr/bin:/bin"));
        env.put("LAUNCHER_LOG", log.toString());
        Process p = pb.start();
        String output = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), output);
        return Files.readAllLines(log);
    }

    @Test
    void buildsOnlyWhenTheJarIsMissingOrStale() throws Exception {
        Path script = repo.resolve("scripts/batchnorm4j");
        Path jar = repo.resolve("target/batchnorm4j-cli.jar");
        Path elsewhere = Files.createDirectories(tmp.resolve("elsewhere"));

        List<String> first = run(script, elsewhere, "check", "--seed", "a b");
        assertEquals(2, first.size(), first.toString());
        assertEquals("mvn -q -B package -DskipTests in " + repo.toRealPath(), first.get(0), "missing jar: build");
        assertEquals(VECTOR + "[-jar][" + jar.toRealPath() + "][check][--seed][a b]", first.get(1),
                "then run, args intact");

        setAge(jar, 50); // newer than pom.xml and the sources
        List<String> fresh = run(script, elsewhere, "info");
        assertEquals(List.of(VECTOR + "[-jar][" + jar.toRealPath() + "][info]"), fresh, "up to date: no build");

        setAge(repo.resolve("src/main/java/A.java"), 10); // a source newer than the jar
        List<String> stale = run(script, elsewhere, "info");
        assertEquals(2, stale.size(), stale.toString());
        assertTrue(stale.get(0).startsWith("mvn "), "stale source: build");

        setAge(jar, 5);
        setAge(repo.resolve("pom.xml"), 1); // pom.xml newer than the jar
        assertTrue(run(script, elsewhere, "info").get(0).startsWith("mvn "), "stale pom.xml: build");

        setAge(jar, 5);
        Files.writeString(repo.resolve("src/main/java/B.java"), "class B {}");
        setAge(repo.resolve("src/main/java/B.java"), 100); // old file, but its directory changed just now
        assertTrue(run(script, elsewhere, "info").get(0).startsWith("mvn "), "a file added under src/main: build");

        setAge(repo.resolve("src/main/java"), 100);
        setAge(jar, 0);
        Path link = tmp.resolve("bn4j");
        Files.createSymbolicLink(link, script);
        assertEquals(List.of(VECTOR + "[-jar][" + jar.toRealPath() + "][info]"), run(link, elsewhere, "info"),
                "through a symlink, the repository is still found");
    }

    @Test
    void classpathModeSkipsTheBuild() throws Exception {
        Path script = repo.resolve("scripts/batchnorm4j");
        ProcessBuilder pb = new ProcessBuilder(script.toString(), "info").directory(tmp.toFile());
        pb.environment().remove("JAVA_HOME");
        pb.environment().remove("BATCHNORM4J_JAVA_OPTS");
        pb.environment().remove("BATCHNORM4J_THP");
        pb.environment().put("PATH", bin + ":" + pb.environment().getOrDefault("PATH", "/usr/bin:/bin"));
        pb.environment().put("LAUNCHER_LOG", log.toString());
        pb.environment().put("BATCHNORM4J_CLASSPATH", "/some/classes:/some/lib.jar");
        Process p = pb.start();
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue());
        assertEquals(List.of(VECTOR + "[-cp][/some/classes:/some/lib.jar][io.github.batchnorm4j.cli.Main][info]"),
                Files.readAllLines(log));
        assertTrue(!Files.exists(repo.resolve("target")), "no build in class-path mode");
    }

    /**
     * The JVM's notice about the incubator module is dropped from stderr; every other stderr line, stdout and the exit
     * status pass through unchanged. Without the module (BATCHNORM4J_VECTOR=0, or a runtime whose release file lists
     * its modules without it) java is started without --add-modules.
     */
    @Test
    void theIncubatorNoticeIsDroppedAndTheModuleLeftOutWhereUnwanted() throws Exception {
        Path script = repo.resolve("scripts/batchnorm4j");
        executable(bin.resolve("java"), "#!/bin/sh\nfor a in \"$@\"; do printf '[%s]' \"$a\" >> \"$LAUNCHER_LOG\"; done\n"
                + "echo >> \"$LAUNCHER_LOG\"\necho 'WARNING: Using incubator modules: jdk.incubator.vector' >&2\n"
                + "echo 'error: --x: something' >&2\necho table\nexit 3\n");
        for (String vector : new String[] {null, "0", "release"}) {
            Files.deleteIfExists(log);
            Files.deleteIfExists(tmp.resolve("release"));
            if ("release".equals(vector)) Files.writeString(tmp.resolve("release"), "MODULES=\"java.base jdk.jfr\"\n");
            ProcessBuilder pb = new ProcessBuilder(script.toString(), "info").directory(tmp.toFile());
            pb.environment().remove("JAVA_HOME");
            pb.environment().remove("BATCHNORM4J_JAVA_OPTS");
            pb.environment().remove("BATCHNORM4J_THP");
            if ("0".equals(vector)) pb.environment().put("BATCHNORM4J_VECTOR", "0");
            pb.environment().put("PATH", bin + ":" + pb.environment().getOrDefault("PATH", "/usr/bin:/bin"));
            pb.environment().put("LAUNCHER_LOG", log.toString());
            pb.environment().put("BATCHNORM4J_CLASSPATH", "/c");
            Path err = tmp.resolve("err.txt");
            pb.redirectError(err.toFile());
            Process p = pb.start();
            String out = new String(p.getInputStream().readAllBytes());
            assertTrue(p.waitFor(30, TimeUnit.SECONDS));
            String what = "BATCHNORM4J_VECTOR/release " + vector;
            assertEquals(3, p.exitValue(), what + ": java's exit status");
            assertEquals("table\n", out, what);
            List<String> errLines = Files.readAllLines(err);
            assertEquals(vector == null ? List.of("error: --x: something")
                    : List.of("WARNING: Using incubator modules: jdk.incubator.vector", "error: --x: something"),
                    errLines, what + ": only the notice is dropped, and only when the module is added");
            assertEquals(List.of((vector == null ? MODULE : "") + THP + "[-cp][/c][io.github.batchnorm4j.cli.Main][info]"),
                    Files.readAllLines(log), what);
        }
    }

    /**
     * Huge pages: the option comes before BATCHNORM4J_JAVA_OPTS (so that the user's options win) where the kernel offers
     * them, and BATCHNORM4J_THP=0 leaves it out.
     */
    @Test
    void hugePagesWhereOfferedUnlessTurnedOff() throws Exception {
        Path script = repo.resolve("scripts/batchnorm4j");
        for (String thp : new String[] {null, "0"}) {
            Files.deleteIfExists(log);
            ProcessBuilder pb = new ProcessBuilder(script.toString(), "info").directory(tmp.toFile());
            pb.environment().remove("JAVA_HOME");
            pb.environment().remove("BATCHNORM4J_THP");
            if (thp != null) pb.environment().put("BATCHNORM4J_THP", thp);
            pb.environment().put("BATCHNORM4J_JAVA_OPTS", "-Xmx1g -XX:-UseTransparentHugePages");
            pb.environment().put("PATH", bin + ":" + pb.environment().getOrDefault("PATH", "/usr/bin:/bin"));
            pb.environment().put("LAUNCHER_LOG", log.toString());
            pb.environment().put("BATCHNORM4J_CLASSPATH", "/c");
            Process p = pb.start();
            assertTrue(p.waitFor(30, TimeUnit.SECONDS));
            assertEquals(0, p.exitValue());
            assertEquals(List.of(MODULE + (thp == null ? THP : "") + "[-Xmx1g][-XX:-UseTransparentHugePages][-cp][/c]"
                    + "[io.github.batchnorm4j.cli.Main][info]"), Files.readAllLines(log), "BATCHNORM4J_THP " + thp);
        }
    }
}
