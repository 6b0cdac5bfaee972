package io.github.batchnorm4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.batchnorm4j.ParsedDockerfile.Copy;
import io.github.batchnorm4j.ParsedDockerfile.Instruction;
import io.github.batchnorm4j.ParsedDockerfile.Stage;
import java.io.IOException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.PathMatcher;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import javax.xml.XMLConstants;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;

/**
 * Checks the top-level Dockerfile against the repository and the pom, since no Docker engine runs in CI: what it
 * copies exists and reaches the build context, stages it names exist, the jar is the one the shade plugin builds,
 * the runtime base is an NVIDIA CUDA runtime image with cuDNN whose CUDA major version is JCuda's, base images are
 * pinned, the image runs as a non-root user through an exec-form entry point, and .dockerignore keeps build output
 * and history out of the context. {@link DockerLauncherTest} runs the entry point itself.
 */
class DockerfileTest {

    /** The shade plugin's output folder inside the build stage's working directory. */
    private static final String MAVEN_TARGET = "target";
    /** Image tags count as pinned when they start with a full version: major.minor.patch. */
    private static final Pattern PINNED_TAG = Pattern.compile("\\d+\\.\\d+\\.\\d+.*");
    /** NVIDIA's CUDA images: VERSION-[cudnn[N]-]FLAVOUR-OS, e.g. 12.6.3-cudnn-runtime-ubuntu24.04. */
    private static final Pattern CUDA_IMAGE = Pattern.compile(
            "(?:docker\\.io/)?nvidia/cuda:(\\d+)\\.(\\d+)\\.(\\d+)-(?:(cudnn)(\\d*)-)?(base|runtime|devel)-(.+)");

    private static Path root;
    private static ParsedDockerfile dockerfile;
    private static DockerIgnore dockerignore;
    private static Document pom;

    @BeforeAll
    static void read() throws Exception {
        root = Path.of("").toAbsolutePath();
        assertTrue(Files.exists(root.resolve("pom.xml")), "tests must run in the repository root, got " + root);
        dockerfile = ParsedDockerfile.read(root.resolve("Dockerfile"));
        dockerignore = DockerIgnore.read(root.resolve(".dockerignore"));
        pom = readPom(root.resolve("pom.xml"));
    }

    @Test
    void everyPathCopiedFromTheContextExistsAndIsNotIgnored() throws IOException {
        int checked = 0;
        for (Stage stage : dockerfile.stages()) {
            for (Copy copy : ParsedDockerfile.copies(stage)) {
                if (copy.from().isPresent()) {
                    continue;
                }
                for (String source : copy.sources()) {
                    String where = "line " + copy.instruction().line() + ": " + copy.instruction().keyword() + " "
                            + source;
                    assertFalse(source.matches("[a-z]+://.*"), where + ": remote sources are not reproducible");
                    List<String> found = contextPaths(source);
                    assertFalse(found.isEmpty(), where + ": nothing at that path in the repository " + root);
                    for (String path : found) {
                        assertFalse(dockerignore.excludes(path), where + ": " + path
                                + " is excluded from the build context by .dockerignore pattern '"
                                + dockerignore.ruleExcluding(path) + "'");
                    }
                    checked++;
                }
            }
        }
        assertTrue(checked >= 3, "expected the pom, src/ and the launcher copied from the context, found " + checked);
    }

    @Test
    void copyFromNamesAnEarlierStage() {
        int checked = 0;
        for (Stage stage : dockerfile.stages()) {
            for (Copy copy : ParsedDockerfile.copies(stage)) {
                if (copy.from().isEmpty()) {
                    continue;
                }
                String ref = copy.from().get();
                assertTrue(dockerfile.earlierStage(ref, stage.index()).isPresent(), "line "
                        + copy.instruction().line() + ": --from=" + ref + " names no earlier stage (stages: "
                        + stageNames() + "); an image named here would escape the pinned-tag check");
                checked++;
            }
        }
        assertTrue(checked >= 2, "expected the jar and the JRE copied from earlier stages, found " + checked);
    }

