package io.github.batchnorm4j.mutation;

import io.github.batchnorm4j.gpu.PtxModules;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The mutation operators on hand-written lines, and mutants of the shipped PTX that the emulator still loads. */
class PtxMutatorTest {
    private static final String PTX = String.join("\n",
            ".version 8.0",
            ".target sm_75",
            ".address_size 64",
            "",
            ".visible .entry k(",
            "\t.param .u64 k_param_0",
            ")",
            "{",
            "\t.reg .pred \t%p<3>;",
            "\tld.param.u64 \t%rd1, [k_param_0];",                 // 10: no mutant (parameter names)
            "\tadd.s64 \t%rd2, %rd1, 8;",                          // 11
            "\tsetp.ge.s64 \t%p1, %rd2, %rd1;",                    // 12
            "\t@%p1 bra \t$L__BB0_2;",                             // 13
            "\tmembar.gl;",                                        // 14
            "\tld.global.cg.f32 \t%f1, [%rd2+4];",                 // 15
            "\tld.global.nc.f32 \t%f2, [%rd2];",                   // 16
            "\tsub.f32 \t%f3, %f2, %f2;",                          // 17
            "\tfma.rn.f32 \t%f4, %f1, %f2, 0f3F800000;",           // 18
            "\tbar.sync \t0;",                                     // 19
            "$L__BB0_2:",
            "\tret;",
            "}",
            "");

    private static Map<String, List<String>> byLine(List<PtxMutant> ms) {
        Map<String, List<String>> out = new LinkedHashMap<>();
        for (PtxMutant m : ms) {
            out.computeIfAbsent(m.line() + " " + m.operator().label(), k -> new ArrayList<>()).add(m.mutated());
        }
        return out;
    }

    @Test
    void eachOperatorMakesTheExpectedMutants() {
        List<PtxMutant> ms = PtxMutator.mutants("k.ptx", PTX);
        Map<String, List<String>> got = byLine(ms);
        assertEquals(List.of("sub.s64 \t%rd2, %rd1, 8;"), got.get("11 arith"));
        assertEquals(List.of("add.s64 \t%rd2, %rd1, 9;", "add.s64 \t%rd2, %rd1, 7;"), got.get("11 const"));
        assertEquals(List.of("setp.gt.s64 \t%p1, %rd2, %rd1;", "setp.lt.s64 \t%p1, %rd2, %rd1;"), got.get("12 cmp"));
        assertEquals(List.of("@!%p1 bra \t$L__BB0_2;"), got.get("13 guard"));
        assertEquals(List.of("// mutant: deleted membar.gl;"), got.get("14 sync"));
        assertEquals(List.of("ld.global.f32 \t%f1, [%rd2+4];", "ld.global.nc.f32 \t%f1, [%rd2+4];",
                "ld.global.ca.f32 \t%f1, [%rd2+4];"), got.get("15 load"));
        assertEquals(List.of("ld.global.cg.f32 \t%f1, [%rd2+5];", "ld.global.cg.f32 \t%f1, [%rd2+3];"), got.get("15 const"));
        assertEquals(List.of("ld.global.f32 \t%f2, [%rd2];"), got.get("16 load"));
        assertEquals(List.of("mul.rn.f32 \t%f4, %f1, %f2;"), got.get("18 arith"));
        assertEquals(List.of("fma.rn.f32 \t%f4, %f1, %f2, 0f40000000;", "fma.rn.f32 \t%f4, %f1, %f2, 0f00000000;"),
                got.get("18 const"));
        assertEquals(List.of("// mutant: deleted bar.sync 0;"), got.get("19 sync"));
        assertNull(got.get("19 const"), "a barrier id is not a constant worth changing");
        assertTrue(ms.stream().noneMatch(m -> m.line() == 10), "ld.param names are never mutated");
        assertTrue(ms.stream().allMatch(m -> m.function().equals("k")));
    }

