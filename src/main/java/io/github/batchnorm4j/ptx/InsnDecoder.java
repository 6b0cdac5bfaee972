package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.gpu.DeviceException;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Decodes the instruction statements of one function into {@link Insn}s: opcode and modifiers to an {@link Op} code,
 * operands to register indices (immediates and symbol addresses become preloaded constant registers), labels to pcs.
 */
final class InsnDecoder {
    private static final Pattern LABEL = Pattern.compile("^([A-Za-z_$][\\w$]*)\\s*:(?!:)");
    private static final Set<String> IGNORED_MODS = Set.of("uni", "aligned", "volatile", "relaxed", "acquire",
            "release", "acq_rel", "sc", "weak", "mmio", "cta", "gpu", "sys", "cluster", "ca", "cg", "cs", "lu", "cv",
            "wb", "wt", "nc", "noftz", "sync", "full", "approx", "rn", "rz", "rm", "rp", "rna", "rni", "rzi", "rmi",
            "rpi", "ftz", "sat", "to", "lo", "hi", "wide", "unified");

    private final PtxParser parser;
    private final String moduleName, fnName;
    private final Map<String, Long> globalSymbols;
    private final Map<String, Integer> regs = new HashMap<>();
    private final Set<String> declared = new HashSet<>();
    private final Map<Long, Integer> constIndex = new LinkedHashMap<>();
    private final List<Long> constValues = new ArrayList<>();
    /** Constants holding .local variable addresses: kept apart from equal immediates because the linker moves them. */
    private final Map<Long, Integer> localConstIndex = new HashMap<>();
    private final Map<String, Integer> sharedSyms = new HashMap<>();
    private final Map<String, Integer> paramSyms = new HashMap<>();
    private final Map<String, Integer> localSyms = new HashMap<>();
    private final Map<String, Integer> callParamSyms = new HashMap<>();
    private int frameBytes;
    private final List<String> regNames = new ArrayList<>();
    private int line;
    private String text;

    InsnDecoder(PtxParser parser, String moduleName, String fnName, Map<String, Long> globalSymbols) {
        this.parser = parser;
        this.moduleName = moduleName;
        this.fnName = fnName;
        this.globalSymbols = globalSymbols;
    }

    void defineParam(String name, int offset) {
        paramSyms.put(name, offset);
    }

    /** A .func formal/return parameter or a call-site .param variable: a slot in this function's call frame. */
    int defineCallParam(String name, int size, int align) {
        Integer have = callParamSyms.get(name);
        if (have != null) return have; // call sites redeclare param0, retval0 ... with the same layout
        align = Math.max(align, 1);
        frameBytes = (frameBytes + align - 1) / align * align;
        callParamSyms.put(name, frameBytes);
        frameBytes += Math.max(size, 1);
        return callParamSyms.get(name);
    }

    int frameBytes() {
        return frameBytes;
    }

    void defineShared(String name, int offset) {
        sharedSyms.put(name, offset);
    }

    void defineLocal(String name, int offset) {
        localSyms.put(name, offset);
    }

    private DeviceException error(String msg) {
        return new DeviceException("PTX module " + moduleName + " function " + fnName + " line " + line + ": " + msg
                + (text != null ? " in '" + text + "'" : ""));
    }

    /** Records a {@code .reg} declaration; registers get indices lazily, on first use. */
    void declareRegisters(String t, int line) {
        this.line = line;
        String[] w = t.replace(",", " ").trim().split("\\s+");
        for (int k = 1; k < w.length; k++) {
            String x = w[k];
            if (x.startsWith(".")) continue; // type, .v2 ...
            int lt = x.indexOf('<');
            if (lt >= 0) {
                String base = x.substring(0, lt);
                int n = Integer.parseInt(x.substring(lt + 1, x.indexOf('>')));
                for (int r = 0; r < n; r++) declared.add(base + r);
            } else {
                declared.add(x);
            }
        }
    }

    // ------------------------------------------------------------ operands

    private int regIndex(String name) {
        Integer i = regs.get(name);
        if (i != null) return i;
        if (!declared.contains(name)) throw error("undeclared register " + name);
        regs.put(name, regNames.size());
        regNames.add(name);
        return regNames.size() - 1; // relative; made absolute in decodeFunction
    }

    // Register operands are encoded while decoding as: specials -> (-2 - special), constants -> (-1000000 - constIdx),
    // declared -> index; decodeFunction rewrites them to absolute register indices.
    private static final int CONST_TAG = -1_000_000;

    private int constant(long v) {
        Integer i = constIndex.get(v);
        if (i == null) {
            i = constValues.size();
            constIndex.put(v, i);
            constValues.add(v);
        }
        return CONST_TAG - i;
    }