    @Test
    void theJarCopiedIsTheOneTheShadePluginBuilds() {
        String finalName = shadeFinalName();
        Copy jarCopy = jarCopy();
        Stage build = dockerfile.earlierStage(jarCopy.from().orElseThrow(), dockerfile.finalStage().index())
                .orElseThrow();
        String expected = ParsedDockerfile.resolve(build.finalWorkdir(), MAVEN_TARGET + "/" + finalName + ".jar");
        assertEquals(List.of(expected), jarCopy.sources(), "line " + jarCopy.instruction().line()
                + ": the jar copied from stage " + build.name().orElse("#" + build.index())
                + " must be the shade plugin's finalName '" + finalName + "' in that stage's target/");
        assertTrue(build.all("RUN").stream().anyMatch(r -> r.arguments().matches("(?s).*\\bmvn\\b.*\\bpackage\\b.*")),
                "stage " + build.name().orElse("") + " (line " + build.line() + ") never runs `mvn ... package`");
    }

    @Test
    void runtimeBaseIsACudaCudnnRuntimeImageOfJcudasMajorVersion() {
        String jcuda = pomText("jcuda.version");
        int jcudaMajor = Integer.parseInt(jcuda.substring(0, jcuda.indexOf('.')));
        Stage runtime = dockerfile.finalStage();
        Matcher m = CUDA_IMAGE.matcher(runtime.image());
        assertTrue(m.matches(), "line " + runtime.line() + ": the runtime base must be an nvidia/cuda image, got "
                + runtime.image());
        assertEquals(jcudaMajor, Integer.parseInt(m.group(1)), "line " + runtime.line() + ": CUDA major version of "
                + runtime.image() + " must equal JCuda's (jcuda.version " + jcuda + ")");
        assertEquals("cudnn", m.group(4), "line " + runtime.line() + ": " + runtime.image()
                + " has no cuDNN (expected a ...-cudnn-runtime-... tag)");
        assertTrue(m.group(5).isEmpty() || m.group(5).equals("9"), "line " + runtime.line() + ": " + runtime.image()
                + " carries cuDNN " + m.group(5) + ", the jcudnn natives link libcudnn.so.9");
        assertEquals("runtime", m.group(6), "line " + runtime.line() + ": " + runtime.image()
                + " must be a runtime variant (not base, which lacks cuBLAS, nor devel)");
    }

    /**
     * NCCL (NcclCollective): JavaCPP's CUDA presets link libcudart.so of their CUDA major version and the system's
     * libnccl.so.2, which the runtime variant of NVIDIA's images carries (the Dockerfile also checks for it while
     * building).
     */
    @Test
    void runtimeBaseCarriesTheCudaRuntimeAndNcclThatTheNcclBindingsLink() {
        String presets = pomText("javacpp.cuda.version");
        int presetsMajor = Integer.parseInt(presets.substring(0, presets.indexOf('.')));
        Stage runtime = dockerfile.finalStage();
        Matcher m = CUDA_IMAGE.matcher(runtime.image());
        assertTrue(m.matches(), runtime.image());
        assertEquals(presetsMajor, Integer.parseInt(m.group(1)), "line " + runtime.line() + ": CUDA major version of "
                + runtime.image() + " must equal that of JavaCPP's CUDA presets (javacpp.cuda.version " + presets + ")");
        assertEquals("runtime", m.group(6), "only the runtime variant carries libnccl2");
        assertTrue(runtime.all("RUN").stream().anyMatch(r -> r.arguments().contains("libnccl\\.so\\.2")),
                "the runtime stage checks that libnccl.so.2 is there");
    }

