package io.github.batchnorm4j.gpu;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Objects;

/**
 * The parameters of one kernel launch, in declaration order, each with its PTX size: pointers are 8 bytes
 * ({@code .u64}), {@link #i32}/{@link #u32} 4 bytes, {@link #i64} 8 bytes, {@link #f32} 4 bytes.
 * A device checks the count and sizes against the kernel's {@code .param} list before launching.
 *
 * <pre>{@code
 * KernelArgs args = new KernelArgs().ptr(x).ptr(y).i64(n).f32(eps);
 * }</pre>
 */
public final class KernelArgs {

    /** The kind of one argument. */
    public enum Kind {
        POINTER(8), I32(4), I64(8), F32(4), F64(8);

        private final int bytes;

        Kind(int bytes) {
            this.bytes = bytes;
        }

        /** Size in bytes of the PTX parameter. */
        public int bytes() {
            return bytes;
        }
    }

    /**
     * One argument. {@code value} is a {@link DevicePointer} for {@link Kind#POINTER}, else an Integer, Long, Float or
     * Double matching the kind.
     */
    public record Arg(Kind kind, Object value) {
        public Arg {
            Objects.requireNonNull(kind, "kind");
            Objects.requireNonNull(value, "value");
        }
    }

    private final List<Arg> args = new ArrayList<>();

    /** Appends a device pointer (PTX {@code .u64}). */
    public KernelArgs ptr(DevicePointer p) {
        args.add(new Arg(Kind.POINTER, Objects.requireNonNull(p, "pointer argument")));
        return this;
    }

    /** Appends a pointer to the start of {@code b}. */
    public KernelArgs ptr(DeviceBuffer b) {
        return ptr(Objects.requireNonNull(b, "buffer argument").pointer());
    }

    /** Appends a 32-bit integer (PTX {@code .s32}/{@code .u32}/{@code .b32}). */
    public KernelArgs i32(int v) {
        args.add(new Arg(Kind.I32, v));
        return this;
    }

    /** Appends a 32-bit integer given as unsigned (must fit in 32 bits). */
    public KernelArgs u32(long v) {
        if (v < 0 || v > 0xFFFF_FFFFL) throw new IllegalArgumentException("u32 argument out of range: " + v);
        args.add(new Arg(Kind.I32, (int) v));
        return this;
    }

    /** Appends a 64-bit integer (PTX {@code .s64}/{@code .u64}). */
    public KernelArgs i64(long v) {
        args.add(new Arg(Kind.I64, v));
        return this;
    }

    /** Appends a float (PTX {@code .f32}). */
    public KernelArgs f32(float v) {
        args.add(new Arg(Kind.F32, v));
        return this;
    }

    /** Appends a double (PTX {@code .f64}). */
    public KernelArgs f64(double v) {
        args.add(new Arg(Kind.F64, v));
        return this;
    }

    /** The arguments in order (unmodifiable). */
    public List<Arg> list() {
        return Collections.unmodifiableList(args);
    }

    /** Number of arguments. */
    public int size() {
        return args.size();
    }

    @Override
    public String toString() {
        return args.toString();
    }
}
