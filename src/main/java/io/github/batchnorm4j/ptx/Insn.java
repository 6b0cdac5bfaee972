package io.github.batchnorm4j.ptx;

/**
 * One decoded PTX instruction: opcode, types and modifiers as ints, operands as register indices. Immediates and
 * special registers were turned into registers by the parser (constants are preloaded into every warp), so the
 * interpreter reads every source the same way: {@code regs[index * 32 + lane]}.
 */
final class Insn {
    int op;
    /** Main type (destination type for cvt/mul.wide). */
    int type;
    /** Second type: cvt source type; 0 when unused. */
    int type2;
    /** Rounding mode, comparison, shfl/vote/atom/bfe mode, depending on op. */
    int mode;
    int boolOp;
    boolean ftz, sat;
    /** Destination registers (-1 when absent); d2 is the second destination (shfl's predicate, setp's q). */
    int d = -1, d2 = -1;
    /** Source registers (-1 when absent). */
    int a = -1, b = -1, c = -1, e = -1;
    boolean negA, negB, negC;
    /** Guard predicate register, or -1 for an unguarded instruction. */
    int guard = -1;
    boolean guardNeg;
    /** Vector register list (ld/st .v2/.v4, mov pack/unpack); -1 entries are sinks ({@code _}). */
    int[] vec;
    /** Memory: state space, base register (-1: absolute), constant offset (includes a symbol's address). */
    int space, baseReg = -1;
    long offset;
    /** Memory-ordering qualifiers of ld/st/atom/red ({@link Op} ORD_* flags). */
    int order;
    /** Bytes per element and number of elements (1, 2 or 4) of a memory access. */
    int memSize, vecN = 1;
    /** Branch target pc, or the barrier's thread-count register. */
    int target = -1;
    /** True for a uniform/aligned form (bra.uni); informational. */
    boolean uni;
    /** True when {@link #offset} holds the address of a .local variable (the linker relocates it). */
    boolean localSym;
    /** A call's operands (null for other instructions). */
    CallInfo call;
    /** Source line (1-based) and text for messages. */
    int line;
    String text;

    /** A call: callee name and the caller-frame offsets of its argument and return slots, resolved by the linker. */
    static final class CallInfo {
        String callee;
        int[] argOffsets;
        int retOffset = -1;
        // resolved at link time: absolute scratch offsets and sizes
        int[] argSrc, argDst, argSize;
        int retSrc = -1, retDst = -1, retSize;
    }

    Insn copy() {
        Insn c = new Insn();
        c.op = op; c.type = type; c.type2 = type2; c.mode = mode; c.boolOp = boolOp; c.ftz = ftz; c.sat = sat;
        c.d = d; c.d2 = d2; c.a = a; c.b = b; c.c = this.c; c.e = e; c.negA = negA; c.negB = negB; c.negC = negC;
        c.guard = guard; c.guardNeg = guardNeg; c.vec = vec == null ? null : vec.clone(); c.space = space;
        c.baseReg = baseReg; c.offset = offset; c.order = order; c.memSize = memSize; c.vecN = vecN; c.target = target; c.uni = uni;
        c.call = call; c.localSym = localSym; c.line = line; c.text = text;
        return c;
    }

    @Override
    public String toString() {
        return "line " + line + ": " + text;
    }
}
