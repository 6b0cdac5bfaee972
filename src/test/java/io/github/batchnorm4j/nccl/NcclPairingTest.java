package io.github.batchnorm4j.nccl;

import io.github.batchnorm4j.testing.ElfFile;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.annotation.Platform;
import org.bytedeco.javacpp.annotation.Properties;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static java.util.Map.entry;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The NCCL adapter's pairing, proved without a GPU (as JCudnnPairingTest does for cuDNN): the JavaCPP CUDA presets on
 * our classpath are 12.6-9.5-1.5.11; the NCCL preset's JNI library (libjninccl.so, in the linux-x86_64 natives jar,
 * where JavaCPP's loader looks for it) exports the entry point of every binding {@link JavaCppNcclApi} calls, with the
 * parameter list it calls it with, and links libnccl.so.2; the preset inherits the CUDA runtime's, whose JNI library
 * links libcudart.so.12 and libcuda.so.1 (so NCCL needs the CUDA 12 runtime next to the driver); and a JavaCPP
 * Pointer carries a raw device address unchanged. Nothing here loads NCCL or the CUDA runtime.
 */
class NcclPairingTest {
    private static final String GLOBAL = "org.bytedeco.cuda.global.nccl";
    private static final String NATIVES = "org/bytedeco/cuda/linux-x86_64/";
    private static final ClassLoader CL = NcclPairingTest.class.getClassLoader();

    /** Each function JavaCppNcclApi calls, with the Java parameter types of the overload it calls. */
    private static final Map<String, List<String>> CALLED = Map.ofEntries(
            entry("ncclGetVersion", List.of("[I")),
            entry("ncclGetUniqueId", List.of("org.bytedeco.cuda.nccl.ncclUniqueId")),
            entry("ncclCommInitRank", List.of("org.bytedeco.cuda.nccl.ncclComm", "int",
                    "org.bytedeco.cuda.nccl.ncclUniqueId", "int")),
            entry("ncclAllGather", List.of("org.bytedeco.javacpp.Pointer", "org.bytedeco.javacpp.Pointer", "long", "int",
                    "org.bytedeco.cuda.nccl.ncclComm", "org.bytedeco.cuda.cudart.CUstream_st")),
            entry("ncclCommGetAsyncError", List.of("org.bytedeco.cuda.nccl.ncclComm", "[I")),
            entry("ncclCommDestroy", List.of("org.bytedeco.cuda.nccl.ncclComm")),
            entry("ncclCommAbort", List.of("org.bytedeco.cuda.nccl.ncclComm")),
            entry("ncclGetErrorString", List.of("int")));

    private static Class<?> load(String name) throws ClassNotFoundException {
        return Class.forName(name, false, CL);   // never initialized: that would load the natives
    }

    private static byte[] read(String resource) throws IOException {
        URL u = CL.getResource(resource);
        assertNotNull(u, resource + " must be on the classpath");
        try (InputStream in = u.openStream()) {
            return in.readAllBytes();
        }
    }

    @Test
    void presetsAre1260With1511AndTheirNativesJarIsOnTheClasspath() throws Exception {
        List<URL> poms = Collections.list(CL.getResources("META-INF/maven/org.bytedeco/cuda/pom.properties"));
        assertEquals(2, poms.size(), "classes jar and linux-x86_64 natives jar: " + poms);
        for (URL u : poms) {
            java.util.Properties p = new java.util.Properties();
            try (InputStream in = u.openStream()) {
                p.load(in);
            }
            assertEquals("12.6-9.5-1.5.11", p.getProperty("version"), u.toString());
        }
        assertNotNull(CL.getResource("org/bytedeco/javacpp/linux-x86_64/libjnijavacpp.so"), "JavaCPP's own natives");
    }

    @Test
    void ncclPresetLinksNcclAndInheritsTheCudaRuntime() throws Exception {
        Properties nccl = load("org.bytedeco.cuda.presets.nccl").getAnnotation(Properties.class);
        assertEquals(List.of(load("org.bytedeco.cuda.presets.cudart")), Arrays.asList(nccl.inherit()));
        assertEquals(List.of("nccl@.2"), links(nccl));
        List<String> cudartLinks = links(load("org.bytedeco.cuda.presets.cudart").getAnnotation(Properties.class));
        System.out.println("[NCCL pairing] the inherited cudart preset links " + cudartLinks);
        assertTrue(cudartLinks.contains("cudart@.12"), "cudart preset links " + cudartLinks);

        ElfFile jniNccl = new ElfFile(read(NATIVES + "libjninccl.so"));
        assertEquals(62, jniNccl.machine(), "x86-64");
        System.out.println("[NCCL pairing] DT_NEEDED of libjninccl.so: " + jniNccl.needed());
        assertTrue(jniNccl.needed().contains("libnccl.so.2"), jniNccl.needed().toString());
        ElfFile jniCudart = new ElfFile(read(NATIVES + "libjnicudart.so"));
        System.out.println("[NCCL pairing] DT_NEEDED of libjnicudart.so (loaded first): " + jniCudart.needed());
        assertTrue(jniCudart.needed().containsAll(List.of("libcudart.so.12", "libcuda.so.1")),
                jniCudart.needed().toString());
    }

