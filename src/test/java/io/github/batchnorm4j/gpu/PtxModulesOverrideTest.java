package io.github.batchnorm4j.gpu;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The {@value PtxModules#PROPERTY_DIR} system property replaces the classpath PTX, read again on every load. */
class PtxModulesOverrideTest {
    @TempDir
    Path tmp;

    @AfterEach
    void clear() {
        System.clearProperty(PtxModules.PROPERTY_DIR);
    }

    @Test
    void thePropertySwitchesFoldersBetweenLoads() throws Exception {
        String shipped = PtxModules.read(PtxModules.FORWARD);
        Path a = Files.createDirectories(tmp.resolve("a"));
        Path b = Files.createDirectories(tmp.resolve("b"));
        Files.writeString(a.resolve(PtxModules.FORWARD), "// a\n" + shipped);
        Files.writeString(b.resolve(PtxModules.FORWARD), "// b\n" + shipped);
        System.setProperty(PtxModules.PROPERTY_DIR, a.toString());
        assertTrue(PtxModules.read(PtxModules.FORWARD).startsWith("// a\n"));
        assertEquals(a.toString(), PtxModules.source());
        System.setProperty(PtxModules.PROPERTY_DIR, b.toString());
        assertTrue(PtxModules.read(PtxModules.FORWARD).startsWith("// b\n"));
        System.clearProperty(PtxModules.PROPERTY_DIR);
        assertEquals(shipped, PtxModules.read(PtxModules.FORWARD));
    }

    @Test
    void aMissingModuleNamesTheProperty() {
        System.setProperty(PtxModules.PROPERTY_DIR, tmp.toString());
        DeviceException e = assertThrows(DeviceException.class, () -> PtxModules.read(PtxModules.BACKWARD));
        assertTrue(e.getMessage().contains(PtxModules.BACKWARD) && e.getMessage().contains(PtxModules.PROPERTY_DIR + "="
                + tmp), e.getMessage());
    }
}
