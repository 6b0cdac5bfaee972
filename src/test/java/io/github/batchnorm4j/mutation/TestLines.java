package io.github.batchnorm4j.mutation;

import io.github.batchnorm4j.ptx.Coverage;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.engine.support.descriptor.ClassSource;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.TestPlan;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Deque;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Which tests execute which PTX lines (the unmutated run of a {@link MutationWorker} records it): a mutant then needs
 * only the tests that execute its line, since a test that never reaches the line runs exactly the unmutated code. Reads
 * the emulator's process-wide coverage ({@code BATCHNORM4J_COVERAGE} must be set) before and after each test and gives
 * the lines whose counts grew to that test; what runs outside a test (a class's {@code @BeforeAll}) goes to its class,
 * and anything outside every class to {@code *}, "run everything".
 *
 * <p>File format, tab-separated: {@code T <index> <seconds> <unique id>} per test or class, then
 * {@code L <module> <line> <index>,<index>...} per executed line.
 */
final class TestLines implements TestExecutionListener {
    static final String EVERYTHING = "*";

    private final Coverage coverage = Coverage.fromEnvironment().orElseThrow(() -> new IllegalStateException(
            "recording which tests execute which lines needs " + Coverage.ENV + " set"));
    private final Map<String, long[]> previous = new HashMap<>();
    private final Map<String, Integer> index = new LinkedHashMap<>();
    private final List<Double> seconds = new ArrayList<>();
    private final Map<String, BitSet> byLine = new LinkedHashMap<>();
    private final Deque<TestIdentifier> running = new ArrayDeque<>();
    private final Map<String, Long> startedAt = new HashMap<>();
    private TestPlan plan;

    @Override
    public void testPlanExecutionStarted(TestPlan testPlan) {
        plan = testPlan;
        running.clear();
    }

    @Override
    public void executionStarted(TestIdentifier id) {
        attribute(running.peek());
        running.push(id);
        startedAt.put(id.getUniqueId(), System.nanoTime());
    }

    @Override
    public void executionFinished(TestIdentifier id, TestExecutionResult result) {
        attribute(id);
        running.remove(id);
        Long t0 = startedAt.remove(id.getUniqueId());
        if (t0 != null && id.isTest() && index.containsKey(id.getUniqueId())) {
            int i = index.get(id.getUniqueId());
            seconds.set(i, seconds.get(i) + (System.nanoTime() - t0) / 1e9);
        }
    }

    /** Gives the lines executed since the last call to {@code node}'s test (or class, or everything). */
    private void attribute(TestIdentifier node) {
        String target = target(node);
        Integer t = null;
        for (Coverage.KernelCoverage k : coverage.kernels()) {
            String key = k.module() + "\u0000" + k.kernel() + "\u0000" + k.source();
            long[] before = previous.computeIfAbsent(key, x -> new long[k.instructions().size()]);
            for (int i = 0; i < before.length; i++) {
                Coverage.Instruction in = k.instructions().get(i);
                if (in.threads() == before[i]) continue;
                before[i] = in.threads();
                if (t == null) t = indexOf(target);
                byLine.computeIfAbsent(k.module() + "\t" + in.line(), x -> new BitSet()).set(t);
            }
        }
    }

    private int indexOf(String target) {
        Integer i = index.get(target);
        if (i == null) {
            i = index.size();
            index.put(target, i);
            seconds.add(0.0);
        }
        return i;
    }

    /** The test itself; for a container (or a dynamic test, which cannot be selected alone), its class. */
    private String target(TestIdentifier node) {
        for (TestIdentifier n = node; n != null; n = parent(n)) {
            if (n.isTest() && !n.getUniqueId().contains("[dynamic-test:")) return n.getUniqueId();
            if (!n.getUniqueId().contains("[dynamic-") && n.getSource().filter(s -> s instanceof ClassSource).isPresent()) {
                return n.getUniqueId();
            }
        }
        return EVERYTHING;
    }

    private TestIdentifier parent(TestIdentifier n) {
        if (plan == null) return null;
        Optional<TestIdentifier> p = plan.getParent(n);
        return p.orElse(null);
    }

    void write(Path file) {
        try (BufferedWriter w = Files.newBufferedWriter(file, StandardCharsets.UTF_8)) {
            for (Map.Entry<String, Integer> e : index.entrySet()) {
                w.write("T\t" + e.getValue() + "\t" + String.format(java.util.Locale.ROOT, "%.4f", seconds.get(e.getValue()))
                        + "\t" + e.getKey() + "\n");
            }
            for (Map.Entry<String, BitSet> e : byLine.entrySet()) {
                StringBuilder b = new StringBuilder("L\t").append(e.getKey()).append('\t');
                e.getValue().stream().forEach(i -> b.append(i).append(','));
                b.setLength(b.length() - 1);
                w.write(b.append('\n').toString());
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
