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
import java.util.Set;
import java.util.SplittableRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static io.github.batchnorm4j.testing.Messages.assertMentions;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Ordering mutants of the shipped reduction kernels, each caught by the emulator's memory-ordering model with a
 * message naming the kernel, the PTX line, the blocks and the address: every {@code membar.gl} deleted (the writer's
 * fence before the arrival atomic, and the last block's fence before it reads the partials), every
 * {@code ld.global.cg} of a partial turned into {@code ld.global.nc}, and every
 * counter reset ({@code st.global.u32 [counter], 0} after the arrival atomic) deleted; the first {@code ld.global.cg}
 * of each kernel also turned into a plain {@code ld.global} (the check that catches it is the same for every load). One
 * mutant per run, on shapes whose channels are split across 4 blocks or across more blocks than the last block has
 * threads (which the merge loop's loads need), through {@link DeviceResidentBatchNorm} as the library runs them.
 * The float16 and bfloat16 kernels are instantiations of the same templates (their ordering instructions are the
 * float32 kernels', line for line): each gets the first mutant of each kind, run through the 16-bit operations; so do
 * the fused backward's sums kernels (bn_backward_reduce_relu_*: the same skeleton with a gated load), run through the
 * fused backward.
 */
class OrderingMutantsTest {
    private static final Pattern ENTRY = Pattern.compile("^\\.visible \\.entry (\\w+)\\(");
    private static final Pattern ATOM = Pattern.compile("atom\\.global\\.add\\.u32\\s+%r\\d+, \\[(%rd\\d+)\\]");

    /** One mutant: a module, a 1-based line, what replaces it, and the kernel holding it. */
    record Mutant(String module, int line, String kind, String replacement, String kernel) {
        @Override
        public String toString() {
            return kind + " in " + kernel + " line " + line;
        }
    }

    static Stream<Mutant> mutants() {
        List<Mutant> out = new ArrayList<>();
        Set<String> plainDone = new java.util.HashSet<>();
        Set<String> sixteenDone = new java.util.HashSet<>();   // (kernel, kind) of the 16-bit kernels already mutated
        for (String module : List.of(PtxModules.FORWARD, PtxModules.BACKWARD)) {
            String[] lines = PtxModules.read(module).split("\n", -1);
            String kernel = null;
            String counterReg = null;
            for (int i = 0; i < lines.length; i++) {
                Matcher e = ENTRY.matcher(lines[i]);
                if (e.find()) {
                    kernel = e.group(1);
                    counterReg = null;
                }
                String l = lines[i].trim();
                Matcher a = ATOM.matcher(l);
                if (a.find()) counterReg = a.group(1);
                if (l.equals("membar.gl;")) out.add(new Mutant(module, i + 1, "fence deleted", "", kernel));
                if (l.startsWith("ld.global.cg.")) {
                    out.add(new Mutant(module, i + 1, "ld.cg -> ld.nc", lines[i].replace(".cg.", ".nc."), kernel));
                    // the L1 check is the same for every load: the first of each kernel stands for the others
                    if (!plainDone.contains(kernel)) {
                        out.add(new Mutant(module, i + 1, "ld.cg -> ld", lines[i].replace(".cg.", "."), kernel));
                        plainDone.add(kernel);
                    }
                }
                if (counterReg != null && l.startsWith("st.global.u32") && l.contains("[" + counterReg + "]")) {
                    out.add(new Mutant(module, i + 1, "counter reset deleted", "", kernel));
                    counterReg = null;
                }
            }
        }
        // The persistent kernels (bn_persist_*) are left out: run() launches the two-pass reductions.
        return out.stream().filter(m -> !m.kernel().startsWith("bn_persist_"))
                .filter(m -> dtypeOf(m.kernel()) == DType.FLOAT32 && !fused(m.kernel())
                || sixteenDone.add(m.kernel() + "/" + m.kind()));
    }

    @Test
    void everyOrderingInstructionOfTheReductionsIsMutated() {
        List<Mutant> all = mutants().filter(m -> dtypeOf(m.kernel()) == DType.FLOAT32 && !fused(m.kernel())).toList();
        assertEquals(16, all.stream().filter(m -> m.kind().equals("fence deleted")).count(), "membar.gl");
        assertEquals(8, all.stream().filter(m -> m.kind().equals("ld.cg -> ld")).count(), "kernels with ld.global.cg");
        assertEquals(70, all.stream().filter(m -> m.kind().equals("ld.cg -> ld.nc")).count(), "ld.global.cg");
        assertEquals(8, all.stream().filter(m -> m.kind().equals("counter reset deleted")).count(), "counter resets");
        // each of the 16 reduction kernels of the 16-bit types: one mutant of each of the four kinds
        List<Mutant> sixteen = mutants().filter(m -> dtypeOf(m.kernel()) != DType.FLOAT32 && !fused(m.kernel()))
                .toList();
        assertEquals(16 * 4, sixteen.size(), "16-bit mutants: " + sixteen);
        // the fused backward's 12 sums kernels (bn_backward_reduce_relu_*, the same skeleton): one of each kind
        List<Mutant> relu = mutants().filter(m -> fused(m.kernel())).toList();
        assertEquals(12 * 4, relu.size(), "fused backward mutants: " + relu);
    }

    /** A kernel of the fused backward of BN + ReLU (it reads a ReLU mask). */
    static boolean fused(String kernel) {
        return kernel.contains("_relu_");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("mutants")
    void mutantIsCaughtWithKernelLineBlocksAndAddress(Mutant m) {
        // Small shapes (4 blocks per channel) first; the merge loop's loads only run with more partials than threads,
        // and read another block's partial only when that block is not the last to arrive: two block orders.
        DeviceException e = assertThrows(DeviceException.class, () -> {
            run(m, EmulatorOptions.defaults().withBlockOrderSeed(m.line()), false);
            run(m, EmulatorOptions.defaults().withBlockOrderSeed(m.line()), true);
            run(m, EmulatorOptions.defaults().withBlockOrderSeed(m.line() + 1), true);
        }, m.toString());
        String msg = e.getMessage();
        assertMentions(msg, "kernel " + m.kernel() + " (module " + m.module() + ")", "block (", "global address 0x",
                "of buffer #");
        switch (m.kind()) {
            case "ld.cg -> ld.nc" -> assertMentions(msg, "line " + m.line() + " ", "ld.global.nc of global address",
                    "stored (");
            case "ld.cg -> ld" -> assertMentions(msg, "line " + m.line() + " ", "stale L1 line", "writer block (",
                    "reader block (");
            case "counter reset deleted" -> assertMentions(msg, "must be zero after every launch",
                    "with the atomic at line ");
            default -> assertMentions(msg, "ld.global.cg", "not ordered after that store", "writer block (",
                    "reader block (");
        }
    }

    @Test
    void theOrderingCheckIsWhatCatchesThem() {
        // One mutant of each kind runs to completion (and gives results) with the ordering check off.
        for (String kind : List.of("fence deleted", "ld.cg -> ld.nc", "ld.cg -> ld", "counter reset deleted")) {
            Mutant m = mutants().filter(x -> x.kind().equals(kind)).findFirst().orElseThrow();
            assertDoesNotThrow(() -> run(m, EmulatorOptions.defaults().withOrderCheck(false), false), m.toString());
        }
    }

    /**
     * Runs the operation that launches {@code m.kernel()} once, with the mutated module, on a shape with 4 blocks per
     * channel (or column group), or with {@code large} more blocks than the last block has threads (or row groups)
     * to merge them: then its threads merge several partials each.
     */
    private static void run(Mutant m, EmulatorOptions options, boolean large) {
        String kernel = m.kernel();
        DType dtype = dtypeOf(kernel);
        boolean cf = kernel.contains("_cf");
        boolean vec = kernel.endsWith("_vec4") || kernel.endsWith("_vec8");
        // (a split block reads at least 1024 units: 257 splits of one channel need 257·1024 elements, or vectors of 4
        // floats or 8 halves; the 16-bit mutants are all caught by the small shapes, which run first)
        int largeN = vec ? 257 * LaunchGeometry.unit(true, dtype) : 257;
        Shape shape = cf ? (large ? Shape.channelsFirst(largeN, 1, 1024) : Shape.channelsFirst(16, 3, 32, 32))
                : (large ? Shape.channelsFirst(1088, 4, 16) : Shape.channelsLast(2, 48, 48, 8));
        // large: more partials than threads per channel (cf) or than block rows (rows view, where the vec4 kernel's
        // thread 0 then merges all 4 channels of its block)
        LaunchGeometry.Reduction g = LaunchGeometry.reduction(shape, vec, dtype);
        if (large ? g.splits() <= g.block().volume() / g.block().x() : g.splits() < 2) {
            throw new AssertionError(shape + ": " + g + ": adjust the shapes of this test");
        }
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        long skew = vec ? 0 : 4;   // a pointer 4 bytes off a 16-byte boundary takes the scalar kernels
        SplittableRandom rng = TestData.random(m.line());
        // no coverage: a mutant is a text of its own (see PersistentOrderingMutantsTest), its rows would be noise
        try (EmulatedDevice dev = new EmulatedDevice(options, null);
             DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev, name -> mutate(name, m));
             DeviceBuffer x = dev.allocate(4L * n + 16); DeviceBuffer dy = dev.allocate(4L * n + 16);
             DeviceBuffer out = dev.allocate(4L * n + 16); DeviceBuffer ch = dev.allocate(4L * 6 * 64)) {
            DeviceStream s = dev.defaultStream();
            if (dtype == DType.FLOAT32) {
                dev.copyToDevice(TestData.perChannelNormal(rng, shape), 0, x.at(skew), n, s);
                dev.copyToDevice(TestData.normal(rng, n, 0, 1), 0, dy.at(skew), n, s);
            } else {
                dev.copyToDevice(dtype.encode(TestData.perChannelNormal(rng, shape)), 0, x.at(skew), n, s);
                dev.copyToDevice(dtype.encode(TestData.normal(rng, n, 0, 1)), 0, dy.at(skew), n, s);
            }
            DevicePointer mean = ch.at(0), invstd = ch.at(256);
            dev.copyToDevice(TestData.normal(rng, c, 0, 1), 0, mean, c, s);
            dev.copyToDevice(TestData.uniform(rng, c, 0.5, 1.5), 0, invstd, c, s);
            if (kernel.startsWith("bn_stats")) {
                bn.forwardTraining(shape, dtype, x.at(skew), null, null, 1e-5, null, null, 0.1, out.at(skew),
                        ch.at(512), ch.at(768), s);
            } else if (fused(kernel)) {
                try (DeviceBuffer mask = dev.allocate(4L * io.github.batchnorm4j.ReluMask.words(n))) {
                    int[] bits = new int[io.github.batchnorm4j.ReluMask.wordsAsInt(n)];
                    for (int i = 0; i < bits.length; i++) bits[i] = rng.nextInt();
                    dev.copyToDevice(bits, 0, mask.pointer(), bits.length, s);
                    bn.backwardTrainingRelu(shape, dtype, x.at(skew), dy.at(skew), mask.pointer(), null, mean, invstd,
                            out.at(skew), null, ch.at(1024), ch.at(1280), s);
                }
            } else {
                bn.backwardTraining(shape, dtype, x.at(skew), dy.at(skew), null, mean, invstd, out.at(skew),
                        ch.at(1024), ch.at(1280), s);
            }
            List<String> launched = dev.launchHistory().stream().map(r -> r.kernel()).toList();
            if (!launched.contains(kernel)) throw new AssertionError("ran " + launched + ", not " + kernel);
        }
    }

    /** The storage type a kernel's name says ("_f16", "_bf16", else float32). */
    static DType dtypeOf(String kernel) {
        return kernel.contains("_bf16") ? DType.BFLOAT16 : kernel.contains("_f16") ? DType.FLOAT16 : DType.FLOAT32;
    }

    /**
     * The module text for one mutant run: the mutated line replaced, and, to keep the run short, every kernel the
     * operation does not launch reduced to an empty stub (its lines blanked, so that line numbers do not move).
     */
    private static String mutate(String module, Mutant m) {
        String k = m.kernel();
        String partner = k.startsWith("bn_stats") ? k.replace("bn_stats", "bn_apply") : k.replace("bn_backward_reduce", "bn_dx");
        Set<String> keep = module.equals(m.module()) ? Set.of(k, partner) : Set.of();
        String[] lines = PtxModules.read(module).split("\n", -1);
        if (module.equals(m.module())) lines[m.line() - 1] = m.replacement();
        StringBuilder stubs = new StringBuilder();
        boolean blank = false;
        for (int i = 0; i < lines.length; i++) {
            Matcher e = ENTRY.matcher(lines[i]);
            if (e.find()) {
                blank = !keep.contains(e.group(1));
                if (blank) stubs.append(".visible .entry ").append(e.group(1)).append("()\n{\n\tret;\n}\n");
            }
            if (blank) lines[i] = "";
        }
        return String.join("\n", lines) + "\n" + stubs;
    }
}