    @Test
    void knownEquivalentsAreMarkedWithTheirReason() {
        List<PtxMutant> ms = PtxMutator.mutants("k.ptx", PTX);
        PtxMutant nc = ms.stream().filter(m -> m.line() == 16 && m.operator() == PtxMutator.Operator.LOAD).findFirst().orElseThrow();
        assertTrue(nc.equivalent().contains(".nc"), nc.equivalent());
        PtxMutant same = ms.stream().filter(m -> m.line() == 17 && m.operator() == PtxMutator.Operator.SWAP).findFirst().orElseThrow();
        assertEquals("identical operands exchanged", same.equivalent());
        PtxMutant sub = ms.stream().filter(m -> m.line() == 17 && m.operator() == PtxMutator.Operator.ARITH).findFirst().orElseThrow();
        assertNull(sub.equivalent(), "sub -> add is a real change even with equal operands");
        PtxMutant cg = ms.stream().filter(m -> m.line() == 15 && m.operator() == PtxMutator.Operator.LOAD).findFirst().orElseThrow();
        assertNull(cg.equivalent(), "dropping .cg is not known to be harmless");
    }

    @Test
    void theSixtyFourBitDivisionDispatchIsEquivalentBelow2To32() {
        String ptx = String.join("\n", ".version 8.0", ".visible .entry d(", ")", "{",
                "\tor.b64  \t%rd63, %rd205, %rd40;",           // 5
                "\tand.b64  \t%rd64, %rd63, -4294967296;",     // 6
                "\tsetp.eq.s64 \t%p4, %rd64, 0;",              // 7
                "\t@%p4 bra \t$L__BB0_8;",                     // 8
                "\tdiv.s64 \t%rd204, %rd205, %rd40;",          // 9: the 64-bit path itself is not dispatch
                "$L__BB0_8:", "\tret;", "}", "");
        List<PtxMutant> ms = PtxMutator.mutants("d.ptx", ptx);
        for (PtxMutant m : ms) {
            if (m.line() >= 5 && m.line() <= 8) assertEquals(PtxMutator.DIVISION_DISPATCH, m.equivalent(), m.id());
            else assertNull(m.equivalent(), m.id());
        }
        assertTrue(ms.stream().anyMatch(m -> m.line() == 9), "div.s64 has mutants of its own");
        // The same lines without the branch are not the idiom.
        String noBranch = ptx.replace("\t@%p4 bra \t$L__BB0_8;", "\tselp.b64 \t%rd1, %rd2, %rd3, %p4;");
        assertTrue(PtxMutator.mutants("d.ptx", noBranch).stream().allMatch(m -> m.equivalent() == null
                || !m.equivalent().equals(PtxMutator.DIVISION_DISPATCH)));
    }

    @Test
    void xorWithAFalsePredicateIsOr() {
        String ptx = String.join("\n", ".version 8.0", ".visible .entry d(", ")", "{",
                "\tsetp.eq.b32 \t%p45, %r81, 1;",   // 5
                "\tmov.pred \t%p46, 0;",             // 6
                "\txor.pred  \t%p47, %p45, %p46;",   // 7
                "\txor.pred  \t%p48, %p45, %p47;",   // 8: neither operand known false
                "\tret;", "}", "");
        List<PtxMutant> ms = PtxMutator.mutants("d.ptx", ptx);
        PtxMutant x7 = ms.stream().filter(m -> m.line() == 7 && m.operator() == PtxMutator.Operator.ARITH).findFirst().orElseThrow();
        assertTrue(x7.equivalent() != null && x7.equivalent().startsWith("xor and or agree"), x7.toString());
        PtxMutant x8 = ms.stream().filter(m -> m.line() == 8 && m.operator() == PtxMutator.Operator.ARITH).findFirst().orElseThrow();
        assertNull(x8.equivalent(), x8.toString());
    }

