package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.ptx.Coverage;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.ptx.EmulatorOptions;
import io.github.batchnorm4j.testing.TestData;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.List;
import java.util.SplittableRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The gate judges the shipped PTX text whatever else ran under its names: a mutant of a shipped kernel, loaded under
 * the shipped module name and launched before the shipped kernel (as OrderingMutantsTest and
 * PersistentOrderingMutantsTest do, in whatever order the suite runs them), leaves the gate's row of that kernel exactly
 * as the shipped launch alone makes it: not judged in its place (a mutant of another length) and not added to its
 * counts (a mutant of the same length).
 */
class KernelCoverageGateTest {
    private static final String KERNEL = "bn_apply_cf_vec4";
    /** Channels-first with inner >= 128 and aligned buffers: forward inference launches {@link #KERNEL}. */
    private static final Shape SHAPE = Shape.channelsFirst(2, 3, 256);
    private static final Pattern ENTRY = Pattern.compile("^\\.visible \\.entry (\\w+)\\(");

    @ParameterizedTest
    @ValueSource(strings = {"a line more", "the same length"})
    void aMutantLaunchedFirstUnderTheShippedNameLeavesTheGatesViewOfTheShippedKernelUnchanged(String kind) {
        String shipped = PtxModules.read(PtxModules.FORWARD);
        String mutant = mutant(shipped, kind);
        assertNotEquals(shipped, mutant);

        Coverage alone = new Coverage();
        run(alone, shipped);
        Coverage mixed = new Coverage();
        run(mixed, mutant);
        run(mixed, shipped);

        KernelCoverageGate.Row expected = row(alone), actual = row(mixed);
        assertNotNull(expected.missing(), "the shipped kernel was launched");
        assertTrue(expected.executed() > 0);
        assertEquals(expected, actual, "the gate's row of " + KERNEL + " after a mutant ran first");

        // not vacuous: the mutant did record, under the shipped module and kernel names
        List<Coverage.KernelCoverage> named = mixed.kernels().stream()
                .filter(k -> k.module().equals(PtxModules.FORWARD) && k.kernel().equals(KERNEL)).toList();
        assertEquals(2, named.size(), "the mutant's and the shipped kernel's coverage");
        assertEquals(kind.equals("a line more") ? 1 : 0, named.get(0).total() - named.get(1).total());
    }

    private static KernelCoverageGate.Row row(Coverage c) {
        return KernelCoverageGate.rows(c).stream().filter(r -> r.kernel().equals(KERNEL)).findFirst().orElseThrow();
    }

    /**
     * The forward module with one line of {@link #KERNEL} doubled (an idempotent parameter load) or its first fma
     * rounding toward zero, every other entry but bn_prepare a stub (as OrderingMutantsTest loads its mutants; a small text parses
     * fast). Lines of {@link #KERNEL} keep their numbers.
     */
    private static String mutant(String ptx, String kind) {
        String[] lines = ptx.split("\n", -1);
        StringBuilder stubs = new StringBuilder();
        boolean blank = false, mutated = false;
        String current = "";
        for (int i = 0; i < lines.length; i++) {
            Matcher e = ENTRY.matcher(lines[i]);
            if (e.find()) {
                current = e.group(1);
                blank = !current.equals(KERNEL) && !current.equals("bn_prepare"); // forward inference runs both
                if (blank) stubs.append(".visible .entry ").append(e.group(1)).append("()\n{\n\tret;\n}\n");
            }
            if (blank) {
                lines[i] = "";
            } else if (!mutated && !current.equals(KERNEL)) {
                continue;
            } else if (!mutated && kind.equals("a line more") && lines[i].startsWith("\tld.param.u64")) {
                lines[i] = lines[i] + " " + lines[i].trim(); // two statements on one line: numbers unchanged
                mutated = true;
            } else if (!mutated && kind.equals("the same length") && lines[i].contains("fma.rn.f32")) {
                lines[i] = lines[i].replace("fma.rn.f32", "fma.rz.f32");
                mutated = true;
            }
        }
        assertTrue(mutated, KERNEL + " has a line to mutate");
        return String.join("\n", lines) + "\n" + stubs;
    }

    private static void run(Coverage coverage, String forwardPtx) {
        int n = SHAPE.elementCountAsInt(), c = SHAPE.channels();
        SplittableRandom rng = TestData.random(17);
        try (EmulatedDevice dev = new EmulatedDevice(EmulatorOptions.defaults(), coverage);
             DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev,
                     name -> name.equals(PtxModules.FORWARD) ? forwardPtx : PtxModules.read(name));
             DeviceBuffer x = dev.allocate(4L * n); DeviceBuffer y = dev.allocate(4L * n);
             DeviceBuffer ch = dev.allocate(4L * 4 * c)) {
            DeviceStream s = dev.defaultStream();
            dev.copyToDevice(TestData.perChannelNormal(rng, SHAPE), 0, x.at(0), n, s);
            dev.copyToDevice(TestData.normal(rng, c, 0, 1), 0, ch.at(0), c, s);
            dev.copyToDevice(TestData.uniform(rng, c, 0.5, 1.5), 0, ch.at(4L * c), c, s);
            dev.copyToDevice(TestData.normal(rng, c, 0, 1), 0, ch.at(8L * c), c, s);
            dev.copyToDevice(TestData.uniform(rng, c, 0.5, 1.5), 0, ch.at(12L * c), c, s);
            bn.forwardInference(SHAPE, x.at(0), ch.at(0), ch.at(4L * c), ch.at(8L * c), ch.at(12L * c), 1e-5, y.at(0), s);
            s.synchronize();
            assertTrue(dev.launchHistory().stream().anyMatch(l -> l.kernel().equals(KERNEL)),
                    SHAPE + " launches " + KERNEL);
        }
    }
}
