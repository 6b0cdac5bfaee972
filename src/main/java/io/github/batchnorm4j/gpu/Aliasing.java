package io.github.batchnorm4j.gpu;

import java.util.ArrayList;
import java.util.List;

/**
 * The aliasing rule of the device-resident operations: an output may be exactly its elementwise input (y = x,
 * dx = dy: same buffer, same offset), and otherwise no output may share a byte with any other argument, input or
 * output. The kernels are written for exactly that: the elementwise passes load every unit before storing it, and read
 * the input an output may equal with plain loads, while every other input is {@code const __restrict__} (read through
 * the non-coherent path, which needs data that no one writes during the kernel). A partial overlap would make results
 * depend on the order blocks run in.
 *
 * <p>Usage: {@code new Aliasing().input("x", x, bytes).output("y", y, bytes, "x").check()}; null pointers (optional
 * arguments) are skipped. {@link #check} throws IllegalArgumentException naming both arguments and their byte ranges.
 */
final class Aliasing {
    private record Arg(String name, DevicePointer p, long bytes, boolean output, String mayEqual) {
    }

    private final List<Arg> args = new ArrayList<>();

    /** An argument the operation only reads. */
    Aliasing input(String name, DevicePointer p, long bytes) {
        if (p != null) args.add(new Arg(name, p, bytes, false, null));
        return this;
    }

    /** An argument the operation writes (or reads and writes), which may be exactly {@code mayEqual} (or null). */
    Aliasing output(String name, DevicePointer p, long bytes, String mayEqual) {
        if (p != null) args.add(new Arg(name, p, bytes, true, mayEqual));
        return this;
    }

    /** Throws IllegalArgumentException for the first pair that breaks the rule. */
    void check() {
        for (int i = 0; i < args.size(); i++) {
            Arg a = args.get(i);
            for (int j = 0; j < args.size(); j++) {
                Arg b = args.get(j);
                if (j == i || !a.output || (b.output && j < i)) continue;   // each pair with an output once
                if (!overlap(a, b)) continue;
                boolean same = a.p.equals(b.p) && a.bytes == b.bytes;
                if (same && (b.name.equals(a.mayEqual) || a.name.equals(b.mayEqual))) continue;
                throw new IllegalArgumentException(a.name + " (bytes " + range(a) + ") overlaps " + b.name + " (bytes "
                        + range(b) + ") in " + a.p.buffer() + ": an output may only be exactly its elementwise input"
                        + " (y = x, dx = dy) and must share no byte with any other argument");
            }
        }
    }

    private static boolean overlap(Arg a, Arg b) {
        if (a.p.buffer() != b.p.buffer() || a.bytes == 0 || b.bytes == 0) return false;
        long a0 = a.p.byteOffset(), b0 = b.p.byteOffset();
        return a0 < b0 + b.bytes && b0 < a0 + a.bytes;
    }

    private static String range(Arg a) {
        return "[" + a.p.byteOffset() + ", " + (a.p.byteOffset() + a.bytes) + ")";
    }
}
