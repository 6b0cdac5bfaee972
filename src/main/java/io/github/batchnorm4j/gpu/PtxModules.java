package io.github.batchnorm4j.gpu;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Finds the PTX text of our kernel modules by deterministic names ({@code batchnorm_forward.ptx}, ...), as built by
 * {@code scripts/build-ptx.sh} from {@code cuda/<name>.cu}.
 *
 * <p>By default the text comes from the classpath resource {@code io/github/batchnorm4j/ptx/<name>}. When the
 * environment variable {@value #ENV_DIR} is set, the same file names are read from that folder instead: kernel
 * development without repackaging, and mutation testing of the kernels (an edited PTX must make a test fail). The
 * system property {@value #PROPERTY_DIR}, when set, takes precedence over the variable: a process can then switch
 * folders between loads (the mutation tool runs many mutants in one JVM this way). Every load reads the folder again;
 * nothing here is cached.
 */
public final class PtxModules {
    /** Environment variable naming a folder that replaces the classpath PTX. */
    public static final String ENV_DIR = "BATCHNORM4J_PTX_DIR";
    /** System property naming such a folder; when set (non-blank) it wins over {@value #ENV_DIR}. */
    public static final String PROPERTY_DIR = "batchnorm4j.ptx.dir";
    /** Classpath folder of the shipped PTX. */
    public static final String RESOURCE_DIR = "io/github/batchnorm4j/ptx/";

    /** Statistics, coefficient preparation and normalize-apply kernels. */
    public static final String FORWARD = "batchnorm_forward.ptx";
    /** Gradient sums and dx kernels. */
    public static final String BACKWARD = "batchnorm_backward.ptx";
    /** The small kernels of the training example's GPU step (bias, ReLU, softmax cross-entropy, SGD). */
    public static final String TRAIN = "train_kernels.ptx";
    /** Every module this library loads. */
    public static final List<String> ALL = List.of(FORWARD, BACKWARD, TRAIN);

    private static final Pattern ENTRY = Pattern.compile("\\.entry\\s+([A-Za-z_$][\\w$]*)\\s*\\(");

    private PtxModules() {
    }

    /** Where {@link #read} takes modules from now: the override folder, or "classpath". */
    public static String source() {
        String dir = overrideDir();
        return dir == null ? "classpath:" + RESOURCE_DIR : dir;
    }

    /** The folder that replaces the classpath PTX ({@value #PROPERTY_DIR}, else {@value #ENV_DIR}), or null. */
    private static String overrideDir() {
        String dir = System.getProperty(PROPERTY_DIR);
        if (dir == null || dir.isBlank()) dir = System.getenv(ENV_DIR);
        return dir == null || dir.isBlank() ? null : dir;
    }

    /**
     * The PTX text of module {@code name}.
     *
     * @throws DeviceException when the module cannot be found or read (naming where it was looked for)
     */
    public static String read(String name) {
        String dir = overrideDir();
        if (dir != null) {
            Path p = Path.of(dir, name);
            try {
                return Files.readString(p, StandardCharsets.US_ASCII);
            } catch (IOException e) {
                String from = dir.equals(System.getProperty(PROPERTY_DIR)) ? PROPERTY_DIR : ENV_DIR;
                throw new DeviceException("cannot read PTX module " + name + " from " + from + "=" + dir + ": " + e, e);
            }
        }
        try (InputStream in = PtxModules.class.getClassLoader().getResourceAsStream(RESOURCE_DIR + name)) {
            if (in == null) {
                throw new DeviceException("PTX module " + name + " is not on the classpath at " + RESOURCE_DIR
                        + " (run scripts/build-ptx.sh)");
            }
            return new String(in.readAllBytes(), StandardCharsets.US_ASCII);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read PTX resource " + RESOURCE_DIR + name, e);
        }
    }

    /** The {@code .entry} names of a PTX text, in order. */
    public static List<String> entryNames(String ptx) {
        List<String> out = new ArrayList<>();
        Matcher m = ENTRY.matcher(ptx);
        while (m.find()) out.add(m.group(1));
        return out;
    }
}