    @Test
    void everyBaseImageIsPinnedToAFullVersion() {
        for (Stage stage : dockerfile.stages()) {
            String image = stage.image();
            if (dockerfile.earlierStage(image, stage.index()).isPresent()) {
                continue;
            }
            String where = "line " + stage.line() + ": FROM " + image;
            assertFalse(image.contains("$"), where + ": a variable hides the tag from review; write it out");
            if (image.contains("@sha256:")) {
                continue;
            }
            String lastSegment = image.substring(image.lastIndexOf('/') + 1);
            int colon = lastSegment.indexOf(':');
            assertTrue(colon > 0, where + ": no tag, so Docker takes 'latest'");
            String tag = lastSegment.substring(colon + 1);
            assertTrue(PINNED_TAG.matcher(tag).matches(), where + ": tag '" + tag
                    + "' is not pinned to a full version (major.minor.patch...)");
        }
    }

    @Test
    void finalStageRunsAsANonRootUser() {
        Stage runtime = dockerfile.finalStage();
        List<Instruction> users = runtime.all("USER");
        assertFalse(users.isEmpty(), "the final stage (line " + runtime.line() + ") sets no USER: it would run as root");
        Instruction last = users.get(users.size() - 1);
        String user = last.arguments().trim().split(":")[0];
        assertFalse(user.equals("root") || user.equals("0"), "line " + last.line() + ": USER " + last.arguments()
                + " is root; the image must run as an unprivileged user");
    }

    @Test
    void entrypointIsTheLauncherInstalledFromTheRepository() throws IOException {
        Stage runtime = dockerfile.finalStage();
        List<Instruction> entrypoints = runtime.all("ENTRYPOINT");
        assertFalse(entrypoints.isEmpty(), "the final stage has no ENTRYPOINT");
        Instruction entrypoint = entrypoints.get(entrypoints.size() - 1);
        List<String> command = ParsedDockerfile.execForm(entrypoint);
        assertFalse(command.isEmpty(), "line " + entrypoint.line() + ": empty ENTRYPOINT");
        Optional<Copy> installs = ParsedDockerfile.copies(runtime).stream()
                .filter(c -> c.from().isEmpty() && c.sources().size() == 1)
                .filter(c -> c.target(c.sources().get(0), runtime.workdirAt(c.instruction())).equals(command.get(0)))
                .findFirst();
        assertTrue(installs.isPresent(), "line " + entrypoint.line() + ": ENTRYPOINT " + command.get(0)
                + " is not a file the final stage copies from the repository");
        Copy copy = installs.get();
        String chmod = copy.flags().get("chmod");
        if (chmod != null) {
            // The file belongs to root; the image's user needs read and execute through "others".
            assertEquals(05, Integer.parseInt(chmod, 8) & 05, "line " + copy.instruction().line() + ": --chmod="
                    + chmod + " does not let other users read and execute " + command.get(0));
        } else {
            assertTrue(Files.isExecutable(root.resolve(copy.sources().get(0))), copy.sources().get(0)
                    + " is not executable and the COPY at line " + copy.instruction().line() + " sets no --chmod");
        }
        for (Instruction cmd : runtime.all("CMD")) {
            assertEquals(List.of(), ParsedDockerfile.execForm(cmd), "line " + cmd.line()
                    + ": the launcher's default (info, then check) runs only when CMD passes no arguments");
        }
    }

    @Test
    void nvidiaContainerToolkitEnvironmentIsSet() {
        Map<String, String> env = dockerfile.finalStage().env();
        assertEquals("all", env.get("NVIDIA_VISIBLE_DEVICES"), "ENV NVIDIA_VISIBLE_DEVICES");
        String capabilities = env.getOrDefault("NVIDIA_DRIVER_CAPABILITIES", "");
        assertTrue(List.of(capabilities.split(",")).containsAll(List.of("compute", "utility")),
                "ENV NVIDIA_DRIVER_CAPABILITIES must include compute and utility, got '" + capabilities + "'");
        String jcuda = pomText("jcuda.version");
        String major = jcuda.substring(0, jcuda.indexOf('.'));
        // The documented driver requirement: any driver for CUDA MAJOR.0 or newer (the PTX is ISA MAJOR.0).
        assertEquals("cuda>=" + major + ".0", env.get("NVIDIA_REQUIRE_CUDA"), "ENV NVIDIA_REQUIRE_CUDA");
    }

