package io.github.batchnorm4j.ptx;

/**
 * Decoded opcodes. The parser maps each PTX instruction (opcode plus the modifiers that change its semantics) to one of
 * these, choosing a specialised code for the hot common cases (e.g. {@code add.f32} without rounding or ftz modifiers
 * is {@link #ADD_F32}) so the interpreter's switch does no further decoding.
 */
final class Op {
    private Op() {
    }

    /** An instruction the emulator does not implement: fails with its name and line when executed. */
    static final int UNSUPPORTED = 0;
    // Raw-bit integer ops, correct for every width because readers mask/extend by their own type.
    static final int MOV = 1, ADD = 2, SUB = 3, MUL_LO = 4, MAD_LO = 5, NEG = 6, NOT = 7, AND = 8, OR = 9, XOR = 10,
            SHL = 11, CNOT = 12;
    // Typed integer ops (use Insn.type).
    static final int MUL_HI = 20, MUL_WIDE = 21, MAD_HI = 22, MAD_WIDE = 23, DIV_INT = 24, REM = 25, MIN_INT = 26,
            MAX_INT = 27, ABS_INT = 28, SHR = 29, BFE = 30, BFI = 31, POPC = 32, CLZ = 33, BREV = 34, PRMT = 35,
            SETP_INT = 36, SET_INT = 37, SELP = 38, SAD = 40, BFIND = 41;
    // Float fast paths (.rn, no ftz, no sat).
    static final int ADD_F32 = 50, SUB_F32 = 51, MUL_F32 = 52, FMA_F32 = 53, ADD_F64 = 54, SUB_F64 = 55, MUL_F64 = 56,
            FMA_F64 = 57;
    // Float general ops (Insn.type is F32 or F64; Insn.mode the rounding; ftz/sat flags).
    static final int FADD = 60, FSUB = 61, FMUL = 62, FFMA = 63, FDIV = 64, FSQRT = 65, FRSQRT = 66, FRCP = 67,
            FEX2 = 68, FLG2 = 69, FSIN = 70, FCOS = 71, FTANH = 72, FMIN = 73, FMAX = 74, FABS = 75, FNEG = 76,
            SETP_F = 77, SET_F = 78, TESTP = 79, COPYSIGN = 80;
    static final int CVT = 90, CVTA_TO = 91, CVTA = 92, MOV_PACK = 93, MOV_UNPACK = 94;
    static final int LD = 100, ST = 101, ATOM = 102, RED = 103;
    static final int BRA = 110, RET = 111, EXIT = 112, BAR = 113, BAR_WARP = 114, MEMBAR = 115, SHFL = 116,
            VOTE = 117, ACTIVEMASK = 118, CLOCK = 119, BAR_RED = 120, NOP = 121, TRAP = 122, MATCH = 123,
            ISSPACEP = 124, SHF = 125, LOP3 = 126, CALL = 127;

    // Rounding modes (Insn.mode for float ops and cvt).
    static final int RN = 0, RZ = 1, RM = 2, RP = 3, RNA = 4;
    // Comparison ops for setp/set (Insn.mode).
    static final int EQ = 0, NE = 1, LT = 2, LE = 3, GT = 4, GE = 5, LO = 6, LS = 7, HI = 8, HS = 9,
            EQU = 10, NEU = 11, LTU = 12, LEU = 13, GTU = 14, GEU = 15, NUM = 16, NAN = 17;
    // Boolean combine for setp/set (Insn.boolOp).
    static final int BOOL_NONE = 0, BOOL_AND = 1, BOOL_OR = 2, BOOL_XOR = 3;
    // State spaces (Insn.space).
    static final int GENERIC = 0, GLOBAL = 1, SHARED = 2, LOCAL = 3, PARAM = 4, CONST = 5,
            /** .param of .func formals and call sites: per-thread scratch frames. */
            CALLPARAM = 6;
    // shfl modes, vote modes.
    static final int SHFL_UP = 0, SHFL_DOWN = 1, SHFL_BFLY = 2, SHFL_IDX = 3;
    static final int VOTE_ALL = 0, VOTE_ANY = 1, VOTE_UNI = 2, VOTE_BALLOT = 3;
    // Memory-ordering qualifiers of ld/st/atom/red (Insn.order; see MemoryOrder). MEMBAR's Insn.mode is 1 for a fence
    // that orders memory for other blocks (gpu or sys scope), 0 for a CTA-scope or proxy fence.
    static final int ORD_NC = 1, ORD_BYPASS = 2, ORD_STRONG = 4, ORD_ACQUIRE = 8, ORD_RELEASE = 16;
    // atom ops (Insn.mode).
    static final int A_ADD = 0, A_MIN = 1, A_MAX = 2, A_INC = 3, A_DEC = 4, A_CAS = 5, A_EXCH = 6, A_AND = 7,
            A_OR = 8, A_XOR = 9;
}