    /** A destination register ({@code _} gives -1). */
    private int dst(String tok) {
        tok = tok.trim();
        if (tok.equals("_")) return -1;
        // inline asm blocks declare scoped registers without % ({.reg .f16 low, high; ...}): names are per function
        if (!tok.startsWith("%") && declared.contains(tok)) return regIndex(tok);
        if (!tok.startsWith("%")) throw error("expected a register, got " + tok);
        if (declared.contains(tok)) return regIndex(tok);
        if (Special.of(tok) >= 0) throw error("cannot write special register " + tok);
        return regIndex(tok);
    }

    /** A source operand of type {@code type}: register, special register, immediate or symbol address. */
    private int src(String tok, int type) {
        tok = tok.trim();
        if (tok.startsWith("!")) tok = tok.substring(1).trim();
        if (tok.startsWith("%")) {
            if (declared.contains(tok)) return regIndex(tok);
            int sp = Special.of(tok);
            if (sp >= 0) return -2 - sp;
            if (tok.startsWith("%clock") || tok.startsWith("%globaltimer")) throw error("clock registers must be read by mov");
            return regIndex(tok);
        }
        if (declared.contains(tok)) return regIndex(tok); // a scoped register of an inline asm block (see dst)
        Long sym = symbolAddress(tok);
        if (sym != null) {
            if (localSyms.containsKey(symbolBase(tok))) {
                Integer i = localConstIndex.get(sym);
                if (i == null) {
                    i = constValues.size();
                    constValues.add(sym);
                    localConstIndex.put(sym, i);
                }
                return CONST_TAG - i;
            }
            return constant(sym);
        }
        return constant(parseImmediate(tok, type));
    }

    private static String symbolBase(String tok) {
        int plus = tok.indexOf('+');
        return (plus > 0 ? tok.substring(0, plus) : tok).trim();
    }

    private Long symbolAddress(String tok) {
        String base = tok;
        long add = 0;
        int plus = tok.indexOf('+');
        if (plus > 0) {
            base = tok.substring(0, plus).trim();
            try {
                add = parseInt(tok.substring(plus + 1).trim());
            } catch (NumberFormatException ex) {
                return null;
            }
        }
        if (sharedSyms.containsKey(base)) return sharedSyms.get(base) + add;
        if (globalSymbols.containsKey(base)) return globalSymbols.get(base) + add;
        if (paramSyms.containsKey(base)) return paramSyms.get(base) + add;
        if (localSyms.containsKey(base)) return localSyms.get(base) + add;
        return null;
    }

    private static long parseInt(String s) {
        s = s.trim();
        boolean neg = s.startsWith("-");
        if (neg || s.startsWith("+")) s = s.substring(1);
        if (s.endsWith("U") || s.endsWith("u")) s = s.substring(0, s.length() - 1);
        long v;
        if (s.startsWith("0x") || s.startsWith("0X")) v = Long.parseUnsignedLong(s.substring(2), 16);
        else if (s.length() > 1 && s.startsWith("0") && s.chars().allMatch(Character::isDigit)) v = Long.parseLong(s, 8);
        else v = Long.parseUnsignedLong(s);
        return neg ? -v : v;
    }

    /** The raw bits of an immediate for an instruction of type {@code type}. */
    static long parseImmediate(String tok, int type) {
        String s = tok.trim();
        boolean neg = s.startsWith("-");
        String body = neg ? s.substring(1) : s;
        if (body.length() == 10 && (body.startsWith("0f") || body.startsWith("0F"))) {
            long bits = Integer.parseUnsignedInt(body.substring(2), 16);
            if (neg) bits ^= 0x8000_0000L;
            if (type == PtxType.F64) return Double.doubleToRawLongBits(Float.intBitsToFloat((int) bits));
            return (int) bits;
        }
        if (body.length() == 18 && (body.startsWith("0d") || body.startsWith("0D"))) {
            long bits = Long.parseUnsignedLong(body.substring(2), 16);
            if (neg) bits ^= Long.MIN_VALUE;
            if (type == PtxType.F32) return Float.floatToRawIntBits((float) Double.longBitsToDouble(bits));
            return bits;
        }
        boolean floating = !body.startsWith("0x") && !body.startsWith("0X")
                && (body.contains(".") || body.contains("e") || body.contains("E"));
        if (floating || PtxType.isFloat(type) && !body.startsWith("0x")) {
            double d = Double.parseDouble(s);
            if (type == PtxType.F32) return Float.floatToRawIntBits((float) d);
            if (type == PtxType.F64 || floating) return Double.doubleToRawLongBits(d);
        }
        return parseInt(s);
    }

    // ------------------------------------------------------------ function

