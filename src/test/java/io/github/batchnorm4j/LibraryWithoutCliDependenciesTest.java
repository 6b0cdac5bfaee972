package io.github.batchnorm4j;

import org.junit.jupiter.api.Test;

import java.io.File;
import java.net.URL;
import java.net.URLClassLoader;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Using the library never loads picocli, progressbar or XChart: the command line's dependencies are optional in the
 * pom, so a library user does not have them, and the library still finds its backends and runs. Checked by running
 * {@link LibraryUser} in a class loader made of the compiled classes and the JCuda jars only.
 */
class LibraryWithoutCliDependenciesTest {

    @Test
    void theLibraryRunsWithoutTheCommandLinesDependencies() throws Exception {
        String classPath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        List<URL> urls = new ArrayList<>();
        for (String entry : classPath.split(File.pathSeparator)) {
            String e = entry.replace(File.separatorChar, '/');
            if (e.endsWith("/target/classes") || e.endsWith("/target/test-classes") || e.contains("/org/jcuda/")) {
                urls.add(new File(entry).toURI().toURL());
            }
        }
        assertTrue(urls.size() >= 3, "the classes and the JCuda jars: " + urls);
        try (URLClassLoader loader = new URLClassLoader(urls.toArray(URL[]::new),
                ClassLoader.getPlatformClassLoader())) {
            for (String absent : List.of("picocli.CommandLine", "me.tongfei.progressbar.ProgressBar",
                    "org.knowm.xchart.XYChart")) {
                assertThrows(ClassNotFoundException.class, () -> loader.loadClass(absent), absent);
            }
            Class<?> user = loader.loadClass(LibraryUser.class.getName());
            assertNotEquals(LibraryUser.class, user, "loaded apart from this test's class path");
            @SuppressWarnings("unchecked")
            Supplier<String> run = (Supplier<String>) user.getConstructor().newInstance();
            String backends = run.get();
            assertEquals(List.of("cpu true", "cuda", "cudnn", "emulator true"),
                    backends.lines().map(l -> l.startsWith("cu") ? l.substring(0, l.indexOf(' ')) : l).toList(),
                    backends);
        }
    }
}
