package io.github.batchnorm4j.mutation;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The mutation tool's reading of coverage.tsv: only rows of the PTX text being mutated count. */
class CoverageFileTest {
    private static final String HEADER = "# module\tkernel\tline\tthreads\tguard_true\tguarded\tsource\ttext\n";

    @Test
    void rowsOfOtherTextsUnderTheSameModuleNameDoNotCount(@TempDir Path dir) throws Exception {
        String text = "// the module being mutated\n", mutant = "// a mutant of it\n";
        String mine = io.github.batchnorm4j.ptx.Coverage.sourceHash(text);
        String other = io.github.batchnorm4j.ptx.Coverage.sourceHash(mutant);
        Files.writeString(dir.resolve("coverage.tsv"), HEADER
                + "m.ptx\tk\t5\t0\t0\t0\t" + mine + "\tadd.s32 %r1, %r1, 1;\n"
                + "m.ptx\tk\t6\t32\t32\t0\t" + mine + "\tret;\n"
                + "m.ptx\tk\t5\t64\t64\t0\t" + other + "\tadd.s32 %r1, %r1, 2;\n"
                + "n.ptx\tk\t9\t4\t4\t0\t" + other + "\tret;\n");
        Coverage c = Coverage.read(dir, Map.of("m.ptx", text));
        assertFalse(c.executed("m.ptx", 5), "the mutant's execution of line 5 is not the module's");
        assertTrue(c.executed("m.ptx", 6));
        assertTrue(c.hasOtherTexts("m.ptx"));
        assertTrue(c.executed("n.ptx", 9), "a module not being mutated keeps its rows");

        Coverage stale = Coverage.read(dir, Map.of("m.ptx", "// rebuilt since\n"));
        assertFalse(stale.knows("m.ptx"), "rows of older texts only: the tool refuses instead of skipping every mutant");
        assertTrue(stale.hasOtherTexts("m.ptx"));
    }

    @Test
    void filesWithoutTheSourceColumnCountForEveryText(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("coverage.tsv"), "# module\tkernel\tline\tthreads\tguard_true\tguarded\ttext\n"
                + "m.ptx\tk\t5\t3\t3\t0\tadd.s32 %r1, %r1, 1;\n");
        Coverage c = Coverage.read(dir.resolve("coverage.tsv"), Map.of("m.ptx", "// any text\n"));
        assertTrue(c.executed("m.ptx", 5));
        assertTrue(c.knows("m.ptx"));
    }
}