    PtxFunction decodeFunction(boolean entry, List<PtxFunction.Param> params, int paramBytes, List<PtxParser.Stmt> stmts,
                               int staticShared, int dynOffset, int localBytes) {
        List<Insn> code = new ArrayList<>();
        Map<String, Integer> labels = new HashMap<>();
        List<String> targets = new ArrayList<>();
        for (PtxParser.Stmt s : stmts) {
            String full = s.text();
            int pos = 0;
            while (true) {
                while (pos < full.length() && Character.isWhitespace(full.charAt(pos))) pos++;
                Matcher m = LABEL.matcher(full.substring(pos));
                if (!m.find()) break;
                labels.put(m.group(1), code.size());
                pos += m.end();
            }
            if (pos >= full.length()) continue;
            line = s.line() + countNewlines(full, pos);
            String trimmed = full.substring(pos);
            String one = trimmed.replaceAll("\\s+", " ").trim();
            text = one;
            if (one.startsWith(".")) {
                if (one.startsWith(".pragma") || one.startsWith(".loc")) continue;
                throw error("unexpected directive in function body");
            }
            Insn in = new Insn();
            in.line = line;
            in.text = one;
            decode(in, one);
            if (in.op == Op.BRA) {
                targets.add(in.text.substring(in.text.lastIndexOf(' ') + 1));
            }
            code.add(in);
        }
        // resolve branch targets
        int ti = 0;
        for (Insn in : code) {
            if (in.op == Op.BRA) {
                String lab = targets.get(ti++);
                Integer pc = labels.get(lab);
                if (pc == null) {
                    line = in.line;
                    text = in.text;
                    throw error("unknown label " + lab);
                }
                in.target = pc;
            }
        }
        // a function ends with an implicit exit/ret
        Insn end = new Insn();
        end.op = entry ? Op.EXIT : Op.RET;
        end.line = code.isEmpty() ? line : code.get(code.size() - 1).line;
        end.text = "(end of " + fnName + ")";
        code.add(end);
        // absolute register indices: specials, constants, declared
        int constBase = Special.COUNT;
        int regBase = constBase + constValues.size();
        for (Insn in : code) {
            in.d = abs(in.d, constBase, regBase);
            in.d2 = abs(in.d2, constBase, regBase);
            in.a = abs(in.a, constBase, regBase);
            in.b = abs(in.b, constBase, regBase);
            in.c = abs(in.c, constBase, regBase);
            in.e = abs(in.e, constBase, regBase);
            in.guard = abs(in.guard, constBase, regBase);
            in.baseReg = abs(in.baseReg, constBase, regBase);
            if (in.vec != null) for (int k = 0; k < in.vec.length; k++) in.vec[k] = abs(in.vec[k], constBase, regBase);
        }
        long[] consts = new long[constValues.size()];
        for (int k = 0; k < consts.length; k++) consts[k] = constValues.get(k);
        PtxFunction f = new PtxFunction(moduleName, fnName, entry, params, paramBytes, code.toArray(new Insn[0]),
                regBase + regNames.size(), consts, constBase, staticShared, dynOffset, localBytes, labels);
        f.frameBytes = frameBytes;
        f.localConstIdx = localConstIndex.values().stream().mapToInt(Integer::intValue).toArray();
        return f;
    }

    private static int countNewlines(String s, int upto) {
        int n = 0;
        for (int k = 0; k < upto && k < s.length(); k++) if (s.charAt(k) == '\n') n++;
        return n;
    }

    private static int abs(int r, int constBase, int regBase) {
        if (r == -1) return -1;
        if (r <= CONST_TAG) return constBase + (CONST_TAG - r);
        if (r <= -2) return -2 - r;
        return regBase + r;
    }

    // ------------------------------------------------------------ instructions

