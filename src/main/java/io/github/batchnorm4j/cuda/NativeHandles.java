package io.github.batchnorm4j.cuda;

import jcuda.NativePointerObject;

/**
 * Reads the native value behind a JCuda handle (a CUstream, a CUdeviceptr's base), to hand it to a library bound
 * through other Java bindings (NCCL through JavaCPP): JCuda keeps it in a private field that only its subclasses
 * can read, through the protected copy constructor and getter. Not a handle itself; never passed to JCuda.
 */
final class NativeHandles extends NativePointerObject {
    private NativeHandles(NativePointerObject o) {
        super(o);
    }

    /** The native pointer of {@code o} (0 for a null handle, e.g. the legacy default stream). */
    static long of(NativePointerObject o) {
        return new NativeHandles(o).getNativePointer();
    }
}
