package io.github.batchnorm4j.ptx;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * Parsed PTX modules shared by every {@link EmulatedDevice} of the process, so that loading the same module on many
 * devices (every test opens its own) decodes it once: about a second for the batch-norm modules, which hold the
 * kernels of three storage types. Only modules without module-scope variables are kept: theirs have device addresses
 * baked into the decoded instructions. A parsed module is never modified after parsing. At most {@link #CAPACITY}
 * modules, least recently used first out.
 */
final class ParsedModules {
    static final int CAPACITY = 16;

    private record Key(String name, String ptx) {
    }

    private static final Map<Key, PtxModule> CACHE = new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<Key, PtxModule> eldest) {
            return size() > CAPACITY;
        }
    };

    private ParsedModules() {
    }

    /** The module parsed from exactly this text under this name, or null. */
    static synchronized PtxModule get(String name, String ptx) {
        return CACHE.get(new Key(Objects.requireNonNull(name), Objects.requireNonNull(ptx)));
    }

    static synchronized void put(String name, String ptx, PtxModule parsed) {
        CACHE.put(new Key(name, ptx), parsed);
    }
}
