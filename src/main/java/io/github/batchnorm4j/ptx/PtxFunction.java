package io.github.batchnorm4j.ptx;

import java.util.List;
import java.util.Map;

/**
 * A decoded {@code .entry} (or {@code .func}): its parameters, its instructions and the register file layout.
 *
 * <p>Register indices {@code 0 .. SPECIAL_COUNT-1} are the special registers ({@link Special}), then the constant
 * registers holding the function's immediates ({@link #constants}, preloaded into every warp), then the declared
 * registers the code uses.
 */
final class PtxFunction {
    /** One {@code .param}: name, byte offset in the parameter buffer, size and PTX type name. */
    record Param(String name, int offset, int size, String typeName) {
    }

    final String name;
    final boolean entry;
    final List<Param> params;
    final int paramBytes;
    final Insn[] code;
    final int numRegs;
    /** Values of the constant registers: register {@code constBase + i} holds {@code constants[i]}. */
    final long[] constants;
    final int constBase;
    /** Static shared bytes (function and module variables); dynamic shared memory starts at {@link #dynamicSharedOffset}. */
    final int staticSharedBytes;
    final int dynamicSharedOffset;
    final int localBytes;
    /** Labels to pcs, for messages and tests. */
    final Map<String, Integer> labels;
    final String moduleName;
    /** {@link Coverage#sourceHash} of the module's PTX text: coverage keys kernels by it (set by the parser). */
    String source = "";
    /** Registers preloaded with {@link #constants} (constRegs[i] holds constants[i]). */
    int[] constRegs;
    /** Indices into {@link #constants} of constants that are .local variable addresses (relocated when linking). */
    int[] localConstIdx = new int[0];
    /** For a .func: its return parameter (offset in its call frame), or null. */
    Param retParam;
    /** Bytes of this function's call frame (.func formals, return value, call-site .param variables). */
    int frameBytes;
    /** Per-thread call-parameter scratch bytes of a linked entry (all frames). */
    int callParamBytes;

    PtxFunction(String moduleName, String name, boolean entry, List<Param> params, int paramBytes, Insn[] code,
                int numRegs, long[] constants, int constBase, int staticSharedBytes, int dynamicSharedOffset,
                int localBytes, Map<String, Integer> labels) {
        this.moduleName = moduleName;
        this.name = name;
        this.entry = entry;
        this.params = params;
        this.paramBytes = paramBytes;
        this.code = code;
        this.numRegs = numRegs;
        this.constants = constants;
        this.constBase = constBase;
        this.staticSharedBytes = staticSharedBytes;
        this.dynamicSharedOffset = dynamicSharedOffset;
        this.localBytes = localBytes;
        this.labels = labels;
        this.constRegs = new int[constants.length];
        for (int i = 0; i < constants.length; i++) constRegs[i] = constBase + i;
    }

    /** True if any instruction calls a .func. */
    boolean hasCalls() {
        for (Insn in : code) if (in.op == Op.CALL) return true;
        return false;
    }
}
