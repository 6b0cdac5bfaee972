package io.github.batchnorm4j.ptx;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** A parsed PTX module: header values and its decoded functions by name. */
final class PtxModule {
    final String name;
    String version = "";
    String target = "";
    int addressSize = 64;
    final Map<String, PtxFunction> functions = new LinkedHashMap<>();

    PtxModule(String name) {
        this.name = name;
    }

    /** The instructions this emulator does not implement, as "name (line N)", in source order. */
    List<String> unsupported() {
        List<String> out = new ArrayList<>();
        for (PtxFunction f : functions.values()) {
            for (Insn in : f.code) {
                if (in.op == Op.UNSUPPORTED) out.add(f.name + ": " + in.text + " (line " + in.line + ")");
            }
        }
        return Collections.unmodifiableList(out);
    }
}
