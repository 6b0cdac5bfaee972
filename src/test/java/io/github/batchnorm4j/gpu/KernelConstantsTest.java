package io.github.batchnorm4j.gpu;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The flags and modes the host passes to the kernels ({@link KernelConstants}) equal the {@code #define}s of
 * {@code cuda/batchnorm_common.cuh} they mirror, name for name (BN_HAS_GAMMA ↔ HAS_GAMMA), in both directions, and
 * the block size the host launches with is the kernels' {@code __launch_bounds__} (BN_BLOCK).
 */
class KernelConstantsTest {
    /** #defines the host passes as flags or modes: each must have its Java twin. */
    private static final Pattern HOST_SHARED = Pattern.compile("BN_(HAS|WRITE|STATS|WANT|TRAIN|PREP|COEF|PERSIST)_\\w+");
    /** Java constants that describe the kernels' memory layout rather than mirror a #define. */
    private static final Set<String> LAYOUT_ONLY = Set.of("COEF_ROWS", "PARTIAL_FLOATS");

    private static Map<String, Integer> defines() throws IOException {
        Map<String, Integer> out = new TreeMap<>();
        Matcher m = Pattern.compile("(?m)^#define\\s+(BN_\\w+)\\s+(\\d+)\\b")
                .matcher(Files.readString(Path.of("cuda", "batchnorm_common.cuh")));
        while (m.find()) out.put(m.group(1), Integer.parseInt(m.group(2)));
        return out;
    }

    private static Map<String, Integer> javaConstants() throws IllegalAccessException {
        Map<String, Integer> out = new TreeMap<>();
        for (Field f : KernelConstants.class.getDeclaredFields()) {
            if (Modifier.isStatic(f.getModifiers()) && f.getType() == int.class && !LAYOUT_ONLY.contains(f.getName())) {
                f.setAccessible(true);
                out.put("BN_" + f.getName(), f.getInt(null));
            }
        }
        return out;
    }

    @Test
    void everyFlagAndModeHasTheSameValueOnBothSides() throws Exception {
        Map<String, Integer> defines = defines();
        Map<String, Integer> host = javaConstants();
        assertTrue(host.size() >= 10, "flags and modes found in KernelConstants: " + host);
        Map<String, Integer> shared = new TreeMap<>();
        defines.forEach((k, v) -> {
            if (HOST_SHARED.matcher(k).matches()) shared.put(k, v);
        });
        assertEquals(shared, host, "cuda/batchnorm_common.cuh (left) vs gpu/KernelConstants.java (right)");
    }

    @Test
    void theHostLaunchesTheBlockSizeTheKernelsAreBoundedBy() throws Exception {
        Map<String, Integer> defines = defines();
        assertEquals(defines.get("BN_BLOCK"), LaunchGeometry.BLOCK, "BN_BLOCK vs LaunchGeometry.BLOCK");
        assertEquals(defines.get("BN_WARP"), 32);
    }
}
