package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.testing.ElfFile;
import jcuda.JCudaVersion;
import jcuda.LibUtils;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * docs/design.md §7's pairing, proved without a GPU: the org.jcuda:jcudnn 11.7.0 classes load the native library named
 * after the core JCuda version (12.6.0), that library is in the jcudnn-natives 12.6.0 jar on our classpath, it links
 * libcudnn.so.9, and it exports the JNI entry point of every cuDNN function {@link JCudnnApi} calls, with the parameter
 * list the 11.7.0 classes pass. Nothing here initializes JCudnn (that would need libcudnn.so.9).
 */
class JCudnnPairingTest {

    private static Class<?> jcudnnClass() throws ClassNotFoundException {
        return Class.forName("jcuda.jcudnn.JCudnn", false, JCudnnPairingTest.class.getClassLoader());
    }

    /** The classpath resource JCudnn.initialize() asks LibUtils for, built the way it builds it. */
    private static String nativeResource() {
        String name = LibUtils.createPlatformLibraryName("JCudnn-" + JCudaVersion.get());
        return "lib/" + LibUtils.createLibraryFileName(name);
    }

    private static byte[] read(URL url) throws IOException {
        try (InputStream in = url.openStream()) {
            return in.readAllBytes();
        }
    }

    private static String version(Class<?> inJarOf, String artifact) throws IOException {
        URL u = inJarOf.getClassLoader().getResource("META-INF/maven/org.jcuda/" + artifact + "/pom.properties");
        assertNotNull(u, artifact + " pom.properties on the classpath");
        Properties p = new Properties();
        try (InputStream in = u.openStream()) {
            p.load(in);
        }
        return p.getProperty("version");
    }

    @Test
    void classesAre1170AndAskForTheNativeLibraryNamedAfterJcuda1260() throws Exception {
        Class<?> c = jcudnnClass();
        assertEquals("11.7.0", version(c, "jcudnn"));
        assertEquals("12.6.0", version(c, "jcudnn-natives"));
        assertEquals("12.6.0", JCudaVersion.get());
        // JCudnn.initialize() builds its library name from "JCudnn-" + JCudaVersion.get(): both are in its bytecode
        byte[] cls = read(c.getResource("JCudnn.class"));
        String text = new String(cls, StandardCharsets.ISO_8859_1);
        assertTrue(text.contains("JCudnn-") && text.contains("jcuda/JCudaVersion") && text.contains("createPlatformLibraryName"),
                "JCudnn.initialize loads JCudnn-<JCudaVersion>");
        assertEquals("lib/libJCudnn-12.6.0-linux-x86_64.so", nativeResource());
        URL lib = c.getClassLoader().getResource(nativeResource());
        assertNotNull(lib, nativeResource() + " must be on the classpath (jcudnn-natives 12.6.0)");
        System.out.println("[JCudnn pairing] classes 11.7.0, loader asks for /" + nativeResource() + " found in " + lib);
    }

    @Test
    void nativesExportEveryJniEntryPointWeCallWithMatchingParameters() throws Exception {
        ElfFile elf = new ElfFile(read(jcudnnClass().getClassLoader().getResource(nativeResource())));
        assertEquals(62, elf.machine(), "x86-64");
        List<String> needed = elf.needed();
        System.out.println("[JCudnn pairing] DT_NEEDED of " + nativeResource() + ": " + needed);
        assertTrue(needed.contains("libcudnn.so.9"), "links cuDNN 9: " + needed);

        Set<String> symbols = elf.definedDynamicSymbols();
        assertTrue(symbols.contains("JNI_OnLoad"));
        Class<?> c = jcudnnClass();
        List<String> checked = new ArrayList<>();
        for (String fn : JCudnnApi.FUNCTIONS) {
            String jni = "Java_jcuda_jcudnn_JCudnn_" + fn + "Native";
            assertTrue(symbols.contains(jni), jni + " is not exported by " + nativeResource());
            Method m = nativeMethod(c, fn + "Native");
            assertTrue(Modifier.isNative(m.getModifiers()) && Modifier.isStatic(m.getModifiers()), m.toString());
            // The natives log every call as "Executing fn(name=%p, ...)": its %-conversions are the C parameters the
            // JNI function unpacks, which must line up with what the 11.7.0 Java declaration passes.
            List<String> log = elf.strings("Executing " + fn + "(", 10);
            if (!log.isEmpty()) assertParametersMatch(m, log.get(0));
            checked.add(fn + (log.isEmpty() ? "" : " [" + m.getParameterCount() + " params]"));
        }
        System.out.println("[JCudnn pairing] JNI entry points present for: " + checked);
    }

