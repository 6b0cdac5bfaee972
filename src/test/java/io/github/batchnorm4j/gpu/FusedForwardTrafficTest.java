package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.ReluMask;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.ptx.EmulatorOptions;
import io.github.batchnorm4j.testing.TestData;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The traffic budgets of the fused forward (docs/design.md §3) hold within 3 % on both layouts, scalar and vector paths,
 * float32 and 16-bit, measured by the emulator (checks off): with S = bytes of x and the mask's 4 bytes per word,
 * two-pass training 1 S (statistics) + 2 S (x read, y written) + 1 S (z read, with a residual) + mask, eval 2 S (+ 1 S)
 * + mask; every sector at least 90 % used when runs or rows start on 32-byte boundaries (the apply's tiles are
 * 512-byte aligned spans of the flat tensor whatever the shape; only the statistics kernel reads rows that straddle
 * sectors).
 */
class FusedForwardTrafficTest {
    static Stream<Object[]> cases() {
        return Stream.of(
                new Object[]{Shape.channelsFirst(1024, 64, 1, 1), DType.FLOAT32},   // inner 1
                new Object[]{Shape.channelsFirst(16, 64, 7, 7), DType.FLOAT32},     // inner 49, scalar
                new Object[]{Shape.channelsFirst(4, 32, 28, 28), DType.FLOAT32},    // float4 runs
                new Object[]{Shape.channelsFirst(4, 3, 33, 65), DType.FLOAT32},     // scalar runs
                new Object[]{Shape.channelsLast(8, 14, 14, 64), DType.FLOAT32},     // float4 rows
                new Object[]{Shape.channelsLast(512, 131), DType.FLOAT32},          // scalar rows of 131 floats
                new Object[]{Shape.channelsFirst(4, 32, 28, 28), DType.FLOAT16},    // 8 halves per unit
                new Object[]{Shape.channelsLast(8, 14, 14, 64), DType.BFLOAT16},
                new Object[]{Shape.channelsLast(512, 131), DType.FLOAT16});         // scalar halves
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void fusedForwardMovesItsBudget(Shape s, DType dtype) {
        try (HostArrayBatchNormOps ops = new HostArrayBatchNormOps("emulator",
                new EmulatedDevice(EmulatorOptions.defaults().withoutChecks()), true)) {
            SplittableRandom r = TestData.random(s.hashCode());
            int n = s.elementCountAsInt(), c = s.channels();
            float[] x = TestData.perChannelNormal(r, s), z = TestData.normal(r, n, 0, 1);
            float[] g = TestData.uniform(r, c, 0.5, 1.5), b = TestData.normal(r, c, 0, 1);
            float[] rm = TestData.normal(r, c, 0, 1), rv = TestData.uniform(r, c, 0.5, 2);
            float[] mean = new float[c], invstd = new float[c];
            int[] mask = ReluMask.allocate(s);
            long bytes = (long) dtype.bytes() * n;
            long maskBytes = 4L * ReluMask.words(n);
            // Runs or rows that start on 32-byte boundaries: the statistics kernel reads whole sectors (the apply
            // always does).
            boolean aligned = (s.layout() == io.github.batchnorm4j.Layout.CHANNELS_FIRST ? s.inner() : s.channels())
                    * dtype.bytes() % 32 == 0;
            for (boolean residual : new boolean[]{false, true}) {
                int streams = residual ? 1 : 0;
                if (dtype == DType.FLOAT32) {
                    ops.forwardTrainingRelu(s, x, residual ? z : null, g, b, 1e-5, rm, rv, 0.1, new float[n], mask,
                            mean, invstd);
                } else {
                    ops.forwardTrainingRelu(s, dtype, dtype.encode(x), residual ? dtype.encode(z) : null, g, b, 1e-5,
                            rm, rv, 0.1, new short[n], mask, mean, invstd);
                }
                assertBudget("training residual=" + residual, ops, (3 + streams) * bytes + maskBytes, 2, aligned);
                if (dtype == DType.FLOAT32) {
                    ops.forwardInferenceRelu(s, x, residual ? z : null, g, b, rm, rv, 1e-5, new float[n], mask);
                } else {
                    ops.forwardInferenceRelu(s, dtype, dtype.encode(x), residual ? dtype.encode(z) : null, g, b, rm,
                            rv, 1e-5, new short[n], mask);
                }
                assertBudget("eval residual=" + residual, ops, (2 + streams) * bytes + maskBytes, 2, aligned);
            }
        }
    }

    private static void assertBudget(String op, HostArrayBatchNormOps ops, long budget, int launches,
                                     boolean aligned) {
        TrafficMetrics m = ops.lastOperationMetrics().orElseThrow();
        assertEquals(launches, m.launches(), op + ": launches " + ops.lastOperationLaunches());
        assertTrue(ops.lastOperationLaunches().get(1).kernel().startsWith("bn_apply_relu"),
                op + ": " + ops.lastOperationLaunches());
        double ratio = (double) m.bytesMoved() / budget;
        assertTrue(ratio >= 1 && ratio <= 1.03, op + ": " + m.bytesMoved() + " bytes moved, budget " + budget
                + " bytes within 3 % (" + ratio + "; " + m + ")");
        if (aligned) {
            assertTrue(m.sectorEfficiency() >= 0.9, op + ": sector efficiency " + m.sectorEfficiency() + " (" + m
                    + ")");
        }
    }
}
