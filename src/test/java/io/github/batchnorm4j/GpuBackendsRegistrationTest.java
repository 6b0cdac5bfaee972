package io.github.batchnorm4j;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

/** The cuda and cudnn providers are registered, probe with one-line reasons, and `auto` falls back to the CPU. */
class GpuBackendsRegistrationTest {

    @Test
    void cudaAndCudnnAreRegisteredAndProbeWithOneLineReasons() {
        List<BackendInfo> all = Backends.probeAll();
        List<String> names = all.stream().map(BackendInfo::name).toList();
        assertTrue(names.containsAll(List.of("cpu", "cuda", "cudnn")), names.toString());
        for (BackendInfo i : all) {
            System.out.println("[info] " + i.name() + ": " + (i.available() ? "available, " : "unavailable, ") + i.detail());
            assertFalse(i.detail().isBlank() || i.detail().contains("\n"), i.name() + ": " + i.detail());
            assertFalse(i.detail().startsWith("probe failed"), "probes explain, never crash: " + i.detail());
        }
    }

    @Test
    void withoutAGpuAutoIsCpuAndCudaSaysWhy() {
        BackendInfo cuda = Backends.probeAll().stream().filter(i -> i.name().equals("cuda")).findFirst().orElseThrow();
        assumeFalse(cuda.available(), "a GPU is present");
        assertEquals("cpu", Backends.resolveAuto());
        assertEquals("auto -> cpu (cuda unavailable: " + cuda.detail() + ")", Backends.describeAuto());
        BackendUnavailableException e = assertThrows(BackendUnavailableException.class, () -> Backends.open("cuda"));
        assertEquals("cuda", e.backend());
        e = assertThrows(BackendUnavailableException.class, () -> Backends.open("cudnn"));
        assertEquals("cudnn", e.backend());
    }
}
