package io.github.batchnorm4j;

import io.github.batchnorm4j.cpu.CpuBatchNormOps;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;

/**
 * Finds and opens backends by name: {@code cpu}, {@code cuda} (our kernels through JCuda), {@code cudnn} (the cuDNN
 * cross-check path), {@code emulator} (our kernels on the PTX emulator), and {@code auto}.
 *
 * <p>{@code auto} picks {@code cuda} when a driver and a device are present, else {@code cpu};
 * {@link #describeAuto()} says which and why. The emulator is never chosen automatically: it is slow, and asked for by
 * name.
 */
public final class Backends {
    /** The name that picks CUDA when available, else the CPU. */
    public static final String AUTO = "auto";

    private static final List<BackendProvider> PROVIDERS = new ArrayList<>();

    static {
        register(new BackendProvider() {
            @Override
            public String name() {
                return "cpu";
            }

            @Override
            public BackendInfo probe() {
                return new BackendInfo("cpu", true, Runtime.getRuntime().availableProcessors() + " threads, Java "
                        + Runtime.version());
            }

            @Override
            public BatchNormOps open() {
                return new CpuBatchNormOps();
            }
        });
        // Further providers (cuda, cudnn, emulator) register here, in the order `info` lists them.
        register(new io.github.batchnorm4j.cuda.CudaBackendProvider());
        register(new io.github.batchnorm4j.cudnn.CudnnBackendProvider());
        register(new io.github.batchnorm4j.gpu.EmulatorBackendProvider());
    }

    private Backends() {
    }

    /** Adds a provider (replacing one of the same name). */
    public static synchronized void register(BackendProvider provider) {
        PROVIDERS.removeIf(p -> p.name().equals(provider.name()));
        PROVIDERS.add(provider);
    }

    /** The known providers, in registration order. */
    public static synchronized List<BackendProvider> providers() {
        return Collections.unmodifiableList(new ArrayList<>(PROVIDERS));
    }

    /** The provider of {@code name}, or an IllegalArgumentException listing the known names. */
    public static synchronized BackendProvider provider(String name) {
        String n = name.toLowerCase(Locale.ROOT);
        for (BackendProvider p : PROVIDERS) {
            if (p.name().equals(n)) return p;
        }
        List<String> names = new ArrayList<>();
        names.add(AUTO);
        for (BackendProvider p : PROVIDERS) names.add(p.name());
        throw new IllegalArgumentException("backend: expected one of " + String.join(", ", names) + ", got '" + name + "'");
    }

    /** Probes every known backend. */
    public static List<BackendInfo> probeAll() {
        List<BackendInfo> out = new ArrayList<>();
        for (BackendProvider p : providers()) out.add(safeProbe(p));
        return out;
    }

    /** The name {@code auto} resolves to now: "cuda" when usable, else "cpu". */
    public static String resolveAuto() {
        for (BackendProvider p : providers()) {
            if (p.name().equals("cuda") && safeProbe(p).available()) return "cuda";
        }
        return "cpu";
    }

    /** One line saying what {@code auto} picks and why. */
    public static String describeAuto() {
        for (BackendProvider p : providers()) {
            if (p.name().equals("cuda")) {
                BackendInfo info = safeProbe(p);
                return info.available() ? "auto -> cuda (" + info.detail() + ")"
                        : "auto -> cpu (cuda unavailable: " + info.detail() + ")";
            }
        }
        return "auto -> cpu (no cuda backend in this build)";
    }

    /**
     * Opens a backend by name ({@code auto} resolves first).
     *
     * @throws BackendUnavailableException with the reason when it cannot be used here
     * @throws IllegalArgumentException    for an unknown name
     */
    public static BatchNormOps open(String name) {
        String n = name.equalsIgnoreCase(AUTO) ? resolveAuto() : name;
        return provider(n).open();
    }

    private static BackendInfo safeProbe(BackendProvider p) {
        try {
            return p.probe();
        } catch (RuntimeException | LinkageError e) {
            return new BackendInfo(p.name(), false, "probe failed: " + e);
        }
    }
}
