package io.github.batchnorm4j.mutation;

import io.github.batchnorm4j.train.MiniJson;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The mutation run end to end on a tiny module, with a shell command standing in for the test suite (it "fails" for
 * chosen mutants by grepping the mutated PTX), so every status, the report, the hand list of equivalents and --resume
 * are exercised in about a second.
 */
class MutationRunTest {
    private static final String PTX = String.join("\n",
            ".version 8.0", ".target sm_75", ".address_size 64", "",
            ".visible .entry k(", "\t.param .u64 k_param_0", ")", "{",
            "\tld.param.u64 \t%rd1, [k_param_0];",
            "\tadd.s64 \t%rd2, %rd1, 8;",                  // 10: arith -> sub.s64 (killed by the command)
            "\tsetp.ge.s64 \t%p1, %rd2, %rd1;",
            "\t@%p1 bra \t$L__BB0_2;",                     // 12: guard -> @!%p1 (the command hangs: timeout)
            "\tld.global.cg.f32 \t%f1, [%rd2];",           // 13: load x3 (survive)
            "\tld.global.nc.f32 \t%f2, [%rd2];",           // 14: load: drops .nc (equivalent by rule)
            "$L__BB0_2:", "\tret;", "}", "");

    @TempDir
    Path tmp;

    private MutationRun.Options options(String command) throws Exception {
        Path src = Files.createDirectories(tmp.resolve("ptx"));
        Files.writeString(src.resolve("k.ptx"), PTX);
        Files.writeString(src.resolve("other.ptx"), "// copied next to every mutant\n");
        Path log = tmp.resolve("runs.log");
        MutationRun.Options o = MutationRun.parse(new String[]{"--source", src.toString(), "--modules", "k.ptx",
                "--operators", "arith,guard,load", "--out", tmp.resolve("out").toString(),
                "--test-command", "echo run >> " + log + "; test -f \"$BATCHNORM4J_PTX_DIR/other.ptx\" || exit 9; " + command});
        o.log = new java.io.PrintStream(java.io.OutputStream.nullOutputStream());
        o.timeoutSeconds = 0.5; // a slow start is retried with 1.5 s: the short bound costs no false timeouts
        return o;
    }

    /**
     * The stand-in suite: sub.s64 fails a test, the negated guard hangs, and the .ca load is slow only the first time
     * (a loaded machine): its retry passes, so it survives rather than timing out.
     */
    private String suite() {
        Path slow = tmp.resolve("slow-once");
        return "p=\"$BATCHNORM4J_PTX_DIR/k.ptx\"; "
                + "grep -q 'sub.s64' \"$p\" && { echo 'FAILED FakeTest.add wrong sum'; exit 1; }; "
                + "grep -q '@!%p1' \"$p\" && sleep 30; "
                + "grep -q 'ld.global.ca' \"$p\" && [ ! -f " + slow + " ] && { touch " + slow + "; sleep 30; }; exit 0";
    }

    @Test
    void everyStatusIsRecordedAndReported() throws Exception {
        assertEquals(0, MutationRun.run(options(suite())));
        Map<String, Object> report = MiniJson.parseObject(Files.readString(tmp.resolve("out/report.json")));
        @SuppressWarnings("unchecked")
        Map<String, Object> counts = (Map<String, Object>) report.get("counts");
        assertEquals(1.0, counts.get("killed"));
        assertEquals(1.0, counts.get("timeout"));
        assertEquals(3.0, counts.get("survived"), "the three .cg changes (one slow only at first): nothing reads them");
        assertEquals(1.0, counts.get("equivalent"));
        assertEquals(0.4, counts.get("score"));
        assertEquals(6.0, report.get("generated"));
        @SuppressWarnings("unchecked")
        List<Map<String, Object>> mutants = (List<Map<String, Object>>) report.get("mutants");
        Map<String, Object> killed = mutants.stream().filter(m -> m.get("status").equals("killed")).findFirst().orElseThrow();
        assertEquals(10.0, killed.get("line"));
        assertEquals("FakeTest.add wrong sum", killed.get("detail"));
        String table = Files.readString(tmp.resolve("out/report.txt"));
        assertTrue(table.contains("result: 1 killed + 1 timeouts of 5 non-equivalent = 40.0%; 3 survived; 1 equivalent"), table);
        assertTrue(table.contains("k.ptx:13"), table);
        assertTrue(table.contains("drops .nc"), table);
        int runs = Files.readAllLines(tmp.resolve("runs.log")).size();
        // the baseline, five mutants, and the retries of the hang and of the slow one (more only if the machine
        // slowed another run past half a second)
        assertTrue(runs >= 8 && runs <= 12, "runs: " + runs);
        Map<String, Object> hang = mutants.stream().filter(m -> m.get("status").equals("timeout")).findFirst().orElseThrow();
        assertEquals("no result after 1 s, nor after 2 s", hang.get("detail"));
    }