    private void decode(Insn in, String s) {
        // guard predicate
        if (s.startsWith("@")) {
            int sp = s.indexOf(' ');
            String g = s.substring(1, sp);
            in.guardNeg = g.startsWith("!");
            in.guard = dst(in.guardNeg ? g.substring(1) : g);
            s = s.substring(sp + 1).trim();
        }
        int sp = s.indexOf(' ');
        String opcode = sp < 0 ? s : s.substring(0, sp);
        String operandText = sp < 0 ? "" : s.substring(sp + 1).trim();
        List<String> ops = PtxParser.splitTop(operandText);
        String[] parts = opcode.split("\\.");
        String base = parts[0];
        List<String> mods = new ArrayList<>();
        List<Integer> types = new ArrayList<>();
        for (int k = 1; k < parts.length; k++) {
            String p = parts[k];
            int ty = PtxType.of(p);
            if (ty > 0) types.add(ty);
            else mods.add(p);
        }
        int type = types.isEmpty() ? PtxType.NONE : types.get(0);
        in.type = type;
        in.ftz = mods.contains("ftz");
        in.sat = mods.contains("sat");
        in.mode = rounding(mods);
        boolean isFloat = PtxType.isFloat(type);
        if (PtxType.isHalf(type) && !HALF_OK.contains(base)) {
            unsupported(in); // f16/bf16 arithmetic (add.f16x2, fma.rn.bf16 ...): not emitted for our kernels
            return;
        }
        try {
            switch (base) {
                case "mov": decodeMov(in, ops, type); break;
                case "add": case "sub":
                    if (mods.contains("cc") || mods.contains("sat") && !isFloat) { unsupported(in); break; }
                    if (isFloat) floatBinary(in, ops, base.equals("add") ? Op.ADD_F32 : Op.SUB_F32,
                            base.equals("add") ? Op.ADD_F64 : Op.SUB_F64, base.equals("add") ? Op.FADD : Op.FSUB);
                    else binary(in, ops, base.equals("add") ? Op.ADD : Op.SUB);
                    break;
                case "addc": case "subc": case "madc": unsupported(in); break;
                case "mul":
                    if (isFloat) floatBinary(in, ops, Op.MUL_F32, Op.MUL_F64, Op.FMUL);
                    else if (mods.contains("wide")) binary(in, ops, Op.MUL_WIDE);
                    else if (mods.contains("hi")) binary(in, ops, Op.MUL_HI);
                    else binary(in, ops, Op.MUL_LO);
                    break;
                case "mul24": case "mad24": unsupported(in); break;
                case "sad": in.op = Op.SAD; ternary(in, ops); break;
                case "match":
                    if (!mods.contains("sync")) { unsupported(in); break; }
                    in.op = Op.MATCH;
                    in.mode = mods.contains("all") ? 1 : 0;
                    {
                        String d = ops.get(0);
                        int bar = d.indexOf('|');
                        in.d = dst(bar >= 0 ? d.substring(0, bar) : d);
                        if (bar >= 0) in.d2 = dst(d.substring(bar + 1));
                    }
                    in.a = src(ops.get(1), type);
                    in.e = src(ops.get(2), PtxType.U32);
                    break;
                case "mad": case "fma":
                    if (isFloat) {
                        if (type == PtxType.F16 || type == PtxType.BF16) { unsupported(in); break; }
                        boolean fast = in.mode == Op.RN && !in.ftz && !in.sat;
                        in.op = fast ? (type == PtxType.F32 ? Op.FMA_F32 : Op.FMA_F64) : Op.FFMA;
                        ternary(in, ops);
                    } else {
                        if (mods.contains("cc")) { unsupported(in); break; }
                        in.op = mods.contains("wide") ? Op.MAD_WIDE : mods.contains("hi") ? Op.MAD_HI : Op.MAD_LO;
                        ternary(in, ops);
                    }
                    break;
                case "div":
                    if (isFloat) {
                        in.op = Op.FDIV;
                        if (mods.contains("approx")) in.mode = -1;
                        if (mods.contains("full")) in.mode = -2;
                        binaryOps(in, ops);
                    } else binary(in, ops, Op.DIV_INT);
                    break;
                case "rem": binary(in, ops, Op.REM); break;
                case "min": binary(in, ops, isFloat ? Op.FMIN : Op.MIN_INT); break;
                case "max": binary(in, ops, isFloat ? Op.FMAX : Op.MAX_INT); break;
                case "abs": unary(in, ops, isFloat ? Op.FABS : Op.ABS_INT); break;
                case "neg": unary(in, ops, isFloat ? Op.FNEG : Op.NEG); break;
                case "and": binary(in, ops, Op.AND); break;
                case "or": binary(in, ops, Op.OR); break;
                case "xor": binary(in, ops, Op.XOR); break;
                case "not": unary(in, ops, Op.NOT); break;
                case "cnot": unary(in, ops, Op.CNOT); break;
                case "shl": binary(in, ops, Op.SHL); break;
                case "shr": binary(in, ops, Op.SHR); break;
                case "popc": unary(in, ops, Op.POPC); break;
                case "clz": unary(in, ops, Op.CLZ); break;
                case "brev": unary(in, ops, Op.BREV); break;
                case "bfind": in.mode = mods.contains("shiftamt") ? 1 : 0; unary(in, ops, Op.BFIND); break;
                case "bfe": in.op = Op.BFE; ternary(in, ops); break;
                case "bfi": in.op = Op.BFI; in.d = dst(ops.get(0)); in.a = src(ops.get(1), type);
                    in.b = src(ops.get(2), type); in.c = src(ops.get(3), PtxType.U32); in.e = src(ops.get(4), PtxType.U32);
                    break;
                case "prmt":
                    if (!mods.isEmpty()) { unsupported(in); break; }
                    in.op = Op.PRMT; ternary(in, ops); break;
                case "copysign": binary(in, ops, Op.COPYSIGN); break;
                case "isspacep":
                    in.op = Op.ISSPACEP;
                    in.space = space(mods);
                    in.d = dst(ops.get(0));
                    in.a = src(ops.get(1), PtxType.U64);
                    break;
                case "shf": // funnel shift: mode bit 0 = right, bit 1 = clamp
                    in.op = Op.SHF;
                    in.mode = (mods.contains("r") ? 1 : 0) | (mods.contains("clamp") ? 2 : 0);
                    ternary(in, ops);
                    break;
                case "lop3":
                    in.op = Op.LOP3;
                    in.d = dst(ops.get(0));
                    in.a = src(ops.get(1), type);
                    in.b = src(ops.get(2), type);
                    in.c = src(ops.get(3), type);
                    in.e = src(ops.get(4), PtxType.U32);
                    break;
                case "sqrt": in.mode = mods.contains("approx") ? -1 : in.mode; unary(in, ops, Op.FSQRT); break;
                case "rsqrt": unary(in, ops, Op.FRSQRT); break;
                case "rcp": in.mode = mods.contains("approx") ? -1 : in.mode; unary(in, ops, Op.FRCP); break;
                case "ex2": unary(in, ops, Op.FEX2); break;
                case "lg2": unary(in, ops, Op.FLG2); break;
                case "sin": unary(in, ops, Op.FSIN); break;
                case "cos": unary(in, ops, Op.FCOS); break;
                case "tanh": unary(in, ops, Op.FTANH); break;
                case "testp": decodeTestp(in, ops, mods); break;
                case "setp": decodeSetp(in, ops, mods, type, false); break;
                case "set": decodeSetp(in, ops, mods, types.size() > 1 ? types.get(1) : type, true); break;
                case "selp": in.op = Op.SELP; in.d = dst(ops.get(0)); in.a = src(ops.get(1), type);
                    in.b = src(ops.get(2), type); in.c = src(ops.get(3), PtxType.PRED); break;
                case "cvt": decodeCvt(in, ops, mods, types); break;
                case "cvta": decodeCvta(in, ops, mods); break;
                case "ld": case "ldu": decodeLdSt(in, ops, mods, true); in.order = memoryOrder(mods, false, base.equals("ldu")); break;
                case "st": decodeLdSt(in, ops, mods, false); in.order = memoryOrder(mods, false, false); break;
                case "atom": case "red": decodeAtom(in, ops, mods, base.equals("atom")); in.order = memoryOrder(mods, true, false); break;
                case "prefetch": case "prefetchu": case "discard": case "applypriority": in.op = Op.NOP; break;
                case "membar": case "fence": in.op = Op.MEMBAR; in.mode = deviceFence(base, mods) ? 1 : 0; break;
                case "bar": case "barrier": decodeBar(in, ops, mods); break;
                case "shfl": decodeShfl(in, ops, mods); break;
                case "vote": decodeVote(in, ops, mods); break;
                case "activemask": in.op = Op.ACTIVEMASK; in.d = dst(ops.get(0)); break;
                case "bra": in.op = Op.BRA; in.uni = mods.contains("uni"); break;
                case "ret": in.op = Op.RET; break;
                case "call": decodeCall(in, ops); break;
                case "exit": in.op = Op.EXIT; break;
                case "trap": in.op = Op.TRAP; break;
                case "nanosleep": case "pmevent": in.op = Op.NOP; break;
                default: unsupported(in);
            }
        } catch (DeviceException ex) {
            throw ex;
        } catch (RuntimeException ex) {
            throw error("cannot decode (" + ex + ")");
        }
    }

