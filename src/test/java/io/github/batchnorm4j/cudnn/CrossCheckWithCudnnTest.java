package io.github.batchnorm4j.cudnn;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.cli.CrossCheck;
import io.github.batchnorm4j.cpu.CpuBatchNormOps;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * {@code check}'s cross-check with the cudnn backend, without a GPU: cuDNN over the fake against the CPU backend and
 * float64. The operations cuDNN does not offer (eval-mode backward, statistics, normalize) are reported as
 * unsupported, in both tables, and are not failures; every other row passes and all buffers are released.
 */
class CrossCheckWithCudnnTest {
    // The fused eval-mode backward composes backwardInference, which cuDNN lacks.
    private static final Set<String> UNSUPPORTED = Set.of("backward-eval", "statistics", "normalize",
            "backward-eval-relu");

    @Test
    void cudnnOverTheFakeAgreesWithTheCpuAndFloat64AndSaysWhatItCannotDo() {
        HostDevice device = new HostDevice();
        try (BatchNormOps cpu = new CpuBatchNormOps();
             BatchNormOps cudnn = new CudnnBatchNormOps(new FakeCudnnApi(device), device, false, 0.0)) {
            CrossCheck.Report r = CrossCheck.run(List.of(cpu, cudnn), 5, List.of(DType.values()));
            assertEquals(List.of("cpu", "cudnn"), r.backends());
            assertEquals(0, r.failures(), () -> r.rows().stream().filter(x -> !x.pass()).toList().toString()
                    + r.pairs().stream().filter(x -> !x.pass()).toList());
            for (CrossCheck.Row row : r.rows()) {
                boolean unsupported = row.backend().equals("cudnn") && UNSUPPORTED.contains(row.op());
                assertEquals(unsupported ? CrossCheck.Result.UNSUPPORTED : CrossCheck.Result.PASS, row.result(),
                        row.toString());
                if (unsupported) {
                    assertTrue(row.detail().startsWith("unsupported: cudnn backend: "), row.toString());
                }
            }
            for (CrossCheck.PairRow p : r.pairs()) {
                assertEquals("cpu~cudnn", p.pair());
                if (UNSUPPORTED.contains(p.op())) {
                    assertEquals(CrossCheck.Result.UNSUPPORTED, p.result(), p.toString());
                    assertEquals("cudnn unsupported", p.detail());
                } else {
                    assertEquals(CrossCheck.Result.PASS, p.result(), p.toString());
                    assertTrue(p.maxRelError() <= p.tolerance(), p.toString());
                }
            }
        }
        assertTrue(device.live.isEmpty(), "every device buffer freed: " + device.live.size() + " live");
    }

    @Test
    void aCudnnThatRefusesBfloat16IsReportedUnsupportedInBfloat16() {
        HostDevice device = new HostDevice();
        FakeCudnnApi api = new FakeCudnnApi(device);
        api.refusedDataTypes.add(9); // CUDNN_DATA_BFLOAT16
        try (BatchNormOps cpu = new CpuBatchNormOps();
             BatchNormOps cudnn = new CudnnBatchNormOps(api, device, false, 0.0)) {
            CrossCheck.Report r = CrossCheck.run(List.of(cpu, cudnn), 5, List.of(DType.FLOAT16, DType.BFLOAT16));
            assertEquals(0, r.failures(), () -> r.rows().stream().filter(x -> !x.pass()).toList().toString());
            for (CrossCheck.Row row : r.rows()) {
                if (!row.backend().equals("cudnn")) continue;
                // bfloat16's fused forward composes the float32 forward (which cuDNN runs) with a host epilogue
                boolean refused = row.dtype() == DType.BFLOAT16 && !row.op().endsWith("relu");
                if (refused && !UNSUPPORTED.contains(row.op())) {
                    assertEquals(CrossCheck.Result.UNSUPPORTED, row.result(), row.toString());
                    assertTrue(row.detail().contains("does not run bfloat16 batch norm here")
                            && row.detail().contains("CUDNN_STATUS_NOT_SUPPORTED"), row.toString());
                } else if (!UNSUPPORTED.contains(row.op())) {
                    assertEquals(CrossCheck.Result.PASS, row.result(), row.toString());
                }
            }
        }
        assertTrue(device.live.isEmpty(), "every device buffer freed: " + device.live.size() + " live");
    }
}
