package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.ptx.EmulatorOptions;
import io.github.batchnorm4j.testing.TestData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Ordering mutants of the persistent kernels' partial exchange, each caught by the emulator's memory-ordering model
 * through {@link DeviceResidentBatchNorm} on the persistent path: both {@code membar.gl} of the grid barrier deleted
 * (the writer's fence before its arrival, the reader's after the spin), and the first {@code ld.global.cg} of a
 * partial turned into {@code ld.global.nc} (read through the non-coherent path while other blocks wrote it), in each
 * of the 24 persistent kernels (float32, float16, bfloat16), on shapes whose channels span 2 to 4 blocks.
 *
 * <p>{@code mvn test} runs the 24 mutants of the float32 kernels and 8 of the 48 of the 16-bit kernels (the same
 * template code: one mutant per direction × view × width, float16 forward and bfloat16 backward, the three kinds in
 * turn); {@code -Dbatchnorm4j.persistentMutants=all} runs all 72.
 */
class PersistentOrderingMutantsTest {
    private static final Pattern ENTRY = Pattern.compile("^\\.visible \\.entry (\\w+)\\(");

    record Mutant(String module, int line, String kind, String replacement, String kernel) {
        @Override
        public String toString() {
            return kind + " in " + kernel + " line " + line;
        }
    }

    /** Every mutant of every persistent kernel (the structure test counts these). */
    static Stream<Mutant> allMutants() {
        List<Mutant> out = new ArrayList<>();
        for (String module : List.of(PtxModules.FORWARD, PtxModules.BACKWARD)) {
            String[] lines = PtxModules.read(module).split("\n", -1);
            String kernel = null;
            boolean cgDone = false;
            for (int i = 0; i < lines.length; i++) {
                Matcher e = ENTRY.matcher(lines[i]);
                if (e.find()) {
                    kernel = e.group(1);
                    cgDone = false;
                }
                if (kernel == null || !kernel.startsWith("bn_persist_")) continue;
                String l = lines[i].trim();
                if (l.equals("membar.gl;")) out.add(new Mutant(module, i + 1, "fence deleted", "", kernel));
                if (l.startsWith("ld.global.cg.") && !cgDone) {
                    out.add(new Mutant(module, i + 1, "ld.cg -> ld.nc", lines[i].replace(".cg.", ".nc."), kernel));
                    cgDone = true;
                }
            }
        }
        return out.stream();
    }

    /** What mutantIsCaught runs: see the class comment. */
    static Stream<Mutant> mutants() {
        List<Mutant> all = allMutants().toList();
        if ("all".equals(System.getProperty("batchnorm4j.persistentMutants"))) return all.stream();
        List<String> sixteen = all.stream().map(Mutant::kernel).filter(k -> k.contains("f16")).distinct().toList();
        List<Mutant> out = new ArrayList<>();
        for (Mutant m : all) {
            int j = sixteen.indexOf(m.kernel());
            if (j < 0) {
                out.add(m);
                continue;
            }
            // Kernels 0-7 are the forward ones (f16 first), 8-15 the backward ones: f16 forward, bf16 backward.
            boolean keepKernel = (j % 8 < 4) == (j < 8);
            List<Mutant> own = all.stream().filter(o -> o.kernel().equals(m.kernel())).toList();
            if (keepKernel && own.indexOf(m) == j % own.size()) out.add(m);
        }
        return out.stream();
    }