    /** The instructions that may carry a 16-bit float type: moves, loads and stores (raw bits), conversions. */
    private static final java.util.Set<String> HALF_OK = java.util.Set.of("mov", "ld", "ldu", "st", "cvt");

    private static void unsupported(Insn in) {
        in.op = Op.UNSUPPORTED;
    }

    private static int rounding(List<String> mods) {
        for (String m : mods) {
            switch (m) {
                case "rn": case "rni": return Op.RN;
                case "rz": case "rzi": return Op.RZ;
                case "rm": case "rmi": return Op.RM;
                case "rp": case "rpi": return Op.RP;
                case "rna": return Op.RNA;
                default:
            }
        }
        return Op.RN;
    }

    private static boolean integerRounding(List<String> mods) {
        return mods.contains("rni") || mods.contains("rzi") || mods.contains("rmi") || mods.contains("rpi");
    }

    private void unary(Insn in, List<String> ops, int op) {
        in.op = op;
        in.d = dst(ops.get(0));
        in.a = src(ops.get(1), in.type);
    }

    private void binaryOps(Insn in, List<String> ops) {
        in.d = dst(ops.get(0));
        in.a = src(ops.get(1), in.type);
        int btype = (in.op == Op.SHL || in.op == Op.SHR) ? PtxType.U32 : in.type;
        in.b = src(ops.get(2), btype);
    }

    private void binary(Insn in, List<String> ops, int op) {
        in.op = op;
        binaryOps(in, ops);
    }

    private void ternary(Insn in, List<String> ops) {
        in.d = dst(ops.get(0));
        in.a = src(ops.get(1), in.type);
        boolean bfe = in.op == Op.BFE;
        in.b = src(ops.get(2), bfe ? PtxType.U32 : in.type);
        in.c = src(ops.get(3), bfe ? PtxType.U32 : (in.op == Op.MAD_WIDE ? wide(in.type) : in.type));
    }

    static int wide(int t) {
        switch (t) {
            case PtxType.S16: return PtxType.S32;
            case PtxType.U16: return PtxType.U32;
            case PtxType.S32: return PtxType.S64;
            case PtxType.U32: return PtxType.U64;
            default: return t;
        }
    }