    /** The libraries a preset links on linux-x86_64: of every @Platform that applies there (none named = all). */
    private static List<String> links(Properties p) {
        List<String> out = new ArrayList<>();
        for (Platform pl : p.value()) {
            if (pl.value().length == 0 || Arrays.asList(pl.value()).contains("linux-x86_64")) {
                out.addAll(Arrays.asList(pl.link()));
            }
        }
        return out;
    }

    @Test
    void nativesExportEveryBindingWeCallWithTheParametersWeCallItWith() throws Exception {
        assertEquals(new TreeSet<>(JavaCppNcclApi.FUNCTIONS), new TreeSet<>(CALLED.keySet()));
        Set<String> symbols = new ElfFile(read(NATIVES + "libjninccl.so")).definedDynamicSymbols();
        Class<?> global = load(GLOBAL);
        List<String> checked = new ArrayList<>();
        for (Map.Entry<String, List<String>> e : CALLED.entrySet()) {
            Method m = method(global, e.getKey(), e.getValue());
            assertTrue(Modifier.isNative(m.getModifiers()) && Modifier.isStatic(m.getModifiers()), m.toString());
            String jni = jniName(m);
            assertTrue(symbols.contains(jni), jni + " is not exported by libjninccl.so");
            checked.add(jni);
        }
        // The id's bytes are read and written through the member accessors, natives of the same library.
        Class<?> id = load("org.bytedeco.cuda.nccl.ncclUniqueId");
        for (Method m : List.of(method(id, "internal", List.of("int")), method(id, "internal", List.of("int", "byte")))) {
            assertTrue(symbols.contains(jniName(m)), jniName(m));
        }
        assertTrue(symbols.contains("Java_org_bytedeco_cuda_nccl_ncclUniqueId_allocate"), "new ncclUniqueId()");
        load("org.bytedeco.cuda.cudart.CUstream_st").getConstructor(Pointer.class);
        load("org.bytedeco.cuda.nccl.ncclComm").getConstructor();
        System.out.println("[NCCL pairing] JNI entry points present: " + checked);
    }

    @Test
    void theBindingsWeCallAreTheOnesListed() throws IOException {
        String src = Files.readString(Path.of("src/main/java/io/github/batchnorm4j/nccl/JavaCppNcclApi.java"));
        Matcher m = Pattern.compile("nccl\\.(nccl\\w+)\\(").matcher(src);
        Set<String> called = new TreeSet<>();
        while (m.find()) called.add(m.group(1));
        assertEquals(new TreeSet<>(JavaCppNcclApi.FUNCTIONS), called);
    }

    /** A JCuda address goes to NCCL as a JavaCPP Pointer at that address; CUstream_st(Pointer) copies it. */
    @Test
    void aRawPointerCarriesTheAddressUnchanged() {
        long address = 0x7f12_3456_7800L + 4;
        Pointer raw = new JavaCppNcclApi.Raw(address);
        assertEquals(address, raw.address());
        assertEquals(0, raw.position());
        assertEquals(address, new Pointer(raw).address(), "what CUstream_st(Pointer) does: super(p)");
        assertFalse(raw.isNull());
        assertTrue(new JavaCppNcclApi.Raw(0).isNull(), "stream 0 is the legacy default stream, passed as NULL");
    }

    private static Method method(Class<?> c, String name, List<String> params) {
        for (Method m : c.getDeclaredMethods()) {
            if (!m.getName().equals(name)) continue;
            List<String> types = new ArrayList<>();
            for (Class<?> t : m.getParameterTypes()) types.add(t.getName());
            if (types.equals(params)) return m;
        }
        throw new AssertionError(c.getName() + " has no " + name + params);
    }

    /** The JNI symbol of a native method: the short name, or the long one (with its parameters) when overloaded. */
    static String jniName(Method m) {
        String base = "Java_" + mangle(m.getDeclaringClass().getName().replace('.', '/')) + "_" + mangle(m.getName());
        long overloads = Arrays.stream(m.getDeclaringClass().getDeclaredMethods())
                .filter(x -> x.getName().equals(m.getName()) && Modifier.isNative(x.getModifiers())).count();
        if (overloads == 1) return base;
        StringBuilder sig = new StringBuilder();
        for (Class<?> t : m.getParameterTypes()) sig.append(descriptor(t));
        return base + "__" + mangle(sig.toString());
    }

    private static String descriptor(Class<?> t) {
        if (t.isArray()) return t.getName().replace('.', '/');
        if (t == int.class) return "I";
        if (t == long.class) return "J";
        if (t == byte.class) return "B";
        if (t == float.class) return "F";
        if (t == double.class) return "D";
        if (t == boolean.class) return "Z";
        return "L" + t.getName().replace('.', '/') + ";";
    }

    /** JNI's escaping: '/' → '_', '_' → "_1", ';' → "_2", '[' → "_3". */
    private static String mangle(String s) {
        StringBuilder b = new StringBuilder();
        for (char ch : s.toCharArray()) {
            switch (ch) {
                case '/' -> b.append('_');
                case '_' -> b.append("_1");
                case ';' -> b.append("_2");
                case '[' -> b.append("_3");
                default -> b.append(ch);
            }
        }
        return b.toString();
    }
}
