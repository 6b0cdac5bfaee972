package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.train.MiniJson;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code train} through picocli: one run, the emulator path, bad input (the full --compare run and its files are
 * DocsFiguresTest's).
 */
class TrainCommandTest {
    record Result(int exit, String out, String err) {
        String lastLine() {
            String[] lines = out.strip().split("\\R");
            return lines[lines.length - 1];
        }
    }

    static Result run(String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        CommandLine cl = new CommandLine(new TrainCommand());
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        int code = cl.execute(args);
        return new Result(code, out.toString(), err.toString());
    }

    @Test
    void singleRunWithoutBatchNorm(@TempDir Path tmp) {
        Result r = run("--no-bn", "--epochs", "1", "--hidden", "16", "--out", tmp.resolve("o").toString(),
                "--no-progress");
        assertEquals(0, r.exit(), r.err());
        Map<String, Object> json = MiniJson.parseObject(r.lastLine());
        assertEquals(false, json.get("batch_norm"));
        assertTrue(!json.containsKey("plain_test_accuracy"));
        assertTrue(r.err().contains("auto -> "), r.err());
    }

    @Test
    void theGpuPathRunsOnTheEmulator(@TempDir Path tmp) {
        String[] common = {"--epochs", "1", "--hidden", "12", "--batch-size", "120", "--out", "", "--no-progress"};
        common[7] = tmp.resolve("emu").toString();
        Result emu = run(concat(common, "--backend", "emulator"));
        assertEquals(0, emu.exit(), emu.err());
        common[7] = tmp.resolve("cpu").toString();
        Result cpu = run(concat(common, "--backend", "cpu"));
        Map<String, Object> e = MiniJson.parseObject(emu.lastLine());
        Map<String, Object> c = MiniJson.parseObject(cpu.lastLine());
        assertEquals("emulator", e.get("backend"));
        assertEquals(c.get("test_accuracy"), e.get("test_accuracy"), "same seed, same result on both paths");
    }

    private static String[] concat(String[] a, String... b) {
        String[] r = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }

    @Test
    void badInputExitsWithTwoAndOneErrorLine(@TempDir Path tmp) {
        Result r = run("--data", tmp.resolve("missing").toString(), "--out", tmp.resolve("o").toString());
        assertEquals(2, r.exit());
        assertTrue(r.err().startsWith("error: --data: expected digits, fashion-mnist or a folder"), r.err());
        assertTrue(!Files.exists(tmp.resolve("o")), "nothing written on bad input");

        r = run("--data", tmp.toString(), "--out", tmp.resolve("o").toString());
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("train-images-idx3-ubyte[.gz]"), r.err());

        r = run("--batch-size", "1", "--out", tmp.resolve("o").toString());
        assertEquals(2, r.exit());
        assertEquals("error: --batch-size: expected >= 2, got 1", r.err().strip(), "names the option typed");

        r = run("--weight-decay", "-1", "--out", tmp.resolve("o").toString());
        assertEquals(2, r.exit());
        assertTrue(r.err().startsWith("error: --weight-decay: expected a finite value >= 0, got -1.0"), r.err());

        r = run("--test-fraction", "1.5", "--out", tmp.resolve("o").toString());
        assertEquals(2, r.exit());
        assertTrue(r.err().startsWith("error: --test-fraction: expected a value in (0, 1), got 1.5"), r.err());

        r = run("--compare", "--high-lr", "-1", "--out", tmp.resolve("o").toString());
        assertEquals(2, r.exit());
        assertTrue(r.err().startsWith("error: --high-lr: expected a finite value > 0, got -1.0"), r.err());
        assertTrue(!Files.exists(tmp.resolve("o")), "nothing written on bad input");

        r = run("--compare", "--no-bn");
        assertEquals(2, r.exit());

        r = run("--epochs", "x");
        assertEquals(2, r.exit(), "picocli's usage error code");
    }

    @Test
    void dtypeTrainsInMixedPrecisionAndIsReported(@TempDir Path tmp) {
        Result r = run("--dtype", "bfloat16", "--epochs", "1", "--hidden", "16", "--out", tmp.resolve("o").toString(),
                "--no-progress", "--backend", "cpu");
        assertEquals(0, r.exit(), r.err());
        Map<String, Object> json = MiniJson.parseObject(r.lastLine());
        assertEquals("bfloat16", json.get("dtype"));
        assertTrue(r.out().contains("activations bfloat16"), r.out());

        r = run("--dtype", "float16", "--epochs", "1", "--hidden", "16", "--out", tmp.resolve("h").toString(),
                "--no-progress", "--backend", "cpu");
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("loss scale 65536 at the end, 0 steps skipped"), r.out());

        r = run("--dtype", "int8", "--out", tmp.resolve("bad").toString());
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("--dtype") && r.err().contains("expected float32, float16 or bfloat16, got 'int8'"),
                r.err());
        assertTrue(!Files.exists(tmp.resolve("bad")), "nothing written on bad input");
    }

    @Test
    void helpShowsTheHiddenSyntaxOnce() {
        String usage = new CommandLine(new TrainCommand()).getUsageMessage(CommandLine.Help.Ansi.OFF);
        assertTrue(usage.contains("--hidden=W1,W2,..."), usage);
        assertTrue(!usage.contains("W1,W2,...[,"), "picocli's repeated split syntax: " + usage);
    }

    @Test
    void mainHasTheTrainSubcommand() {
        CommandLine main = new CommandLine(new Main());
        assertTrue(main.getSubcommands().containsKey("train"), "batchnorm4j train must be registered");
        assertTrue(main.getSubcommands().get("train").getCommand() instanceof TrainCommand);
    }

    @Test
    void cudaIsReportedUnavailable(@TempDir Path tmp) {
        org.junit.jupiter.api.Assumptions.assumeFalse(io.github.batchnorm4j.cuda.CudaProbe.probe().available(),
                "a GPU is present");
        Result r = run("--backend", "cuda", "--out", tmp.resolve("o").toString());
        assertEquals(3, r.exit());
        assertTrue(r.err().startsWith("error: backend 'cuda' is unavailable: "), r.err());
        assertTrue(!Files.exists(tmp.resolve("o")), "nothing written when the backend is unavailable");
    }
}