    private void floatBinary(Insn in, List<String> ops, int op32, int op64, int general) {
        if (PtxType.isHalf(in.type)) {
            unsupported(in);
            return;
        }
        boolean fast = in.mode == Op.RN && !in.ftz && !in.sat;
        in.op = fast ? (in.type == PtxType.F32 ? op32 : op64) : general;
        binaryOps(in, ops);
    }

    private void decodeMov(Insn in, List<String> ops, int type) {
        String d = ops.get(0).trim(), a = ops.get(1).trim();
        if (d.startsWith("{")) {
            in.op = Op.MOV_UNPACK;
            in.vec = vector(d, true);
            in.a = src(a, type);
        } else if (a.startsWith("{")) {
            in.op = Op.MOV_PACK;
            in.d = dst(d);
            in.vec = vector(a, false);
        } else if (a.startsWith("%clock") || a.startsWith("%globaltimer")) {
            in.op = Op.CLOCK;
            in.d = dst(d);
        } else {
            in.op = Op.MOV;
            in.d = dst(d);
            in.a = src(a, type);
        }
    }

    private int[] vector(String tok, boolean dest) {
        String inner = tok.trim();
        inner = inner.substring(1, inner.length() - 1);
        String[] els = inner.split(",");
        int[] out = new int[els.length];
        for (int k = 0; k < els.length; k++) out[k] = dest ? dst(els[k]) : srcOrSink(els[k]);
        return out;
    }

    private int srcOrSink(String tok) {
        return tok.trim().equals("_") ? -1 : src(tok, PtxType.B64);
    }

    private void decodeTestp(Insn in, List<String> ops, List<String> mods) {
        in.op = Op.TESTP;
        String[] kinds = {"finite", "infinite", "number", "notanumber", "normal", "subnormal"};
        in.mode = -1;
        for (int k = 0; k < kinds.length; k++) if (mods.contains(kinds[k])) in.mode = k;
        if (in.mode < 0) throw error("unknown testp kind");
        in.d = dst(ops.get(0));
        in.a = src(ops.get(1), in.type);
    }

    private static final String[] CMP = {"eq", "ne", "lt", "le", "gt", "ge", "lo", "ls", "hi", "hs",
            "equ", "neu", "ltu", "leu", "gtu", "geu", "num", "nan"};

    private void decodeSetp(Insn in, List<String> ops, List<String> mods, int stype, boolean isSet) {
        int cmp = -1;
        for (String m : mods) {
            for (int k = 0; k < CMP.length; k++) if (CMP[k].equals(m)) cmp = k;
            if (m.equals("and")) in.boolOp = Op.BOOL_AND;
            if (m.equals("or")) in.boolOp = Op.BOOL_OR;
            if (m.equals("xor")) in.boolOp = Op.BOOL_XOR;
        }
        if (cmp < 0) throw error("missing comparison operator");
        in.mode = cmp;
        if (isSet) {
            in.type2 = in.type; // destination type
            in.type = stype;
        }
        boolean fl = PtxType.isFloat(in.type);
        if (PtxType.isHalf(in.type)) {
            unsupported(in);
            return;
        }
        in.op = isSet ? (fl ? Op.SET_F : Op.SET_INT) : (fl ? Op.SETP_F : Op.SETP_INT);
        destinations(in, ops.get(0));
        in.a = src(ops.get(1), in.type);
        in.b = src(ops.get(2), in.type);
        if (ops.size() > 3) {
            in.negC = ops.get(3).trim().startsWith("!");
            in.c = src(ops.get(3), PtxType.PRED);
        } else if (in.boolOp != Op.BOOL_NONE) {
            throw error("boolean combine without predicate operand");
        }
    }

    private void decodeCvt(Insn in, List<String> ops, List<String> mods, List<Integer> types) {
        if (types.size() != 2) throw error("cvt needs two types");
        in.op = Op.CVT;
        in.type = types.get(0);
        in.type2 = types.get(1);
        boolean intRound = integerRounding(mods);
        // mode >= 0: rounding; bit 8 marks integer rounding (.rni ...) of a float-to-float conversion
        in.mode = rounding(mods) | (intRound ? 0x100 : 0);
        boolean pair = in.type == PtxType.F16X2 || in.type == PtxType.BF16X2;
        // .relu/.satfinite (sm_80+ forms) and the packed sources of other pair conversions are not emitted by nvcc for
        // our kernels; they fail when executed rather than run with guessed semantics.
        if (mods.contains("relu") || mods.contains("satfinite") || mods.contains("rs")
                || in.type2 == PtxType.F16X2 || in.type2 == PtxType.BF16X2 || pair && in.type2 != PtxType.F32) {
            unsupported(in);
            return;
        }
        in.d = dst(ops.get(0));
        in.a = src(ops.get(1), in.type2);
        if (pair) in.b = src(ops.get(2), in.type2); // cvt.rn.f16x2.f32 d, a, b: a to the upper half, b to the lower
    }

