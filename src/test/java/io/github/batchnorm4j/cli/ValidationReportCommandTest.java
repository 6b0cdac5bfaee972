package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.train.MiniJson;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The report of a gpu-validate run when steps fail, cuDNN is missing, or the folder is not a run. */
class ValidationReportCommandTest {
    @TempDir
    Path dir;

    private int report() {
        PrintStream old = System.out;
        System.setOut(new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8));
        try {
            return Main.run("validation-report", "--dir", dir.toString(), "--seconds", "500");
        } finally {
            System.setOut(old);
        }
    }

    @Test
    void aFailedStepFailsTheRunAndAMissingCudnnIsSaidWhy() throws Exception {
        Files.writeString(dir.resolve("steps.tsv"), String.join("\n",
                "info\t0\t1.0\tbatchnorm4j info --json",
                "skipped-cudnn\t0\t0\tcuDNN 9 is not installed",
                "tests\t1\t80.5\tmvn -B test -Dgroups=gpu",
                "check\t0\t20\tbatchnorm4j check --backends cpu,cuda --json",
                "bench-cuda-0\t124\t45\tbatchnorm4j bench --backend cuda --shape 32,64,56,56", ""));
        Files.writeString(dir.resolve("info.json"), "{\"library_version\":\"0.1.0\",\"backends\":[{\"name\":\"cuda\","
                + "\"available\":true,\"detail\":\"NVIDIA H100 80GB HBM3\"}]}\n");
        Files.writeString(dir.resolve("tests.log"), "[INFO] Tests run: 3, Failures: 0, Errors: 0, Skipped: 0, Time elapsed: 1 s -- in A\n"
                + "[ERROR]   CudaDeviceGpuTest.copies:41 expected <1> but was <2>\n"
                + "[ERROR] Tests run: 14, Failures: 1, Errors: 0, Skipped: 2\n");
        Files.writeString(dir.resolve("check.jsonl"), "{\"kind\":\"float64\",\"backend\":\"cuda\",\"result\":\"PASS\"}\n"
                + "{\"kind\":\"summary\",\"result\":\"PASS\"}\n");
        Files.writeString(dir.resolve("bench-cuda-0.jsonl"),
                "{\"backend\":\"cuda\",\"op\":\"copy\",\"layout\":null,\"shape\":\"6422528\",\"bytes\":25690112,\"gbps\":2000.0}\n"
                        + "{\"backend\":\"cuda\",\"op\":\"forward-train\",\"layout\":\"channels-first\",\"shape\":\"32,64,56,56\","
                        + "\"bytes\":25690112,\"gbps\":1500.0}\n");
        assertEquals(1, report());
        Map<String, Object> r = MiniJson.parseObject(Files.readString(dir.resolve("report.json")));
        assertEquals("FAIL", r.get("result"));
        assertEquals("NVIDIA H100 80GB HBM3", r.get("device"));
        assertEquals(List.of(Map.of("step", "cudnn", "reason", "cuDNN 9 is not installed")), r.get("skipped"));
        Map<?, ?> tests = (Map<?, ?>) r.get("tests");
        assertEquals(14.0, tests.get("run"), "the last summary line, not a per-class one");
        assertEquals(List.of("[ERROR]   CudaDeviceGpuTest.copies:41 expected <1> but was <2>"), tests.get("failed"));
        List<?> failures = (List<?>) r.get("failures");
        assertEquals(2, failures.size(), failures.toString());
        assertTrue(failures.get(0).toString().startsWith("tests: exit 1"), failures.toString());
        assertTrue(failures.get(1).toString().contains("bench-cuda-0: exit 124 (timed out)"), failures.toString());
        assertEquals(List.of("the run took 500 s, over the 480 s budget"), r.get("warnings"));
        Map<?, ?> c = (Map<?, ?>) ((List<?>) r.get("comparison")).get(0);
        assertEquals(75.0, c.get("ours_pct_of_copy"));
        assertNull(c.get("cudnn_gbps"));
        String summary = Files.readString(dir.resolve("summary.txt"));
        assertTrue(summary.contains("skipped: {\"step\":\"cudnn\",\"reason\":\"cuDNN 9 is not installed\"}"), summary);
        assertTrue(summary.contains("1500.0 (75%)") && summary.endsWith("result: FAIL\n"), summary);
    }

    @Test
    void aFolderThatIsNotARunIsBadUsage() {
        assertEquals(Main.BAD_INPUT, Main.run("validation-report", "--dir", dir.toString()));
        assertEquals(Main.BAD_INPUT, Main.run("validation-report", "--dir", dir.resolve("nope").toString()));
    }
}
