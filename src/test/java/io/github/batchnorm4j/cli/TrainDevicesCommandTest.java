package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.train.MiniJson;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static io.github.batchnorm4j.cli.TrainCommandTest.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code train --devices K}: the same metrics as one device with the same global batch, and its option checks. */
class TrainDevicesCommandTest {

    @Test
    void twoCpuDevicesWriteTheMetricsOfOne(@TempDir Path tmp) throws IOException {
        System.setProperty("java.awt.headless", "true");
        String[] common = {"--epochs", "1", "--hidden", "32,16", "--batch-size", "64", "--no-progress", "--backend",
                "cpu"};
        TrainCommandTest.Result one = run(concat(common, "--out", tmp.resolve("one").toString()));
        TrainCommandTest.Result two = run(concat(common, "--devices", "2", "--out", tmp.resolve("two").toString()));
        assertEquals(0, one.exit(), one.err());
        assertEquals(0, two.exit(), two.err());
        Map<String, Object> a = MiniJson.parseObject(one.lastLine());
        Map<String, Object> b = MiniJson.parseObject(two.lastLine());
        assertEquals(1.0, a.get("devices"));
        assertEquals(2.0, b.get("devices"));
        assertEquals(a.get("test_accuracy"), b.get("test_accuracy"));
        assertTrue(two.out().contains("backend cpu on 2 devices (data parallel, synchronized batch norm)"), two.out());
        List<String> csvOne = Files.readAllLines(tmp.resolve("one/metrics.csv"));
        List<String> csvTwo = Files.readAllLines(tmp.resolve("two/metrics.csv"));
        assertEquals(csvOne.get(0), csvTwo.get(0));
        int loss = List.of(csvOne.get(0).split(",")).indexOf("train_loss");
        int testLoss = List.of(csvOne.get(0).split(",")).indexOf("test_loss");
        for (int i = 1; i < csvOne.size(); i++) {
            for (int col : new int[] {loss, testLoss}) {
                double p = Double.parseDouble(csvOne.get(i).split(",")[col]);
                double q = Double.parseDouble(csvTwo.get(i).split(",")[col]);
                assertEquals(p, q, 1e-5 * p, "epoch " + i + " column " + col);
            }
        }
    }

    @Test
    void badDeviceCountsAreRefusedBeforeAnyWork(@TempDir Path tmp) {
        Path out = tmp.resolve("never");
        TrainCommandTest.Result r = run("--devices", "0", "--backend", "cpu", "--out", out.toString());
        assertEquals(2, r.exit());
        assertEquals("error: --devices: expected >= 1, got 0", r.err().strip());
        r = run("--devices", "2", "--dtype", "float16", "--backend", "cpu", "--out", out.toString());
        assertEquals(2, r.exit());
        assertEquals("error: --dtype: data-parallel training (--devices 2) supports float32 only, got float16",
                r.err().strip());
        r = run("--devices", "4", "--batch-size", "3", "--backend", "cpu", "--out", out.toString());
        assertEquals(2, r.exit());
        assertEquals("error: --batch-size: expected at least one row per device (--devices 4), got 3", r.err().strip());
        r = run("--devices", "2", "--backend", "cuda", "--out", out.toString());
        assertEquals(3, r.exit(), "no GPU here: backend unavailable");
        assertFalse(Files.exists(out), "no output folder for a refused run");
    }

    private static String[] concat(String[] a, String... b) {
        String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
