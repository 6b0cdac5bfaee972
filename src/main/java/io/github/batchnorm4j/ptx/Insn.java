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
    /** Bytes per element and number of elements (1, 2 or 4) of a memory access. */
    int memSize, vecN = 1;
    /** Branch target pc, or the barrier's thread-count register. */
    int target = -1;
    /** True for a uniform/aligned form (bra.uni); informational. */
    boolean uni;
    /** Source line (1-based) and text for messages. */
    int line;
    String text;

    @Override
    public String toString() {
        return "line " + line + ": " + text;
    }
}