    @Test
    void handClassifiedEquivalentsAndResume() throws Exception {
        MutationRun.Options o = options(suite().replace("&& sleep 30;", "&& exit 0;"));
        Path eq = tmp.resolve("equivalents.tsv");
        Files.writeString(eq, "# hand-classified\nk.ptx:13\tld.global.ca.f32 \t%f1, [%rd2];\tnothing reads %f1\n"
                + "k.ptx:10\tsub.s64 %rd2, %rd1, 8;\twrong on purpose: this one is killed\n");
        o.equivalents = eq;
        assertEquals(0, MutationRun.run(o));
        String table = Files.readString(tmp.resolve("out/report.txt"));
        assertTrue(table.contains("by review: nothing reads %f1"), table);
        assertTrue(table.contains("listed as equivalent (wrong on purpose: this one is killed) but killed: fix the list"), table);
        assertTrue(table.contains("3 survived; 2 equivalent"), table);
        int runs = Files.readAllLines(tmp.resolve("runs.log")).size();
        o.resume = true;
        assertEquals(0, MutationRun.run(o));
        assertEquals(runs + 1, Files.readAllLines(tmp.resolve("runs.log")).size(), "--resume reruns only the baseline");
        assertEquals(Files.readString(tmp.resolve("out/report.txt")).lines().skip(4).toList(), table.lines().skip(4).toList(),
                "the resumed report has the same results");
    }

    @Test
    void survivorsAreJudgedAgainAndEquivalentsMayNameTheKernel() throws Exception {
        assertEquals(0, MutationRun.run(options(suite().replace("&& sleep 30;", "&& exit 0;"))));
        Path first = tmp.resolve("first.jsonl");
        Files.copy(tmp.resolve("out/results.jsonl"), first);
        // Second run: only the survivors; one is listed by kernel, and a test now kills another.
        Path eq = tmp.resolve("equivalents.tsv");
        Files.writeString(eq, "k.ptx:k\tld.global.ca.f32 \t%f1, [%rd2];\tnothing reads %f1\n");
        MutationRun.Options o = MutationRun.parse(new String[]{"--survivors", first.toString()});
        String suite = suite().replace("&& sleep 30;", "&& exit 0;");
        suite = suite.substring(0, suite.lastIndexOf("exit 0"))
                + "grep -q 'ld.global.nc.f32 \t%f1' \"$p\" && { echo 'FAILED New.test'; exit 1; }; exit 0";
        MutationRun.Options base = options(suite);
        base.ids = o.ids;
        base.equivalents = eq;
        base.out = tmp.resolve("again");
        assertEquals(4, o.ids.size(), "the guard and the three .cg changes survived: " + o.ids);
        assertEquals(0, MutationRun.run(base));
        String table = Files.readString(tmp.resolve("again/report.txt"));
        assertTrue(table.contains("result: 1 killed + 0 timeouts of 3 non-equivalent = 33.3%; 2 survived; 1 equivalent"), table);
        assertTrue(table.contains("by review: nothing reads %f1"), table);
    }

    @Test
    void aSuiteThatFailsUnmutatedStopsTheRun() throws Exception {
        assertEquals(1, MutationRun.run(options("exit 1")));
        assertThrows(IllegalArgumentException.class, () -> MutationRun.parse(new String[]{"--sample", "0"}));
        assertThrows(IllegalArgumentException.class, () -> MutationRun.parse(new String[]{"--operators", "nope"}));
    }

    @Test
    void aSampleIsReproducible() throws Exception {
        MutationRun.Options o = options("exit 0");
        o.sample = 2;
        o.seed = 5;
        o.list = true;
        assertEquals(0, MutationRun.run(o));
        o.list = false;
        assertEquals(0, MutationRun.run(o));
        String first = Files.readString(tmp.resolve("out/report.json"), StandardCharsets.UTF_8);
        assertEquals(0, MutationRun.run(o));
        assertEquals(first.replaceAll("\"baseline_seconds\":[^,]*,|\"seconds\":[^,]*,", ""),
                Files.readString(tmp.resolve("out/report.json")).replaceAll("\"baseline_seconds\":[^,]*,|\"seconds\":[^,]*,", ""));
        assertTrue(first.contains("\"chosen\":2"), first);
    }
}