    private void decodeCvta(Insn in, List<String> ops, List<String> mods) {
        in.op = mods.contains("to") ? Op.CVTA_TO : Op.CVTA;
        in.space = space(mods);
        in.d = dst(ops.get(0));
        in.a = src(ops.get(1), PtxType.U64);
    }

    private int space(List<String> mods) {
        for (String m : mods) {
            switch (m) {
                case "global": return Op.GLOBAL;
                case "shared": return Op.SHARED;
                case "local": return Op.LOCAL;
                case "param": return Op.PARAM;
                case "const": return Op.CONST;
                default:
            }
        }
        return Op.GENERIC;
    }

    private void address(Insn in, String tok) {
        String t = tok.trim();
        if (!t.startsWith("[") || !t.endsWith("]")) throw error("expected an address [..], got " + t);
        t = t.substring(1, t.length() - 1).trim();
        String baseTok = t;
        long off = 0;
        int plus = t.indexOf('+', 1);
        if (plus > 0) {
            baseTok = t.substring(0, plus).trim();
            off = parseInt(t.substring(plus + 1).trim());
        } else {
            int minus = t.indexOf('-', 1);
            if (minus > 0 && t.startsWith("%")) {
                baseTok = t.substring(0, minus).trim();
                off = -parseInt(t.substring(minus + 1).trim());
            }
        }
        if (baseTok.startsWith("%")) {
            in.baseReg = src(baseTok, PtxType.U64);
            in.offset = off;
        } else if (callParamSyms.containsKey(baseTok)) {
            in.space = Op.CALLPARAM;
            in.offset = callParamSyms.get(baseTok) + off;
        } else {
            Long sym = symbolAddress(baseTok);
            if (sym != null) {
                in.offset = sym + off;
                in.localSym = localSyms.containsKey(baseTok);
            } else {
                in.offset = parseInt(baseTok) + off;
            }
        }
    }

    private void decodeLdSt(Insn in, List<String> ops, List<String> mods, boolean load) {
        in.op = load ? Op.LD : Op.ST;
        in.space = space(mods);
        if (mods.contains("v2")) in.vecN = 2;
        if (mods.contains("v4")) in.vecN = 4;
        if (mods.contains("v8")) { unsupported(in); return; }
        for (String m : mods) {
            if (m.startsWith("L1::") || m.startsWith("L2::") || m.equals("v2") || m.equals("v4")
                    || IGNORED_MODS.contains(m) || m.equals("global") || m.equals("shared") || m.equals("local")
                    || m.equals("param") || m.equals("const")) continue;
            if (m.startsWith("L2") || m.startsWith("level")) continue;
            unsupported(in);
            return;
        }
        if (in.type == PtxType.B128) { unsupported(in); return; }
        in.memSize = PtxType.size(in.type);
        String regTok = load ? ops.get(0) : ops.get(1);
        String addrTok = load ? ops.get(1) : ops.get(0);
        address(in, addrTok);
        if (in.vecN > 1) {
            in.vec = load ? vector(regTok, true) : vector(regTok, false);
        } else if (load) {
            in.d = dst(regTok);
        } else {
            in.a = src(regTok, in.type);
        }
    }

    /**
     * The {@link Op} ORD_* flags of a global ld/st/atom/red (see the memory-ordering model in {@link MemoryOrder}): .nc
     * and ldu take the non-coherent read-only path; .cg/.cv and every access that is morally strong at gpu scope
     * (.volatile, .mmio, .relaxed/.acquire/.release/.acq_rel with .gpu or .sys, atomics unless scoped to the CTA or
     * cluster) bypass L1; .acquire/.acq_rel and .release/.acq_rel add the fence of an acquire or release pattern.
     */
    static int memoryOrder(List<String> mods, boolean atomic, boolean uniform) {
        boolean narrow = mods.contains("cta") || mods.contains("cluster");
        boolean acquire = mods.contains("acquire") || mods.contains("acq_rel");
        boolean release = mods.contains("release") || mods.contains("acq_rel");
        boolean ordered = acquire || release || mods.contains("relaxed");
        boolean strong = mods.contains("volatile") || mods.contains("mmio") || (ordered && !narrow) || (atomic && !narrow);
        int f = 0;
        if (mods.contains("nc") || uniform) f |= Op.ORD_NC;
        if (strong || mods.contains("cg") || mods.contains("cv")) f |= Op.ORD_BYPASS;
        if (strong) f |= Op.ORD_STRONG;
        if (strong && acquire) f |= Op.ORD_ACQUIRE;
        if (strong && release) f |= Op.ORD_RELEASE;
        return f;
    }

    /** Whether a membar/fence orders memory for other blocks: membar.gl/.sys, fence.sc/.acq_rel at .gpu or .sys. */
    static boolean deviceFence(String base, List<String> mods) {
        if (base.equals("membar")) return mods.contains("gl") || mods.contains("sys");
        if (mods.contains("proxy") || mods.contains("mbarrier_init")) return false;
        return mods.contains("gpu") || mods.contains("sys");
    }