    @Test
    void dockerignoreKeepsBuildOutputHistoryAndRunsOut() {
        for (String path : List.of("target", "target/classes/x.class", ".git", ".git/HEAD", "runs", ".idea")) {
            assertTrue(dockerignore.excludes(path), ".dockerignore must exclude " + path);
        }
    }

    // ---- shared with DockerLauncherTest ----

    /** The absolute path where the image installs the command-line jar. */
    static String installedJar(ParsedDockerfile dockerfile) {
        Copy copy = jarCopy(dockerfile);
        Stage runtime = dockerfile.finalStage();
        return copy.target(copy.sources().get(0), runtime.workdirAt(copy.instruction()));
    }

    // ---- helpers ----

    private static Copy jarCopy() {
        return jarCopy(dockerfile);
    }

    private static Copy jarCopy(ParsedDockerfile dockerfile) {
        List<Copy> jars = new ArrayList<>();
        for (Copy c : ParsedDockerfile.copies(dockerfile.finalStage())) {
            if (c.from().isPresent() && c.sources().stream().anyMatch(s -> s.endsWith(".jar"))) {
                jars.add(c);
            }
        }
        if (jars.size() != 1 || jars.get(0).sources().size() != 1) {
            fail("expected exactly one COPY --from=STAGE of one .jar in the final stage, found "
                    + jars.stream().map(c -> "line " + c.instruction().line()).toList());
        }
        return jars.get(0);
    }

    /** Repository paths a COPY source names (a glob may name several); relative, with '/' separators. */
    private static List<String> contextPaths(String source) throws IOException {
        String clean = source.replaceAll("^(\\./)+", "").replaceAll("/+$", "");
        if (clean.isEmpty() || clean.equals(".")) {
            return List.of(".");
        }
        if (!clean.matches(".*[*?\\[].*")) {
            return Files.exists(root.resolve(clean)) ? List.of(clean) : List.of();
        }
        PathMatcher glob = FileSystems.getDefault().getPathMatcher("glob:" + clean);
        try (Stream<Path> walk = Files.walk(root)) {
            return walk.map(p -> root.relativize(p)).filter(glob::matches)
                    .map(p -> p.toString().replace('\\', '/')).toList();
        }
    }

    private static List<String> stageNames() {
        return dockerfile.stages().stream().map(s -> s.name().orElse("#" + s.index())).toList();
    }

    private static Document readPom(Path path) throws Exception {
        DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
        factory.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        factory.setAttribute(XMLConstants.ACCESS_EXTERNAL_DTD, "");
        factory.setAttribute(XMLConstants.ACCESS_EXTERNAL_SCHEMA, "");
        return factory.newDocumentBuilder().parse(path.toFile());
    }

    private static String pomText(String element) {
        NodeList nodes = pom.getElementsByTagName(element);
        assertEquals(1, nodes.getLength(), "pom.xml: expected one <" + element + ">");
        return nodes.item(0).getTextContent().trim();
    }

    private static String shadeFinalName() {
        NodeList plugins = pom.getElementsByTagName("plugin");
        List<String> names = new ArrayList<>();
        for (int k = 0; k < plugins.getLength(); k++) {
            Element plugin = (Element) plugins.item(k);
            NodeList ids = plugin.getElementsByTagName("artifactId");
            if (ids.getLength() > 0 && ids.item(0).getTextContent().trim().equals("maven-shade-plugin")) {
                NodeList finalNames = plugin.getElementsByTagName("finalName");
                for (int f = 0; f < finalNames.getLength(); f++) {
                    names.add(finalNames.item(f).getTextContent().trim());
                }
            }
        }
        assertEquals(1, names.size(), "pom.xml: expected one <finalName> in the maven-shade-plugin, got " + names);
        return names.get(0);
    }
}