    private static Method nativeMethod(Class<?> c, String name) {
        Method found = null;
        for (Method m : c.getDeclaredMethods()) {
            if (m.getName().equals(name)) {
                assertTrue(found == null, name + " is overloaded: JNI would need long names");
                found = m;
            }
        }
        assertNotNull(found, "JCudnn 11.7.0 declares no " + name);
        return found;
    }

    private static void assertParametersMatch(Method m, String log) {
        Matcher p = Pattern.compile("(\\w+)=%(l?[a-z]+)").matcher(log);
        List<String> conversions = new ArrayList<>();
        while (p.find()) conversions.add(p.group(2));
        Class<?>[] types = m.getParameterTypes();
        assertEquals(conversions.size(), types.length, m.getName() + " vs \"" + log + "\"");
        for (int i = 0; i < types.length; i++) {
            String conv = conversions.get(i);
            Class<?> t = types[i];
            boolean ok = switch (conv) {
                case "p" -> !t.isPrimitive();
                case "d" -> t == int.class;
                case "lf" -> t == double.class;
                case "ld", "lu" -> t == long.class;
                default -> false;
            };
            assertTrue(ok, m.getName() + " parameter " + i + ": Java " + t.getSimpleName() + " vs C %" + conv
                    + " in \"" + log + "\"");
        }
    }

    /** JNI_OnLoad resolves these classes and fields; a class or field missing from the 11.7.0 jar would fail loading. */
    @Test
    void classesAndFieldsJniOnLoadLooksUpExistIn1170() throws Exception {
        ElfFile elf = new ElfFile(read(jcudnnClass().getClassLoader().getResource(nativeResource())));
        Set<String> classes = new TreeSet<>(elf.strings("jcuda/", 8));
        System.out.println("[JCudnn pairing] classes named in the natives: " + classes);
        assertFalse(classes.isEmpty());
        ClassLoader cl = getClass().getClassLoader();
        for (String name : classes) {
            if (name.contains(";") || name.contains(" ")) continue;
            Class.forName(name.replace('/', '.'), false, cl);
        }
        Set<String> fieldNames = new LinkedHashSet<>(List.of("cudnn_version", "cudnnStatus", "time_sec", "time_usec",
                "time_delta", "handle", "stream", "cudaDeviceId"));
        Set<String> perfFields = Set.of("algo", "status", "time", "memory", "determinism", "mathType");
        for (String f : fieldNames) {
            assertFalse(elf.strings(f, 1).isEmpty(), f + " appears in the natives");
            Class.forName("jcuda.jcudnn.cudnnDebug", false, cl).getField(f);
        }
        for (String f : perfFields) {
            assertFalse(elf.strings(f, 1).isEmpty(), f + " appears in the natives");
            for (String k : List.of("cudnnConvolutionFwdAlgoPerf", "cudnnConvolutionBwdFilterAlgoPerf",
                    "cudnnConvolutionBwdDataAlgoPerf")) {
                Class.forName("jcuda.jcudnn." + k, false, cl).getField(f);
            }
        }
    }

    /** The list of functions is the list of calls: every JCudnn.xxx( in JCudnnApi's source is in FUNCTIONS. */
    @Test
    void functionListMatchesTheCallsInJCudnnApi() throws IOException {
        String src = Files.readString(Path.of("src/main/java/io/github/batchnorm4j/cudnn/JCudnnApi.java"));
        Matcher m = Pattern.compile("JCudnn\\.(cudnn\\w+)\\(").matcher(src);
        Set<String> called = new TreeSet<>();
        while (m.find()) called.add(m.group(1));
        assertEquals(new TreeSet<>(JCudnnApi.FUNCTIONS), called);
    }
}
