package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.gpu.KernelArgs;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;

import java.util.List;
import java.util.Objects;

/**
 * One marshalled kernel parameter: either a device address (allocation base + byte offset, for
 * {@link KernelArgs.Kind#POINTER}) or a host value of the kind's exact width.
 *
 * @param kind   the PTX parameter kind (its byte size is what cuLaunchKernel copies)
 * @param base   the allocation for POINTER, else null
 * @param offset the byte offset into {@code base} for POINTER, else 0
 * @param value  Integer, Long, Float or Double matching {@code kind}; null for POINTER
 */
record LaunchParam(KernelArgs.Kind kind, CUdeviceptr base, long offset, Object value) {

    LaunchParam {
        Objects.requireNonNull(kind, "kind");
        if ((kind == KernelArgs.Kind.POINTER) != (base != null)) {
            throw new IllegalArgumentException("a POINTER parameter needs a base address and nothing else needs one");
        }
    }

    /**
     * The {@code void** kernelParams} of cuLaunchKernel: one host pointer per parameter, pointing at a value of exactly
     * the parameter's width (a CUdeviceptr is 8 bytes, as PTX {@code .u64}).
     */
    static Pointer toKernelParams(List<LaunchParam> params) {
        Pointer[] ps = new Pointer[params.size()];
        for (int i = 0; i < ps.length; i++) ps[i] = params.get(i).toHostPointer();
        return Pointer.to(ps);
    }

    private Pointer toHostPointer() {
        switch (kind) {
            case POINTER: return Pointer.to(base.withByteOffset(offset));
            case I32: return Pointer.to(new int[] {(Integer) value});
            case I64: return Pointer.to(new long[] {(Long) value});
            case F32: return Pointer.to(new float[] {(Float) value});
            case F64: return Pointer.to(new double[] {(Double) value});
            default: throw new IllegalStateException("unknown kind " + kind);
        }
    }
}