    private void decodeAtom(Insn in, List<String> ops, List<String> mods, boolean atom) {
        in.op = atom ? Op.ATOM : Op.RED;
        in.space = space(mods);
        String[] names = {"add", "min", "max", "inc", "dec", "cas", "exch", "and", "or", "xor"};
        in.mode = -1;
        for (int k = 0; k < names.length; k++) if (mods.contains(names[k])) in.mode = k;
        if (in.mode < 0 || PtxType.isHalf(in.type)
                || mods.contains("v2") || mods.contains("v4")) {
            unsupported(in);
            return;
        }
        in.memSize = PtxType.size(in.type);
        int k = 0;
        if (atom) in.d = dst(ops.get(k++));
        address(in, ops.get(k++));
        in.a = src(ops.get(k++), in.type);
        if (in.mode == Op.A_CAS) in.b = src(ops.get(k), in.type);
    }

    private void decodeBar(Insn in, List<String> ops, List<String> mods) {
        if (mods.contains("warp")) {
            in.op = Op.BAR_WARP;
            in.a = src(ops.get(0), PtxType.B32);
            return;
        }
        if (mods.contains("arrive")) { unsupported(in); return; }
        if (mods.contains("red")) {
            in.op = Op.BAR_RED;
            in.mode = mods.contains("popc") ? 0 : mods.contains("and") ? 1 : 2;
            in.d = dst(ops.get(0));
            in.a = src(ops.get(1), PtxType.U32);
            if (ops.size() == 4) in.b = src(ops.get(2), PtxType.U32);
            String p = ops.get(ops.size() - 1).trim();
            in.negC = p.startsWith("!");
            in.c = src(p, PtxType.PRED);
            return;
        }
        in.op = Op.BAR;
        in.a = src(ops.get(0), PtxType.U32);
        if (ops.size() > 1) in.b = src(ops.get(1), PtxType.U32);
    }

    /** call[.uni] [(ret),] name[, (args)]; indirect calls (through a register) are unsupported. */
    private void decodeCall(Insn in, List<String> ops) {
        int k = 0;
        Insn.CallInfo ci = new Insn.CallInfo();
        String first = ops.get(0).trim();
        if (first.startsWith("(")) {
            String r = first.substring(1, first.length() - 1).trim();
            Integer off = callParamSyms.get(r);
            if (off == null) throw error("unknown return parameter " + r);
            ci.retOffset = off;
            k = 1;
        }
        String callee = ops.get(k++).trim();
        if (callee.startsWith("%")) {
            unsupported(in);
            return;
        }
        ci.callee = callee;
        List<Integer> args = new ArrayList<>();
        if (k < ops.size()) {
            String list = ops.get(k).trim();
            if (list.startsWith("(")) {
                for (String a : PtxParser.splitTop(list.substring(1, list.length() - 1))) {
                    if (a.isBlank()) continue;
                    Integer off = callParamSyms.get(a.trim());
                    if (off == null) throw error("call argument " + a.trim() + " is not a .param variable");
                    args.add(off);
                }
            }
        }
        ci.argOffsets = args.stream().mapToInt(Integer::intValue).toArray();
        in.op = Op.CALL;
        in.call = ci;
    }

    /** Sets in.d, and in.d2 for a predicate pair "d|d2" (setp and shfl write a second predicate). */
    private void destinations(Insn in, String d) {
        int bar = d.indexOf('|');
        if (bar >= 0) {
            in.d = dst(d.substring(0, bar));
            in.d2 = dst(d.substring(bar + 1));
        } else {
            in.d = dst(d);
        }
    }

    private void decodeShfl(Insn in, List<String> ops, List<String> mods) {
        if (!mods.contains("sync")) { unsupported(in); return; }
        in.op = Op.SHFL;
        in.mode = mods.contains("up") ? Op.SHFL_UP : mods.contains("down") ? Op.SHFL_DOWN
                : mods.contains("bfly") ? Op.SHFL_BFLY : Op.SHFL_IDX;
        destinations(in, ops.get(0));
        in.a = src(ops.get(1), PtxType.B32);
        in.b = src(ops.get(2), PtxType.U32);
        in.c = src(ops.get(3), PtxType.U32);
        in.e = src(ops.get(4), PtxType.U32);
    }

    private void decodeVote(Insn in, List<String> ops, List<String> mods) {
        in.op = Op.VOTE;
        in.mode = mods.contains("all") ? Op.VOTE_ALL : mods.contains("any") ? Op.VOTE_ANY
                : mods.contains("uni") ? Op.VOTE_UNI : Op.VOTE_BALLOT;
        in.d = dst(ops.get(0));
        in.negA = ops.get(1).trim().startsWith("!");
        in.a = src(ops.get(1), PtxType.PRED);
        in.e = ops.size() > 2 ? src(ops.get(2), PtxType.U32) : -1; // non-.sync vote: the executing lanes
    }
}
