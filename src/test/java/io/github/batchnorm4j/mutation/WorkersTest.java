package io.github.batchnorm4j.mutation;

import io.github.batchnorm4j.gpu.PtxModules;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The long-lived test JVM of the mutation tool on a real emulator test class: one worker judges a mutant, then the
 * unmutated PTX, then the mutant again. A module kept from an earlier mutant would make the unmutated run fail (or the
 * second mutant pass); the kill is found again by the test that killed it first, run first; and only the tests that
 * execute the mutated line are run.
 */
class WorkersTest {
    @TempDir
    Path tmp;

    @Test
    void oneWorkerJudgesMutantsWithoutStaleModules() throws Exception {
        String module = PtxModules.FORWARD;
        String ptx = PtxModules.read(module);
        Path clean = Files.createDirectories(tmp.resolve("clean"));
        for (String m : PtxModules.ALL) Files.writeString(clean.resolve(m), PtxModules.read(m));
        MutationRun.Options o = MutationRun.parse(new String[]{"--tests", "EmulatorSyncBatchNormTest"});
        try (Workers workers = new Workers(o, Files.createDirectories(tmp.resolve("work")))) {
            Workers.Reply base = workers.baseline(clean, null);
            assertTrue(base.passed(), base.test() + " " + base.why());
            assertTrue(workers.recordedTests() > 0, "the baseline records which tests execute which lines");
            // an address scaled by 5 instead of 4 (a float index) on a line those tests execute
            PtxMutant m = PtxMutator.mutants(module, ptx).stream()
                    .filter(x -> x.operator() == PtxMutator.Operator.CONST && x.original().startsWith("mul.wide")
                            && x.original().endsWith(", 4;") && x.mutated().endsWith(", 5;"))
                    .filter(x -> workers.testsOf(x) != null && !workers.testsOf(x).isEmpty())
                    .findFirst().orElseThrow();
            Path mutant = Files.createDirectories(tmp.resolve("mutant"));
            for (String name : PtxModules.ALL) Files.writeString(mutant.resolve(name), PtxModules.read(name));
            Files.writeString(mutant.resolve(module), PtxMutator.apply(ptx, m));

            MutationRun.Result first = workers.judge(mutant, m, 300);
            assertEquals(MutationRun.Status.KILLED, first.status(), first.detail());
            assertTrue(first.detail().startsWith("EmulatorSyncBatchNormTest."), first.detail());
            MutationRun.Result clear = workers.judge(clean, m, 300);
            assertEquals(MutationRun.Status.SURVIVED, clear.status(), "the unmutated PTX after a mutant: " + clear.detail());
            assertTrue(clear.detail().contains("the tests executing this line: " + workers.testsOf(m).size()), clear.detail());
            List<String> order = workers.order(m);
            assertTrue(order.get(0).startsWith("U:") && order.get(0).contains("EmulatorSyncBatchNormTest"), order.toString());
            assertFalse(order.contains("ALL"), "only the tests that execute the line: " + order);
            MutationRun.Result again = workers.judge(mutant, m, 300);
            assertEquals(MutationRun.Status.KILLED, again.status(), again.detail());
            assertEquals(first.detail().split("\n")[0], again.detail().split("\n")[0], "the first killer ran first");
            assertEquals(2, workers.started(), "the baseline's JVM, then one worker for all three runs");
        }
    }
}