    @Test
    void everyPersistentKernelHasItsBarrierFencesAndPartialLoadsMutated() {
        assertEquals(24 + 8, mutants().count(), () -> mutants().toList().toString());
        List<Mutant> all = allMutants().toList();
        assertEquals(48, all.stream().filter(m -> m.kind().equals("fence deleted")).count(), all::toString);
        assertEquals(24, all.stream().filter(m -> m.kind().equals("ld.cg -> ld.nc")).count(), all::toString);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("mutants")
    void mutantIsCaught(Mutant m) {
        DeviceException e = assertThrows(DeviceException.class, () -> run(m), m.toString());
        String msg = e.getMessage();
        assertTrue(msg.contains("kernel " + m.kernel() + " (module " + m.module() + ")"), msg);
        assertTrue(msg.contains("global address 0x"), msg);
        if (m.kind().equals("ld.cg -> ld.nc")) {
            assertTrue(msg.contains("line " + m.line() + " ") && msg.contains("ld.global.nc of global address"), msg);
        } else {
            assertTrue(msg.contains("not ordered after that store") && msg.contains("writer block ("), msg);
        }
    }

    private static void run(Mutant m) {
        String k = m.kernel();
        boolean cf = k.contains("_cf");
        boolean vec = k.endsWith("_vec4") || k.endsWith("_vec8");
        DType t = k.contains("_bf16") ? DType.BFLOAT16 : k.contains("_f16") ? DType.FLOAT16 : DType.FLOAT32;
        // 16-bit vector kernels hold more elements per thread (80 forward, 64 or 56 backward): larger shapes split.
        boolean wide = vec && t.is16Bit();
        Shape shape = cf ? (vec ? Shape.channelsFirst(wide ? 24 : 12, 1, 32, 32) : Shape.channelsFirst(6, 1, 1365))
                : (vec ? Shape.channelsLast(wide ? 3000 : 2048, 8) : Shape.channelsLast(1024, 9));
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        SplittableRandom rng = TestData.random(m.line());
        // No coverage: Coverage keys kernels by PTX text, so a mutant's counts could never reach the shipped kernels'
        // at the gate, but every mutant is a text of its own and would only add rows nobody reads (mvn test's
        // coverage.tsv grew from 3.7 to 20.8 MB with both mutant tests recording).
        try (EmulatedDevice dev = new EmulatedDevice(EmulatorOptions.defaults().withBlockOrderSeed(m.line()), null);
             DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev, name -> mutate(name, m));
             DeviceBuffer x = dev.allocate(4L * n); DeviceBuffer dy = dev.allocate(4L * n);
             DeviceBuffer out = dev.allocate(4L * n); DeviceBuffer ch = dev.allocate(4L * 4 * 256)) {
            bn.setTrainingPath(DeviceResidentBatchNorm.TrainingPath.AUTO);
            DeviceStream s = dev.defaultStream();
            float[] xs = TestData.perChannelNormal(rng, shape), dys = TestData.normal(rng, n, 0, 1);
            if (t.is16Bit()) {
                dev.copyToDevice(t.encode(xs), 0, x.pointer(), n, s);
                dev.copyToDevice(t.encode(dys), 0, dy.pointer(), n, s);
            } else {
                dev.copyToDevice(xs, 0, x.pointer(), n, s);
                dev.copyToDevice(dys, 0, dy.pointer(), n, s);
            }
            DevicePointer mean = ch.at(0), invstd = ch.at(1024);
            dev.copyToDevice(TestData.normal(rng, c, 0, 1), 0, mean, c, s);
            dev.copyToDevice(TestData.uniform(rng, c, 0.5, 1.5), 0, invstd, c, s);
            if (k.startsWith("bn_persist_fwd")) {
                bn.forwardTraining(shape, t, x.pointer(), null, null, 1e-5, null, null, 0.1, out.pointer(),
                        ch.at(2048), ch.at(3072), s);
            } else {
                bn.backwardTraining(shape, t, x.pointer(), dy.pointer(), null, mean, invstd, out.pointer(), null,
                        null, s);
            }
            List<String> launched = dev.launchHistory().stream().map(r -> r.kernel()).toList();
            if (!launched.contains(k)) throw new AssertionError("ran " + launched + ", not " + k);
        }
    }

    /** The mutated line replaced; every other kernel of both modules an empty stub (lines blanked: short runs). */
    private static String mutate(String module, Mutant m) {
        String[] lines = PtxModules.read(module).split("\n", -1);
        if (module.equals(m.module())) lines[m.line() - 1] = m.replacement();
        StringBuilder stubs = new StringBuilder();
        boolean blank = false;
        for (int i = 0; i < lines.length; i++) {
            Matcher e = ENTRY.matcher(lines[i]);
            if (e.find()) {
                blank = !e.group(1).equals(m.kernel());
                if (blank) stubs.append(".visible .entry ").append(e.group(1)).append("()\n{\n\tret;\n}\n");
            }
            if (blank) lines[i] = "";
        }
        return String.join("\n", lines) + "\n" + stubs;
    }
}
