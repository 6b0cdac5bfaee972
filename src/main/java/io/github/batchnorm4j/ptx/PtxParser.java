package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.gpu.DeviceException;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Parses the PTX text nvcc emits into {@link PtxModule}s of decoded {@link PtxFunction}s.
 *
 * <p>The text is split into statements (ending at {@code ;}, or block braces), comments removed, line numbers kept.
 * Module-level variables are placed through {@link ModuleSymbols}; each function body is decoded by
 * {@link InsnDecoder}. Syntax errors throw {@link DeviceException} with the module name and line; instructions that
 * parse but are not implemented decode to {@link Op#UNSUPPORTED} and fail only if executed (see
 * {@link PtxModule#unsupported()}).
 */
final class PtxParser {

    /** One statement: its text (may hold newlines) and the line its first character is on. */
    record Stmt(String text, int line) {
    }

    /** A module-level shared variable (its offset is assigned per function). */
    record SharedVar(String name, int bytes, int align, boolean extern) {
    }

    private final String moduleName;
    private final ModuleSymbols symbols;
    private final Map<String, Long> globalSymbols = new HashMap<>();
    private final List<SharedVar> moduleShared = new ArrayList<>();

    private PtxParser(String moduleName, ModuleSymbols symbols) {
        this.moduleName = moduleName;
        this.symbols = symbols;
    }

    /** Parses a whole module. */
    static PtxModule parse(String moduleName, String text, ModuleSymbols symbols) {
        PtxModule module = new PtxParser(moduleName, symbols).run(text);
        String source = Coverage.sourceHash(text);
        for (PtxFunction f : module.functions.values()) f.source = source;
        return module;
    }

    DeviceException error(int line, String msg) {
        return new DeviceException("PTX module " + moduleName + " line " + line + ": " + msg);
    }

    private PtxModule run(String text) {
        List<Stmt> stmts = split(text);
        PtxModule module = new PtxModule(moduleName);
        int i = 0;
        while (i < stmts.size()) {
            Stmt s = stmts.get(i);
            String t = s.text().trim();
            if (t.equals("{") || t.equals("}")) {
                throw error(s.line(), "unexpected '" + t + "' at module level");
            }
            String[] w = t.split("\\s+");
            if (w[0].equals(".version")) {
                module.version = w[1];
                i++;
            } else if (w[0].equals(".target")) {
                module.target = t.substring(7).trim();
                i++;
            } else if (w[0].equals(".address_size")) {
                module.addressSize = Integer.parseInt(w[1]);
                if (module.addressSize != 64) throw error(s.line(), "only .address_size 64 is supported");
                i++;
            } else if (t.startsWith(".file") || t.startsWith(".section") || t.startsWith(".pragma")) {
                i++;
            } else if (t.contains(".entry") || t.contains(".func")) {
                boolean hasBody = i + 1 < stmts.size() && stmts.get(i + 1).text().trim().equals("{");
                if (!hasBody) { // a prototype (.extern .func ...;)
                    i++;
                    continue;
                }
                int depth = 0;
                int j = i + 1;
                List<Stmt> body = new ArrayList<>();
                for (; j < stmts.size(); j++) {
                    String bt = stmts.get(j).text().trim();
                    if (bt.equals("{")) depth++;
                    else if (bt.equals("}")) depth--;
                    if (depth == 0) break;
                    if (!(bt.equals("{") && depth == 1)) body.add(stmts.get(j));
                }
                if (j >= stmts.size()) throw error(s.line(), "function body not closed");
                PtxFunction f = parseFunction(s, body);
                module.functions.put(f.name, f);
                i = j + 1;
            } else if (t.matches("(?s).*(^|\\s)\\.(shared|global|const)\\s.*")) {
                moduleVariable(s);
                i++;
            } else {
                throw error(s.line(), "unknown module-level statement: " + firstLine(t));
            }
        }
        return module;
    }

    static String firstLine(String t) {
        int nl = t.indexOf('\n');
        return nl < 0 ? t : t.substring(0, nl);
    }

    /** Splits PTX text into statements without comments. */
    List<Stmt> split(String text) {
        List<Stmt> out = new ArrayList<>();
        StringBuilder cur = new StringBuilder();
        int line = 1, startLine = 1;
        int inner = 0; // braces opened inside the current statement (vector operands, initializers)
        int paren = 0;
        boolean blank = true; // cur holds only whitespace (tracked, not recomputed per character: statements are long)
        int n = text.length();
        for (int i = 0; i < n; i++) {
            char ch = text.charAt(i);
            if (ch == '/' && i + 1 < n && text.charAt(i + 1) == '/') {
                while (i < n && text.charAt(i) != '\n') i++;
                i--;
                continue;
            }
            if (ch == '/' && i + 1 < n && text.charAt(i + 1) == '*') {
                int end = text.indexOf("*/", i + 2);
                if (end < 0) end = n - 2;
                for (int k = i; k < end + 2; k++) if (text.charAt(k) == '\n') line++;
                i = end + 1;
                continue;
            }
            if (ch == '"') { // strings (e.g. .pragma "nounroll") are kept whole
                int end = text.indexOf('"', i + 1);
                if (end < 0) end = n - 1;
                if (blank) startLine = line;
                cur.append(text, i, end + 1);
                blank = false;
                i = end;
                continue;
            }
            if (ch == '\n') {
                // these directives end at the end of their line, without ';'
                String tt = blank ? "" : cur.toString().stripLeading();
                if (tt.startsWith(".version") || tt.startsWith(".target") || tt.startsWith(".address_size")
                        || tt.startsWith(".file") || tt.startsWith(".loc")) {
                    flush(out, cur, startLine);
                    blank = true;
                }
                line++;
            }
            if (ch == '(') paren++;
            if (ch == ')') paren--;
            if (ch == '{' && inner == 0 && paren == 0) {
                String tt = cur.toString().trim();
                boolean blockOpen = tt.isEmpty() || endsWithLabel(tt)
                        || (tt.startsWith(".") && !tt.contains("="));
                if (blockOpen) {
                    flush(out, cur, startLine);
                    blank = true;
                    out.add(new Stmt("{", line));
                    continue;
                }
            }
            if (ch == '}' && inner == 0) {
                flush(out, cur, startLine);
                blank = true;
                out.add(new Stmt("}", line));
                continue;
            }
            if (ch == '{') inner++;
            if (ch == '}') inner--;
            if (ch == ';' && inner == 0) {
                flush(out, cur, startLine);
                blank = true;
                continue;
            }
            if (blank) {
                if (Character.isWhitespace(ch)) continue;   // whitespace between statements is dropped
                cur.setLength(0);
                startLine = line;
                blank = false;
            }
            cur.append(ch);
        }
        flush(out, cur, startLine);
        return out;
    }

    private static boolean endsWithLabel(String t) {
        return t.endsWith(":") && !t.endsWith("::");
    }

    private static void flush(List<Stmt> out, StringBuilder cur, int startLine) {
        String t = cur.toString();
        if (!t.isBlank()) {
            // a trailing label before a block brace must stay a statement of its own
            out.add(new Stmt(t, startLine));
        }
        cur.setLength(0);
    }

    // ---------------------------------------------------------------- variables

    /** Parsed variable declaration. */
    record VarDecl(String space, String name, int typeCode, long bytes, int align, boolean extern, String init) {
    }

    VarDecl parseVar(Stmt s) {
        String t = s.text().trim();
        String init = null;
        int eq = t.indexOf('=');
        if (eq >= 0) {
            init = t.substring(eq + 1).trim();
            t = t.substring(0, eq).trim();
        }
        String[] w = t.split("\\s+");
        String space = null;
        int type = -1, align = 0, vec = 1;
        boolean extern = false;
        String nameTok = null;
        for (int k = 0; k < w.length; k++) {
            String x = w[k];
            switch (x) {
                case ".extern": extern = true; break;
                case ".visible": case ".weak": case ".common": case ".ptr": break;
                case ".shared": case ".global": case ".const": case ".local": space = x.substring(1); break;
                case ".align": align = Integer.parseInt(w[++k]); break;
                case ".v2": vec = 2; break;
                case ".v4": vec = 4; break;
                default:
                    if (x.startsWith(".") && PtxType.of(x.substring(1)) > 0) type = PtxType.of(x.substring(1));
                    else if (!x.startsWith(".")) nameTok = x;
                    else throw error(s.line(), "unknown variable attribute " + x);
            }
        }
        if (space == null || type < 0 || nameTok == null) throw error(s.line(), "cannot parse variable: " + t);
        long count = 1;
        String name = nameTok;
        int br = nameTok.indexOf('[');
        if (br >= 0) {
            name = nameTok.substring(0, br);
            String dims = nameTok.substring(br);
            for (String d : dims.split("\\]")) {
                String ds = d.replace("[", "").trim();
                if (ds.isEmpty()) {
                    count = 0; // extern array of unknown size
                } else {
                    count *= Long.parseLong(ds);
                }
            }
        }
        int elem = PtxType.size(type) * vec;
        if (align == 0) align = elem;
        return new VarDecl(space, name, type, count * elem, align, extern, init);
    }

    private void moduleVariable(Stmt s) {
        VarDecl v = parseVar(s);
        switch (v.space()) {
            case "shared":
                moduleShared.add(new SharedVar(v.name(), (int) v.bytes(), v.align(), v.extern() || v.bytes() == 0));
                break;
            case "global":
            case "const":
                byte[] init = initializer(v, s.line());
                long addr = symbols.allocate(v.name(), Math.max(1, v.bytes()), init);
                globalSymbols.put(v.name(), addr);
                break;
            default:
                throw error(s.line(), "module-level ." + v.space() + " variables are not supported");
        }
    }

    private byte[] initializer(VarDecl v, int line) {
        byte[] out = new byte[(int) Math.max(1, v.bytes())];
        if (v.init() == null) return out;
        String body = v.init().replace("{", " ").replace("}", " ").trim();
        if (body.isEmpty()) return out;
        String[] items = body.split("\\s*,\\s*");
        int size = PtxType.size(v.typeCode());
        int pos = 0;
        for (String it : items) {
            if (pos + size > out.length) throw error(line, "too many initializers for " + v.name());
            long bits = InsnDecoder.parseImmediate(it.trim(), v.typeCode());
            for (int k = 0; k < size; k++) out[pos + k] = (byte) (bits >>> (8 * k));
            pos += size;
        }
        return out;
    }

    // ---------------------------------------------------------------- functions

    private PtxFunction parseFunction(Stmt header, List<Stmt> body) {
        String h = header.text().trim();
        boolean entry = h.contains(".entry");
        // the optional return-parameter list of a .func
        String afterKw = h.substring(h.indexOf(entry ? ".entry" : ".func") + (entry ? 6 : 5)).trim();
        String retList = null;
        if (afterKw.startsWith("(")) {
            int close = matching(afterKw, 0);
            retList = afterKw.substring(1, close);
            afterKw = afterKw.substring(close + 1).trim();
        }
        int open = afterKw.indexOf('(');
        String name = (open < 0 ? afterKw.split("\\s+")[0] : afterKw.substring(0, open)).trim();
        InsnDecoder dec = new InsnDecoder(this, moduleName, name, globalSymbols);
        List<PtxFunction.Param> params = new ArrayList<>();
        int paramBytes = 0;
        if (open >= 0) {
            String list = afterKw.substring(open + 1, matching(afterKw, open));
            for (String p : splitTop(list)) {
                if (p.isBlank()) continue;
                VarDecl v = parseVar(new Stmt(p.trim().replaceFirst("^\\.param", ".local"), header.line()));
                int align = Math.max(v.align(), 1);
                if (entry) {
                    paramBytes = (paramBytes + align - 1) / align * align;
                    params.add(new PtxFunction.Param(v.name(), paramBytes, (int) v.bytes(), PtxType.name(v.typeCode())));
                    paramBytes += (int) v.bytes();
                } else {
                    int off = dec.defineCallParam(v.name(), (int) v.bytes(), align);
                    params.add(new PtxFunction.Param(v.name(), off, (int) v.bytes(), PtxType.name(v.typeCode())));
                }
            }
        }
        PtxFunction.Param ret = null;
        if (retList != null && !retList.isBlank()) {
            VarDecl v = parseVar(new Stmt(retList.trim().replaceFirst("^\\.param", ".local"), header.line()));
            int off = dec.defineCallParam(v.name(), (int) v.bytes(), Math.max(v.align(), 1));
            ret = new PtxFunction.Param(v.name(), off, (int) v.bytes(), PtxType.name(v.typeCode()));
        }
        if (entry) for (PtxFunction.Param p : params) dec.defineParam(p.name(), p.offset());
        // module-level shared variables first, then the function's own, then the dynamic (extern) window
        List<SharedVar> shared = new ArrayList<>(moduleShared);
        List<Stmt> insns = new ArrayList<>();
        int localBytes = 0;
        Map<String, Integer> localVars = new LinkedHashMap<>();
        for (Stmt s : body) {
            String t = s.text().trim();
            if (t.equals("{") || t.equals("}")) continue;
            String lead = t;
            if (lead.startsWith(".reg")) {
                dec.declareRegisters(t, s.line());
            } else if (lead.startsWith(".shared") || lead.startsWith(".extern .shared")) {
                VarDecl v = parseVar(s);
                shared.add(new SharedVar(v.name(), (int) v.bytes(), v.align(), v.extern() || v.bytes() == 0));
            } else if (lead.startsWith(".local")) {
                VarDecl v = parseVar(s);
                localBytes = (localBytes + v.align() - 1) / v.align() * v.align();
                localVars.put(v.name(), localBytes);
                localBytes += (int) v.bytes();
            } else if (lead.startsWith(".param")) {
                // a call site's argument or return slot, in this function's call frame
                VarDecl v = parseVar(new Stmt(t.replaceFirst("^\\.param", ".local"), s.line()));
                dec.defineCallParam(v.name(), (int) v.bytes(), Math.max(v.align(), 1));
            } else if (lead.startsWith(".pragma") || lead.startsWith(".loc") || lead.startsWith(".maxnreg")
                    || lead.startsWith(".maxntid") || lead.startsWith(".reqntid") || lead.startsWith(".minnctapersm")) {
                // hints only
            } else {
                insns.add(s);
            }
        }
        int off = 0;
        int dynAlign = 16;
        for (SharedVar v : shared) {
            if (v.extern()) {
                dynAlign = Math.max(dynAlign, v.align());
                continue;
            }
            off = (off + v.align() - 1) / v.align() * v.align();
            dec.defineShared(v.name(), off);
            off += v.bytes();
        }
        int staticShared = off;
        int dynOffset = (off + dynAlign - 1) / dynAlign * dynAlign;
        for (SharedVar v : shared) {
            if (v.extern()) dec.defineShared(v.name(), dynOffset);
        }
        for (Map.Entry<String, Integer> e : localVars.entrySet()) dec.defineLocal(e.getKey(), e.getValue());
        PtxFunction f = dec.decodeFunction(entry, params, paramBytes, insns, staticShared, dynOffset, localBytes);
        f.retParam = ret;
        return f;
    }

    /** Index of the parenthesis closing the one at {@code open}. */
    static int matching(String s, int open) {
        int depth = 0;
        for (int k = open; k < s.length(); k++) {
            if (s.charAt(k) == '(') depth++;
            if (s.charAt(k) == ')' && --depth == 0) return k;
        }
        return s.length() - 1;
    }

    /** Splits at commas outside (), [], {}. */
    static List<String> splitTop(String s) {
        List<String> out = new ArrayList<>();
        int depth = 0, start = 0;
        for (int k = 0; k < s.length(); k++) {
            char c = s.charAt(k);
            if (c == '(' || c == '[' || c == '{') depth++;
            else if (c == ')' || c == ']' || c == '}') depth--;
            else if (c == ',' && depth == 0) {
                out.add(s.substring(start, k).trim());
                start = k + 1;
            }
        }
        String last = s.substring(start).trim();
        if (!last.isEmpty() || !out.isEmpty()) out.add(last);
        return out;
    }
}
