package io.github.batchnorm4j.ptx;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Command-line check that PTX files parse and use only instructions the emulator implements:
 * {@code java -cp target/classes io.github.batchnorm4j.ptx.PtxCheck file.ptx...}. Prints each module's entries and any
 * unsupported instruction with its line; exits with status 1 if any file fails.
 */
public final class PtxCheck {
    private PtxCheck() {
    }

    /** Checks one PTX text; returns the unsupported instructions ("function: text (line N)"). */
    public static List<String> unsupported(String name, String ptx) {
        return PtxParser.parse(name, ptx, ModuleSymbols.NONE).unsupported();
    }

    public static void main(String[] args) throws IOException {
        boolean ok = true;
        for (String a : args) {
            String text = Files.readString(Path.of(a), StandardCharsets.UTF_8);
            try {
                PtxModule m = PtxParser.parse(a, text, ModuleSymbols.NONE);
                System.out.println(a + ": .version " + m.version + ", .target " + m.target + ", entries "
                        + m.functions.keySet());
                for (PtxFunction f : m.functions.values()) {
                    System.out.println("  " + f.name + ": " + f.code.length + " instructions, " + f.numRegs
                            + " registers, " + f.staticSharedBytes + " static shared bytes");
                }
                for (String u : m.unsupported()) {
                    System.out.println("  UNSUPPORTED " + u);
                    ok = false;
                }
            } catch (RuntimeException e) {
                System.out.println(a + ": " + e.getMessage());
                ok = false;
            }
        }
        if (!ok) System.exit(1);
    }
}
