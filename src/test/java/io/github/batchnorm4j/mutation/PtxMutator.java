package io.github.batchnorm4j.mutation;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Enumerates the single-instruction mutants of a PTX text (what a plausible one-token slip in a kernel would look
 * like to ptxas), and applies one. Pure text work: no emulator, no files.
 *
 * <p>Operators (each mutant changes exactly one instruction line, and never the number of lines, so PTX line numbers
 * in error messages and coverage stay valid):
 * <ul>
 *   <li>{@link Operator#ARITH}: add↔sub, mul↔div (float), integer mul→add, div↔rem, and↔or, xor→or, shl↔shr,
 *       shr signedness, min↔max, neg→mov, fma/mad→mul (addend dropped), shfl down→up;</li>
 *   <li>{@link Operator#SWAP}: operands of sub and selp exchanged;</li>
 *   <li>{@link Operator#CMP}: setp comparison moved across its boundary (lt↔le, gt↔ge) or negated (eq↔ne, lt↔ge,
 *       le↔gt);</li>
 *   <li>{@link Operator#GUARD}: an instruction's predicate guard negated ({@code @%p} ↔ {@code @!%p});</li>
 *   <li>{@link Operator#CONST}: an integer immediate ±1, a float immediate ±1.0 (barrier ids are left alone: any id
 *       that all threads use is the same barrier);</li>
 *   <li>{@link Operator#SYNC}: a fence or barrier deleted ({@code membar}, {@code fence}, {@code bar}/{@code barrier});</li>
 *   <li>{@link Operator#LOAD}: a global load's cache/ordering qualifier changed ({@code .cg} → none, {@code .nc},
 *       {@code .ca}; none → {@code .nc}; {@code .nc} → none; {@code .volatile}/{@code .relaxed}/{@code .acquire}
 *       → none).</li>
 * </ul>
 *
 * <p>Mutants that provably change nothing are marked {@link PtxMutant#equivalent()} with the reason: a text identical to
 * the original, an operand swap of identical operands, dropping {@code .nc} (a coherent load returns the same bytes
 * wherever {@code .nc} is allowed), and any change to nvcc's 64-bit division dispatch ({@link #divisionDispatch}),
 * which can only matter for 2^32 or more units per channel.
 */
public final class PtxMutator {

    /** Mutation operators. */
    public enum Operator {
        ARITH("arith"), SWAP("swap"), CMP("cmp"), GUARD("guard"), CONST("const"), SYNC("sync"), LOAD("load");

        private final String label;

        Operator(String label) {
            this.label = label;
        }

        /** The name used in reports and on the command line. */
        public String label() {
            return label;
        }

        /** The operator named {@code label}. */
        public static Operator of(String label) {
            for (Operator o : values()) {
                if (o.label.equalsIgnoreCase(label)) return o;
            }
            throw new IllegalArgumentException("unknown mutation operator '" + label + "'; expected one of "
                    + List.of(values()).stream().map(Operator::label).toList());
        }
    }

    /** An instruction line: indentation, optional guard, opcode, operands. */
    private static final Pattern INSTRUCTION =
            Pattern.compile("^(\\s+)(@!?%[\\w]+\\s+)?([a-z][a-z0-9_.]*)(?:\\s+(.*?))?\\s*;\\s*(//.*)?$");
    private static final Pattern FUNCTION = Pattern.compile("\\.(?:entry|func)\\s+(?:\\([^)]*\\)\\s*)?([A-Za-z_$][\\w$]*)");
    /** A decimal integer immediate standing alone (not part of a register, label or identifier). */
    private static final Pattern INT_IMMEDIATE = Pattern.compile("(?<![\\w.%$])-?\\d+(?![\\w.])");
    /** A float (0f + 8 hex digits) or double (0d + 16 hex digits) immediate. */
    private static final Pattern FLOAT_IMMEDIATE = Pattern.compile("(?<![\\w%$])0([fd])([0-9A-Fa-f]{8}(?:[0-9A-Fa-f]{8})?)(?![\\w])");

    private static final Map<String, String> BOUNDARY = Map.of("lt", "le", "le", "lt", "gt", "ge", "ge", "gt",
            "ltu", "leu", "leu", "ltu", "gtu", "geu", "geu", "gtu");
    private static final Map<String, String> NEGATION = Map.ofEntries(Map.entry("eq", "ne"), Map.entry("ne", "eq"),
            Map.entry("lt", "ge"), Map.entry("ge", "lt"), Map.entry("le", "gt"), Map.entry("gt", "le"),
            Map.entry("lo", "hs"), Map.entry("hs", "lo"), Map.entry("ls", "hi"), Map.entry("hi", "ls"),
            Map.entry("equ", "neu"), Map.entry("neu", "equ"), Map.entry("ltu", "geu"), Map.entry("geu", "ltu"),
            Map.entry("leu", "gtu"), Map.entry("gtu", "leu"));

    private PtxMutator() {
    }

    /** Equivalence reason of the mutants of a 64-bit division's path selection (see {@link #divisionDispatch}). */
    static final String DIVISION_DISPATCH = "picks the 64-bit or the 32-bit division, which agree for operands below "
            + "2^32 (a wrong pick needs 2^32 units per channel: more than a GPU or the emulator holds)";
    private static final Pattern DISPATCH_AND = Pattern.compile("^\\s+and\\.b64\\s+(%rd\\d+),\\s*(%rd\\d+),\\s*-4294967296;");
    private static final Pattern DISPATCH_OR = Pattern.compile("^\\s+or\\.b64\\s+(%rd\\d+),\\s*%rd\\d+,\\s*%rd\\d+;");
    private static final Pattern DISPATCH_SETP = Pattern.compile("^\\s+setp\\.(?:eq|ne)\\.s64\\s+(%p\\d+),\\s*(%rd\\d+),\\s*0;");
    /** {@code mov.pred %pN, 0;}: nvcc's constant-false operand of a negating xor.pred. */
    private static final Pattern FALSE_PRED = Pattern.compile("^\\s+mov\\.pred\\s+(%p\\d+),\\s*0;");
    private static final Pattern DISPATCH_BRA = Pattern.compile("^\\s+@!?(%p\\d+)\\s+bra");

    /**
     * The 0-based lines of nvcc's 64-bit division dispatch, {@code [or.b64 t, a, b;] and.b64 h, t, -2^32;
     * setp.eq.s64 p, h, 0; @p bra 32-bit-path}: they only choose between a 64-bit and a 32-bit division that give the
     * same quotient whenever the operands fit in 32 bits.
     */
    static java.util.Set<Integer> divisionDispatch(String[] lines) {
        java.util.Set<Integer> out = new java.util.HashSet<>();
        for (int i = 0; i + 2 < lines.length; i++) {
            Matcher and = DISPATCH_AND.matcher(lines[i]);
            if (!and.find()) continue;
            Matcher setp = DISPATCH_SETP.matcher(lines[i + 1]);
            if (!setp.find() || !setp.group(2).equals(and.group(1))) continue;
            Matcher bra = DISPATCH_BRA.matcher(lines[i + 2]);
            if (!bra.find() || !bra.group(1).equals(setp.group(1))) continue;
            out.add(i);
            out.add(i + 1);
            out.add(i + 2);
            if (i > 0) {
                Matcher or = DISPATCH_OR.matcher(lines[i - 1]);
                if (or.find() && or.group(1).equals(and.group(2))) out.add(i - 1);
            }
        }
        return out;
    }

    /** Every mutant of {@code ptx}, in line order. */
    public static List<PtxMutant> mutants(String module, String ptx) {
        List<PtxMutant> out = new ArrayList<>();
        String[] lines = ptx.split("\n", -1);
        java.util.Set<Integer> dispatch = divisionDispatch(lines);
        java.util.Set<String> falsePreds = new java.util.HashSet<>(); // predicates set to false in this function
        String function = "";
        for (int i = 0; i < lines.length; i++) {
            String text = lines[i];
            if (text.contains(".entry") || text.contains(".func")) {
                Matcher f = FUNCTION.matcher(text);
                if (f.find()) function = f.group(1);
            }
            if (text.isEmpty() || !Character.isWhitespace(text.charAt(0)) || text.endsWith(":")) continue;
            Matcher fp = FALSE_PRED.matcher(text);
            if (fp.find()) falsePreds.add(fp.group(1));
            Matcher m = INSTRUCTION.matcher(text);
            if (!m.matches()) continue;
            Insn insn = new Insn(m.group(1), m.group(2) == null ? "" : m.group(2), m.group(3),
                    m.group(4) == null ? "" : m.group(4));
            List<Change> changes = new ArrayList<>();
            arith(insn, changes);
            swap(insn, changes);
            cmp(insn, changes);
            guard(insn, changes);
            constants(insn, changes);
            sync(insn, changes);
            load(insn, changes);
            String original = insn.text();
            for (Change c : changes) {
                String equivalent = c.equivalent;
                if (equivalent == null && normalize(c.text).equals(normalize(original))) {
                    equivalent = "identical PTX after mutation";
                }
                if (equivalent == null && dispatch.contains(i)) equivalent = DIVISION_DISPATCH;
                if (equivalent == null && c.op == Operator.SWAP && insn.opcode().matches("sub(\\.rn)?\\.f(32|64)")
                        && onlySquared(lines, i, operands(insn.operands()).get(0))) {
                    equivalent = ONLY_SQUARED;
                }
                if (equivalent == null && c.op == Operator.ARITH && insn.opcode().equals("xor.pred")
                        && c.text.startsWith(insn.guard() + "or.pred")) {
                    List<String> ops = operands(insn.operands());
                    if (ops.size() == 3 && (falsePreds.contains(ops.get(1)) || falsePreds.contains(ops.get(2)))) {
                        equivalent = "xor and or agree when one operand is false (nvcc's mov.pred p, 0; xor.pred)";
                    }
                }
                out.add(new PtxMutant(module, i + 1, function, c.op, original.trim(), c.text.trim(), equivalent));
            }
        }
        return out;
    }

    /** {@code ptx} with mutant {@code m} applied (checks that the line still holds the original instruction). */
    public static String apply(String ptx, PtxMutant m) {
        String[] lines = ptx.split("\n", -1);
        int i = m.line() - 1;
        if (i < 0 || i >= lines.length) {
            throw new IllegalArgumentException("mutant " + m.id() + ": line " + m.line() + " is outside the module ("
                    + lines.length + " lines)");
        }
        Matcher x = INSTRUCTION.matcher(lines[i]);
        if (!x.matches()) throw new IllegalArgumentException("mutant " + m.id() + ": line " + m.line() + " is not an instruction: " + lines[i]);
        Insn insn = new Insn(x.group(1), x.group(2) == null ? "" : x.group(2), x.group(3), x.group(4) == null ? "" : x.group(4));
        if (!normalize(insn.text()).equals(normalize(m.original()))) {
            throw new IllegalArgumentException("mutant " + m.id() + ": line " + m.line() + " is '" + lines[i].trim()
                    + "', expected '" + m.original() + "' (the PTX changed since the mutant was made)");
        }
        lines[i] = insn.indent + m.mutated();
        return String.join("\n", lines);
    }

    private static final Pattern WHITESPACE = Pattern.compile("\\s+");

    private static String normalize(String s) {
        return WHITESPACE.matcher(s.trim()).replaceAll(" ");
    }

    // ---- operators -------------------------------------------------------------------------------------------------

    static final String ONLY_SQUARED = "the difference is only squared: fl(b - a) = -fl(a - b) exactly, so (b - a)^2 = (a - b)^2";

    /**
     * Whether register {@code reg}, written on line {@code def}, appears anywhere else in its function (loops
     * included) only as both factors of a {@code mul} that writes another register.
     */
    static boolean onlySquared(String[] lines, int def, String reg) {
        Pattern use = Pattern.compile(Pattern.quote(reg) + "(?![0-9])");
        int start = def;
        while (start > 0 && !lines[start].startsWith("{")) start--;
        int reads = 0;
        for (int j = start + 1; j < lines.length && !lines[j].startsWith("}"); j++) {
            if (j == def) continue;
            String t = lines[j].trim();
            if (!use.matcher(t).find()) continue;
            Matcher m = Pattern.compile("^mul(\\.rn)?\\.f(32|64)\\s+(%\\w+),\\s*(%\\w+),\\s*(%\\w+);").matcher(t);
            if (!m.find() || !m.group(4).equals(reg) || !m.group(5).equals(reg) || m.group(3).equals(reg)) return false;
            reads++;
        }
        return reads > 0;
    }

    private record Insn(String indent, String guard, String opcode, String operands) {
        String text() {
            return guard + opcode + (operands.isEmpty() ? "" : " \t" + operands) + ";";
        }

        Insn withOpcode(String op) {
            return new Insn(indent, guard, op, operands);
        }

        Insn withOperands(String ops) {
            return new Insn(indent, guard, opcode, ops);
        }

        String base() {
            int dot = opcode.indexOf('.');
            return dot < 0 ? opcode : opcode.substring(0, dot);
        }

        List<String> parts() {
            return List.of(opcode.split("\\."));
        }
    }

    private record Change(Operator op, String text, String equivalent) {
        Change(Operator op, Insn insn) {
            this(op, insn.text(), null);
        }
    }

    private static String type(Insn insn) {
        List<String> p = insn.parts();
        return p.get(p.size() - 1);
    }

    private static boolean isFloat(String type) {
        return type.startsWith("f");
    }

    private static void arith(Insn insn, List<Change> out) {
        String base = insn.base();
        String type = type(insn);
        List<String> p = insn.parts();
        switch (base) {
            case "add", "sub" -> {
                if (p.contains("cc") || p.contains("sat")) return;
                out.add(new Change(Operator.ARITH, insn.withOpcode((base.equals("add") ? "sub" : "add")
                        + insn.opcode().substring(3))));
            }
            case "mul" -> {
                if (isFloat(type)) {
                    out.add(new Change(Operator.ARITH, insn.withOpcode("div" + roundingOrRn(insn) + "." + type)));
                } else if (p.contains("lo")) {
                    out.add(new Change(Operator.ARITH, insn.withOpcode("add." + type)));
                }
            }
            case "div" -> {
                if (isFloat(type)) {
                    if (!p.contains("approx") && !p.contains("full")) {
                        out.add(new Change(Operator.ARITH, insn.withOpcode("mul" + roundingOrRn(insn) + "." + type)));
                    }
                } else {
                    out.add(new Change(Operator.ARITH, insn.withOpcode("rem." + type)));
                }
            }
            case "rem" -> out.add(new Change(Operator.ARITH, insn.withOpcode("div." + type)));
            case "and" -> out.add(new Change(Operator.ARITH, insn.withOpcode("or." + type)));
            case "or" -> out.add(new Change(Operator.ARITH, insn.withOpcode("and." + type)));
            case "xor" -> out.add(new Change(Operator.ARITH, insn.withOpcode("or." + type)));
            case "shl" -> out.add(new Change(Operator.ARITH, insn.withOpcode("shr.u" + type.substring(1))));
            case "shr" -> {
                out.add(new Change(Operator.ARITH, insn.withOpcode("shl.b" + type.substring(1))));
                if (type.startsWith("s")) out.add(new Change(Operator.ARITH, insn.withOpcode("shr.u" + type.substring(1))));
                if (type.startsWith("u")) out.add(new Change(Operator.ARITH, insn.withOpcode("shr.s" + type.substring(1))));
            }
            case "min" -> out.add(new Change(Operator.ARITH, insn.withOpcode("max" + insn.opcode().substring(3))));
            case "max" -> out.add(new Change(Operator.ARITH, insn.withOpcode("min" + insn.opcode().substring(3))));
            case "neg" -> out.add(new Change(Operator.ARITH, insn.withOpcode("mov." + (isFloat(type) ? type : "b" + type.substring(1)))));
            case "fma", "mad" -> {
                List<String> ops = operands(insn.operands());
                if (ops.size() != 4) return;
                String op = base.equals("fma") ? "mul" + roundingOrRn(insn) + "." + type
                        : p.contains("wide") ? "mul.wide." + type : isFloat(type) ? "mul." + type : "mul.lo." + type;
                out.add(new Change(Operator.ARITH, new Insn(insn.indent(), insn.guard(), op,
                        String.join(", ", ops.subList(0, 3)))));
            }
            case "shfl" -> {
                if (p.contains("down")) out.add(new Change(Operator.ARITH, insn.withOpcode(insn.opcode().replace(".down", ".up"))));
            }
            default -> {
            }
        }
    }

    /** ".rn" (or the instruction's own rounding mode), for float mul/div/fma replacements. */
    private static String roundingOrRn(Insn insn) {
        for (String r : new String[]{"rn", "rz", "rm", "rp"}) {
            if (insn.parts().contains(r)) return "." + r;
        }
        return ".rn";
    }

    private static void swap(Insn insn, List<Change> out) {
        String base = insn.base();
        List<String> ops = operands(insn.operands());
        if (base.equals("sub") && ops.size() == 3) {
            String eq = ops.get(1).equals(ops.get(2)) ? "identical operands exchanged" : null;
            out.add(new Change(Operator.SWAP, insn.withOperands(ops.get(0) + ", " + ops.get(2) + ", " + ops.get(1)).text(), eq));
        } else if (base.equals("selp") && ops.size() == 4) {
            String eq = ops.get(1).equals(ops.get(2)) ? "identical operands exchanged" : null;
            out.add(new Change(Operator.SWAP, insn.withOperands(ops.get(0) + ", " + ops.get(2) + ", " + ops.get(1) + ", "
                    + ops.get(3)).text(), eq));
        }
    }

    private static void cmp(Insn insn, List<Change> out) {
        if (!insn.base().equals("setp")) return;
        List<String> p = insn.parts();
        if (p.size() < 3) return;
        String c = p.get(1);
        for (Map<String, String> table : List.of(BOUNDARY, NEGATION)) {
            String to = table.get(c);
            if (to == null) continue;
            List<String> q = new ArrayList<>(p);
            q.set(1, to);
            out.add(new Change(Operator.CMP, insn.withOpcode(String.join(".", q))));
        }
    }

    private static void guard(Insn insn, List<Change> out) {
        String g = insn.guard();
        if (g.isEmpty()) return;
        String flipped = g.startsWith("@!") ? "@" + g.substring(2) : "@!" + g.substring(1);
        out.add(new Change(Operator.GUARD, new Insn(insn.indent(), flipped, insn.opcode(), insn.operands())));
    }

    private static void constants(Insn insn, List<Change> out) {
        String base = insn.base();
        if (base.equals("bar") || base.equals("barrier") || base.equals("bra") || base.equals("call")) return;
        if (insn.opcode().startsWith("ld.param")) return; // parameter names, not values
        String ops = insn.operands();
        Matcher m = INT_IMMEDIATE.matcher(ops);
        while (m.find()) {
            long v = Long.parseLong(m.group());
            for (long d : new long[]{1, -1}) {
                String s = ops.substring(0, m.start()) + (v + d) + ops.substring(m.end());
                out.add(new Change(Operator.CONST, insn.withOperands(s)));
            }
        }
        Matcher f = FLOAT_IMMEDIATE.matcher(ops);
        while (f.find()) {
            boolean dbl = f.group(1).equals("d");
            String hex = f.group(2);
            if (dbl != (hex.length() == 16)) continue;
            for (double d : new double[]{1, -1}) {
                String lit;
                if (dbl) {
                    double v = Double.longBitsToDouble(Long.parseUnsignedLong(hex, 16));
                    lit = "0d" + String.format(Locale.ROOT, "%016X", Double.doubleToRawLongBits(v + d));
                } else {
                    float v = Float.intBitsToFloat(Integer.parseUnsignedInt(hex, 16));
                    lit = "0f" + String.format(Locale.ROOT, "%08X", Float.floatToRawIntBits((float) (v + d)));
                }
                out.add(new Change(Operator.CONST, insn.withOperands(ops.substring(0, f.start()) + lit + ops.substring(f.end()))));
            }
        }
    }

    private static void sync(Insn insn, List<Change> out) {
        String base = insn.base();
        if (base.equals("membar") || base.equals("fence") || base.equals("bar") || base.equals("barrier")) {
            out.add(new Change(Operator.SYNC, "// mutant: deleted " + normalize(insn.text()), null));
        }
    }

    private static void load(Insn insn, List<Change> out) {
        if (!insn.base().equals("ld")) return;
        List<String> p = insn.parts();
        if (!p.contains("global")) return;
        String op = insn.opcode();
        if (p.contains("nc")) {
            out.add(new Change(Operator.LOAD, insn.withOpcode(op.replace(".nc", "")).text(),
                    "drops .nc: a coherent load returns the same bytes wherever .nc is allowed"));
        } else if (p.contains("cg")) {
            out.add(new Change(Operator.LOAD, insn.withOpcode(op.replace(".cg", ""))));
            out.add(new Change(Operator.LOAD, insn.withOpcode(op.replace(".cg", ".nc"))));
            out.add(new Change(Operator.LOAD, insn.withOpcode(op.replace(".cg", ".ca"))));
        } else if (p.contains("volatile") || p.contains("relaxed") || p.contains("acquire")) {
            String plain = op.replace(".volatile", "").replace(".relaxed", "").replace(".acquire", "")
                    .replace(".gpu", "").replace(".sys", "").replace(".cta", "");
            out.add(new Change(Operator.LOAD, insn.withOpcode(plain)));
        } else if (!p.contains("ca") && !p.contains("cs") && !p.contains("lu") && !p.contains("cv")) {
            out.add(new Change(Operator.LOAD, insn.withOpcode(op.replace("ld.global", "ld.global.nc"))));
        }
    }

    /** Splits an operand list at top-level commas (not inside {} or []). */
    static List<String> operands(String s) {
        List<String> out = new ArrayList<>();
        int depth = 0;
        int start = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '{' || c == '[') depth++;
            else if (c == '}' || c == ']') depth--;
            else if (c == ',' && depth == 0) {
                out.add(s.substring(start, i).trim());
                start = i + 1;
            }
        }
        if (!s.isBlank()) out.add(s.substring(start).trim());
        return out;
    }
}
