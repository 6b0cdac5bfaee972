package io.github.batchnorm4j;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.ServiceLoader;

/**
 * The one registry of backends, used by the library, the command line and {@code train}: finds and opens them by
 * name: {@code cpu}, {@code cuda} (our kernels through JCuda), {@code cudnn} (the cuDNN cross-check path),
 * {@code emulator} (our kernels on the PTX emulator), and {@code auto}.
 *
 * <p>The providers are found with {@link ServiceLoader} (the jar's
 * {@code META-INF/services/io.github.batchnorm4j.BackendProvider}, in that file's order), so this package names no
 * implementation. {@link #register} adds one more for as long as
 * its {@link Registration} is open (tests plant backends this way and take them out again).
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
        for (BackendProvider p : ServiceLoader.load(BackendProvider.class, Backends.class.getClassLoader())) {
            PROVIDERS.removeIf(q -> q.name().equals(p.name()));
            PROVIDERS.add(p);
        }
    }

    private Backends() {
    }

    /**
     * An added provider, in the registry until {@link #close()}: closing puts back what its name meant before (the
     * provider it replaced, or nothing). Close registrations in the reverse order of making them.
     */
    public static final class Registration implements AutoCloseable {
        private final BackendProvider added;
        private final BackendProvider replaced;
        private boolean closed;

        private Registration(BackendProvider added, BackendProvider replaced) {
            this.added = added;
            this.replaced = replaced;
        }

        /** Removes the provider (restoring the one it replaced). Idempotent. */
        @Override
        public void close() {
            synchronized (Backends.class) {
                if (closed) return;
                closed = true;
                int i = PROVIDERS.indexOf(added);
                if (i < 0) return;
                if (replaced != null) PROVIDERS.set(i, replaced);
                else PROVIDERS.remove(i);
            }
        }
    }

    /**
     * Adds a provider, replacing one of the same name in its place, until the returned registration is closed.
     */
    public static synchronized Registration register(BackendProvider provider) {
        if (provider == null) throw new IllegalArgumentException("provider must not be null");
        for (int i = 0; i < PROVIDERS.size(); i++) {
            BackendProvider p = PROVIDERS.get(i);
            if (p.name().equals(provider.name())) {
                PROVIDERS.set(i, provider);
                return new Registration(provider, p);
            }
        }
        PROVIDERS.add(provider);
        return new Registration(provider, null);
    }

    /** The known providers, in registration order. */
    public static synchronized List<BackendProvider> providers() {
        return Collections.unmodifiableList(new ArrayList<>(PROVIDERS));
    }

    /** The provider of {@code name}, or an IllegalArgumentException listing the known names. */
    public static synchronized BackendProvider provider(String name) {
        if (name == null) throw new IllegalArgumentException("backend name must not be null");
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
     * The provider name that {@code name} stands for: {@code auto} resolved ({@link #resolveAuto()}), any other known
     * name in lower case.
     *
     * @throws IllegalArgumentException for an unknown name, listing the known ones
     */
    public static String resolve(String name) {
        if (name == null) throw new IllegalArgumentException("backend must not be null");
        return name.equalsIgnoreCase(AUTO) ? resolveAuto() : provider(name).name();
    }

    /**
     * Opens a backend by name ({@code auto} resolves first).
     *
     * @throws BackendUnavailableException with the reason when it cannot be used here
     * @throws IllegalArgumentException    for an unknown name
     */
    public static BatchNormOps open(String name) {
        if (name == null) throw new IllegalArgumentException("backend name must not be null");
        return provider(resolve(name)).open();
    }

    private static BackendInfo safeProbe(BackendProvider p) {
        try {
            return p.probe();
        } catch (RuntimeException | LinkageError e) {
            return new BackendInfo(p.name(), false, "probe failed: " + e);
        }
    }
}
