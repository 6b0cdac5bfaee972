package io.github.batchnorm4j;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The one registry: the jar's providers come from {@link java.util.ServiceLoader} in the order {@code info} lists
 * them, and a registration made by a test is taken out again by closing it, restoring what it replaced.
 */
class BackendsTest {

    private static List<String> names() {
        return Backends.providers().stream().map(BackendProvider::name).toList();
    }

    private static BackendProvider planted(String name) {
        return new BackendProvider() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public BackendInfo probe() {
                return new BackendInfo(name, false, "planted by BackendsTest");
            }

            @Override
            public BatchNormOps open() {
                throw new BackendUnavailableException(name, "planted by BackendsTest");
            }
        };
    }

    @Test
    void theJarsProvidersAreFoundInTheirListedOrder() {
        assertEquals(List.of("cpu", "cuda", "cudnn", "emulator"), names().subList(0, 4));
        assertEquals("cpu", Backends.resolve("CPU"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Backends.resolve("tpu"));
        assertEquals("backend: expected one of auto, " + String.join(", ", names()) + ", got 'tpu'", e.getMessage());
    }

    @Test
    void aClosedRegistrationLeavesNothingBehind() {
        List<String> before = names();
        try (Backends.Registration r = Backends.register(planted("planted-for-test"))) {
            assertEquals(before.size() + 1, names().size());
            assertEquals("planted-for-test", names().get(before.size()));
            assertEquals("planted-for-test", Backends.resolve("planted-for-test"));
        }
        assertEquals(before, names());
        assertThrows(IllegalArgumentException.class, () -> Backends.provider("planted-for-test"));
    }

    @Test
    void replacingABackendKeepsItsPlaceAndClosingRestoresIt() {
        List<String> before = names();
        BackendProvider cpu = Backends.provider("cpu");
        BackendProvider fake = planted("cpu");
        Backends.Registration r = Backends.register(fake);
        assertSame(fake, Backends.provider("cpu"));
        assertEquals(before, names(), "same names, same order");
        r.close();
        r.close(); // idempotent: a second close must not remove the restored provider
        assertSame(cpu, Backends.provider("cpu"));
        assertTrue(Backends.probeAll().get(0).available(), "the real CPU provider is back");
    }
}