    @Test
    void swappedDifferenceThatIsOnlySquaredIsEquivalent() {
        String ptx = String.join("\n", ".version 8.0", ".visible .entry d(", ")", "{",
                "\tsub.rn.f32 \t%f3, %f1, %f2;",    // 5: only squared
                "\tmul.rn.f32 \t%f4, %f3, %f3;",
                "\tsub.rn.f32 \t%f5, %f1, %f2;",    // 7: also added: a real difference
                "\tmul.rn.f32 \t%f6, %f5, %f5;",
                "\tadd.rn.f32 \t%f7, %f6, %f5;",
                "\tret;", "}", "");
        List<PtxMutant> ms = PtxMutator.mutants("d.ptx", ptx);
        PtxMutant s5 = ms.stream().filter(m -> m.line() == 5 && m.operator() == PtxMutator.Operator.SWAP).findFirst().orElseThrow();
        assertEquals(PtxMutator.ONLY_SQUARED, s5.equivalent());
        PtxMutant s7 = ms.stream().filter(m -> m.line() == 7 && m.operator() == PtxMutator.Operator.SWAP).findFirst().orElseThrow();
        assertNull(s7.equivalent(), s7.toString());
    }

    @Test
    void applyChangesExactlyOneLineAndChecksTheOriginal() {
        List<PtxMutant> ms = PtxMutator.mutants("k.ptx", PTX);
        for (PtxMutant m : ms) {
            String mutated = PtxMutator.apply(PTX, m);
            String[] a = PTX.split("\n", -1);
            String[] b = mutated.split("\n", -1);
            assertEquals(a.length, b.length, m.id());
            int differing = 0;
            for (int i = 0; i < a.length; i++) {
                if (!a[i].equals(b[i])) {
                    differing++;
                    assertEquals(m.line(), i + 1, m.id());
                }
            }
            assertEquals(m.equivalent() != null && m.equivalent().startsWith("identical") ? 0 : 1, differing, m.id());
        }
        PtxMutant first = ms.get(0);
        String shifted = PTX.replace("\tld.param.u64", "\n\tld.param.u64");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PtxMutator.apply(shifted, first));
        assertTrue(e.getMessage().contains("changed since the mutant was made"), e.getMessage());
    }

    @Test
    void idsAreUnique() {
        List<PtxMutant> ms = PtxMutator.mutants("k.ptx", PTX);
        assertEquals(ms.size(), ms.stream().map(PtxMutant::id).distinct().count());
    }

    /**
     * Every kind of mutant (operator × resulting opcode) of the shipped batch-norm PTX is text the emulator accepts, so
     * a mutant is killed by a test and never by a parse error. One mutant per kind, all applied at once, on the
     * backward module (the forward one is built from the same skeletons) keeps this test short.
     */
    @Test
    void mutantsOfTheShippedPtxStillLoad() {
        Random rnd = new Random(3);
        try (EmulatedDevice dev = new EmulatedDevice()) {
            for (String module : List.of(PtxModules.BACKWARD)) {
                String ptx = PtxModules.read(module);
                Map<String, PtxMutant> kinds = new LinkedHashMap<>();
                List<PtxMutant> all = PtxMutator.mutants(module, ptx);
                assertTrue(all.size() > 1000, module + ": " + all.size() + " mutants");
                for (PtxMutant m : all) {
                    String kind = m.operator().label() + " " + m.mutated().split("\\s+", 2)[0];
                    if (!kinds.containsKey(kind) || rnd.nextInt(4) == 0) kinds.put(kind, m);
                }
                // All chosen mutants at once: distinct lines only (one kind per line keeps the apply check valid).
                Map<Integer, PtxMutant> perLine = new LinkedHashMap<>();
                for (PtxMutant m : kinds.values()) perLine.putIfAbsent(m.line(), m);
                String mutated = ptx;
                for (PtxMutant m : perLine.values()) mutated = PtxMutator.apply(mutated, m);
                assertNotEquals(ptx, mutated);
                try (var loaded = dev.loadModule(module, mutated)) {
                    for (String entry : PtxModules.entryNames(ptx)) loaded.kernel(entry); // links every kernel
                }
            }
        }
    }
}
