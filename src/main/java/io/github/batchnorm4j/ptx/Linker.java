package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.gpu.DeviceException;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Links an entry with the {@code .func}s it calls into one code array, so the SIMT scheduler sees one pc space: each
 * callee's code is appended once, with its registers renumbered into a private range (special registers shared), its
 * branch targets moved, and its call frame placed in the per-thread call-parameter scratch. Recursion is rejected
 * (frames are static).
 */
final class Linker {
    private Linker() {
    }

    static PtxFunction link(PtxModule module, PtxFunction entry) {
        if (!entry.hasCalls()) {
            entry.callParamBytes = entry.frameBytes;
            return entry;
        }
        List<PtxFunction> order = new ArrayList<>();
        collect(module, entry, order, new ArrayList<>());
        Map<String, Integer> pcBase = new HashMap<>(), frameBase = new HashMap<>(), regOff = new HashMap<>();
        Map<String, Integer> localBase = new HashMap<>();
        int pcs = 0, frames = 0, regs = Special.COUNT, locals = 0;
        for (PtxFunction f : order) {
            pcBase.put(f.name, pcs);
            frameBase.put(f.name, frames);
            regOff.put(f.name, regs - Special.COUNT);
            pcs += f.code.length;
            frames += (f.frameBytes + 7) & ~7;
            regs += f.numRegs - Special.COUNT;
            localBase.put(f.name, locals);
            locals += (f.localBytes + 15) & ~15; // each function's .local depot gets its own region
        }
        Insn[] code = new Insn[pcs];
        List<Integer> constRegs = new ArrayList<>();
        List<Long> constVals = new ArrayList<>();
        for (PtxFunction f : order) {
            int pb = pcBase.get(f.name), fb = frameBase.get(f.name), ro = regOff.get(f.name);
            int lb = localBase.get(f.name);
            java.util.Set<Integer> localConsts = new java.util.HashSet<>();
            for (int i : f.localConstIdx) localConsts.add(i);
            for (int i = 0; i < f.constants.length; i++) {
                constRegs.add(map(f.constRegs[i], ro));
                constVals.add(f.constants[i] + (localConsts.contains(i) ? lb : 0));
            }
            for (int k = 0; k < f.code.length; k++) {
                Insn in = f.code[k].copy();
                in.d = map(in.d, ro);
                in.d2 = map(in.d2, ro);
                in.a = map(in.a, ro);
                in.b = map(in.b, ro);
                in.c = map(in.c, ro);
                in.e = map(in.e, ro);
                in.guard = map(in.guard, ro);
                in.baseReg = map(in.baseReg, ro);
                if (in.vec != null) for (int v = 0; v < in.vec.length; v++) in.vec[v] = map(in.vec[v], ro);
                if (in.op == Op.BRA) in.target += pb;
                if (in.localSym) in.offset += lb;
                if (in.space == Op.CALLPARAM && (in.op == Op.LD || in.op == Op.ST)) in.offset += fb;
                if (in.op == Op.CALL) {
                    PtxFunction g = module.functions.get(in.call.callee);
                    Insn.CallInfo ci = new Insn.CallInfo();
                    ci.callee = g.name;
                    int gb = frameBase.get(g.name);
                    int n = in.call.argOffsets.length;
                    if (n != g.params.size()) {
                        throw new DeviceException("PTX module " + module.name + " line " + in.line + ": call of "
                                + g.name + " passes " + n + " arguments, it takes " + g.params.size());
                    }
                    ci.argSrc = new int[n];
                    ci.argDst = new int[n];
                    ci.argSize = new int[n];
                    for (int a = 0; a < n; a++) {
                        ci.argSrc[a] = fb + in.call.argOffsets[a];
                        ci.argDst[a] = gb + g.params.get(a).offset();
                        ci.argSize[a] = g.params.get(a).size();
                    }
                    if (in.call.retOffset >= 0 && g.retParam != null) {
                        ci.retSrc = gb + g.retParam.offset();
                        ci.retDst = fb + in.call.retOffset;
                        ci.retSize = g.retParam.size();
                    }
                    in.call = ci;
                    in.target = pcBase.get(g.name);
                }
                code[pb + k] = in;
            }
        }
        long[] consts = new long[constVals.size()];
        int[] cregs = new int[constRegs.size()];
        for (int i = 0; i < consts.length; i++) {
            consts[i] = constVals.get(i);
            cregs[i] = constRegs.get(i);
        }
        PtxFunction linked = new PtxFunction(entry.moduleName, entry.name, true, entry.params, entry.paramBytes, code,
                regs, consts, Special.COUNT, entry.staticSharedBytes, entry.dynamicSharedOffset,
                locals, entry.labels);
        linked.constRegs = cregs;
        linked.source = entry.source;
        linked.callParamBytes = frames;
        return linked;
    }

    private static int map(int r, int off) {
        if (r < Special.COUNT) return r; // -1 (none) and the shared special registers
        return r + off;
    }

    private static void collect(PtxModule m, PtxFunction f, List<PtxFunction> order, List<String> stack) {
        if (stack.contains(f.name)) {
            throw new DeviceException("PTX module " + m.name + ": recursive call of " + f.name + " (call chain "
                    + stack + ") is not supported by the emulator");
        }
        for (PtxFunction g : order) if (g.name.equals(f.name)) return;
        order.add(f);
        stack.add(f.name);
        for (Insn in : f.code) {
            if (in.op != Op.CALL) continue;
            PtxFunction g = m.functions.get(in.call.callee);
            if (g == null) {
                throw new DeviceException("PTX module " + m.name + " line " + in.line + ": call of unknown function "
                        + in.call.callee + " (external functions such as vprintf are not supported)");
            }
            collect(m, g, order, stack);
        }
        stack.remove(stack.size() - 1);
    }
}
