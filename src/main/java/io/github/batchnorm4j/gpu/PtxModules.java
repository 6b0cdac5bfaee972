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
 * development without repackaging, and mutation testing of the kernels (an edited PTX must make a test fail).
 */
public final class PtxModules {
    /** Environment variable naming a folder that replaces the classpath PTX. */
    public static final String ENV_DIR = "BATCHNORM4J_PTX_DIR";
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
        String dir = System.getenv(ENV_DIR);
        return dir == null || dir.isBlank() ? "classpath:" + RESOURCE_DIR : dir;
    }

    /**
     * The PTX text of module {@code name}.
     *
     * @throws DeviceException when the module cannot be found or read (naming where it was looked for)
     */
    public static String read(String name) {
        String dir = System.getenv(ENV_DIR);
        if (dir != null && !dir.isBlank()) {
            Path p = Path.of(dir, name);
            try {
                return Files.readString(p, StandardCharsets.US_ASCII);
            } catch (IOException e) {
                throw new DeviceException("cannot read PTX module " + name + " from " + ENV_DIR + "=" + dir + ": " + e, e);
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
