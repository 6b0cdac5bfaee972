package io.github.batchnorm4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.batchnorm4j.train.MiniJson;
import io.github.batchnorm4j.train.Plots;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The figures README.md and docs/training.md quote from {@code batchnorm4j train --compare} come from that run: this
 * test runs the command (CPU backend, defaults), computes every quoted figure from its metrics.json, and compares them
 * with the text between {@code <!-- fig:NAME -->} and {@code <!-- /fig -->} in the documents, the JSON example lines,
 * and the data digest of the committed plot docs/train-compare-digits.png. A change that moves any of them fails here
 * until the documents are regenerated:
 *
 * <pre>scripts/update-doc-figures.sh   # = mvn -q -o test -Dtest=DocsFiguresTest -Dbatchnorm4j.updateDocs=true</pre>
 *
 * which rewrites the marked text, copies the run's summary.png to docs/, and also runs the learning-rate sweep (two
 * more --compare runs) whose other entries this test, to stay fast, does not re-run: it checks the sweep's lr 0.05
 * and 0.5 entries, which are the default run's. The figures are those of a JVM with fused multiply-add (the CPU
 * backend uses it where HotSpot does: x86-64 since Haswell, ARMv8); without it the last bits differ and the test is
 * skipped.
 */
class DocsFiguresTest {
    static final Path README = Path.of("README.md");
    static final Path PLOT = Path.of("docs", "train-compare-digits.png");
    static final String UPDATE = "batchnorm4j.updateDocs";
    private static final Pattern MARKER = Pattern.compile("<!-- fig:([a-z0-9-]+) -->(.*?)<!-- /fig -->", Pattern.DOTALL);
    private static final Pattern SWEEP_ENTRY = Pattern.compile("(?:\\*\\*)?([0-9.]+): ([0-9.]+) / ([0-9.]+)(?:\\*\\*)?");

    @TempDir
    Path tmp;

    /** One run of --compare as metrics.json records it. */
    record Run(String label, boolean bn, double lr, int[] hidden, List<Map<?, ?>> history) {
        double acc(int epoch) {
            return num(history.get(epoch - 1).get("test_accuracy"));
        }

        double finalAcc() {
            return acc(history.size());
        }

        double[] dead(int epoch) {
            List<?> d = (List<?>) history.get(epoch - 1).get("dead_relu");
            double[] out = new double[d.size()];
            for (int i = 0; i < out.length; i++) out[i] = num(d.get(i));
            return out;
        }

        /** Fraction of all hidden units that are dead after {@code epoch}. */
        double deadAll(int epoch) {
            double[] d = dead(epoch);
            double units = 0;
            double sum = 0;
            for (int i = 0; i < d.length; i++) {
                sum += d[i] * hidden[i];
                units += hidden[i];
            }
            return sum / units;
        }

        String firstEpoch(double threshold) {
            for (int e = 1; e <= history.size(); e++) if (acc(e) >= threshold) return Integer.toString(e);
            return "never";
        }

        int bestEpoch() {
            int best = 1;
            for (int e = 2; e <= history.size(); e++) if (acc(e) > acc(best)) best = e;
            return best;
        }

        double trainLoss(int epoch) {
            return num(history.get(epoch - 1).get("train_loss"));
        }

        String name() {
            return (bn ? "BN" : "plain") + ", lr " + Json.number(lr);
        }
    }

    static double num(Object o) {
        return ((Number) o).doubleValue();
    }

    static List<Run> runs(Path metricsJson) throws IOException {
        Map<String, Object> m = MiniJson.parseObject(Files.readString(metricsJson));
        List<Run> out = new ArrayList<>();
        for (Object o : (List<?>) m.get("runs")) {
            Map<?, ?> r = (Map<?, ?>) o;
            List<?> h = (List<?>) r.get("hidden");
            int[] hidden = new int[h.size()];
            for (int i = 0; i < hidden.length; i++) hidden[i] = (int) num(h.get(i));
            List<Map<?, ?>> history = new ArrayList<>();
            for (Object e : (List<?>) r.get("history")) history.add((Map<?, ?>) e);
            out.add(new Run((String) r.get("label"), (Boolean) r.get("batch_norm"), num(r.get("lr")), hidden, history));
        }
        return out;
    }

    private static String pct(double v, int decimals) {
        return String.format(Locale.ROOT, "%." + decimals + "f", 100 * v);
    }

    private static String sig2(double v) {
        return new java.math.BigDecimal(v).round(new java.math.MathContext(2)).stripTrailingZeros().toPlainString();
    }

    /** Final accuracy, with the best epoch's when it was at least a point higher. */
    private static String finalWithBest(Run r, boolean withEpoch) {
        String f = pct(r.finalAcc(), 2) + "%";
        if (r.bn) f = "**" + f + "**";
        int b = r.bestEpoch();
        if (r.acc(b) - r.finalAcc() >= 0.01) {
            f += " (best " + pct(r.acc(b), 1) + "%" + (withEpoch ? ", epoch " + b : "") + ")";
        }
        return f;
    }

    /** Every figure the documents quote, by marker name, from the four runs of train --compare. */
    static Map<String, String> figures(List<Run> runs) {
        Run bn = runs.get(0);
        Run plain = runs.get(1);
        Run bnHigh = runs.get(2);
        Run plainHigh = runs.get(3);
        int last = plainHigh.history.size();
        Map<String, String> f = new LinkedHashMap<>();
        StringBuilder t = new StringBuilder("\n| run | final test accuracy | after epoch 1 | first epoch ≥ 97% | dead ReLUs"
                + " (layer 1 / layer 2) |\n| --- | --- | --- | --- | --- |\n");
        StringBuilder full = new StringBuilder("\n| run | final test accuracy | after epoch 1 | first epoch ≥ 95% | first"
                + " epoch ≥ 97% | dead ReLUs (layer 1 / layer 2) |\n| --- | --- | --- | --- | --- | --- |\n");
        for (Run r : runs) {
            double[] d = r.dead(r.history.size());
            String dead = String.format(Locale.ROOT, "%.2f / %.2f", d[0], d[1]);
            t.append("| ").append(r.name()).append(" | ").append(finalWithBest(r, false)).append(" | ")
                    .append(pct(r.acc(1), 1)).append("% | ").append(r.firstEpoch(0.97)).append(" | ").append(dead)
                    .append(" |\n");
            full.append("| ").append(r.name()).append(" | ").append(finalWithBest(r, true)).append(" | ")
                    .append(pct(r.acc(1), 1)).append("% | ").append(r.firstEpoch(0.95)).append(" | ")
                    .append(r.firstEpoch(0.97)).append(" | ").append(dead).append(" |\n");
        }
        f.put("compare-table", t.toString());
        f.put("compare-table-full", full.toString());
        String bnHighEnd = pct(bnHigh.finalAcc(), 1) + "%" + (bnHigh.acc(bnHigh.bestEpoch()) - bnHigh.finalAcc() >= 0.01
                ? " (best " + pct(bnHigh.acc(bnHigh.bestEpoch()), 1) + "%)" : "");
        f.put("compare-summary", "Batch norm reaches 97% at epoch " + bn.firstEpoch(0.97) + " instead of "
                + plain.firstEpoch(0.97) + ", and at the high learning rate it still ends at " + bnHighEnd
                + " while the plain network's ReLUs die (" + pct(plainHigh.deadAll(last), 0) + "% of hidden units"
                + " never fire by the end) and it ends at " + pct(plainHigh.finalAcc(), 1) + "%.");
        f.put("convergence", "at the normal learning rate batch norm reaches 97% test accuracy at epoch "
                + bn.firstEpoch(0.97) + ", the plain network at epoch " + plain.firstEpoch(0.97) + "; after one epoch"
                + " the test accuracy is " + pct(bn.acc(1), 1) + "% with batch norm and " + pct(plain.acc(1), 1)
                + "% without.");
        double lossMin = Double.MAX_VALUE;
        double lossMax = 0;
        double accMin = 1;
        double accMax = 0;
        for (int e = 1; e <= last; e++) {
            lossMin = Math.min(lossMin, plainHigh.trainLoss(e));
            lossMax = Math.max(lossMax, plainHigh.trainLoss(e));
            accMin = Math.min(accMin, plainHigh.acc(e));
            accMax = Math.max(accMax, plainHigh.acc(e));
        }
        f.put("stability", "at lr " + Json.number(plainHigh.lr) + " (" + Math.round(plainHigh.lr / plain.lr)
                + "×) the plain network never recovers from its first"
                + " steps: its training loss stays between " + sig2(lossMin) + " and " + sig2(lossMax) + " and its test"
                + " accuracy wanders between " + pct(accMin, 0) + "% and " + pct(accMax, 0) + "%, ending at "
                + pct(plainHigh.finalAcc(), 1) + "%; with batch norm the same network, same seed, same batches, still"
                + " ends at " + bnHighEnd + ".");
        double[] d = plainHigh.dead(last);
        f.put("dead-units", "without batch norm the large early updates push most pre-activations negative for every"
                + " input: after the first epoch " + pct(plainHigh.deadAll(1), 0) + "% of the hidden units never fire"
                + " on the test set, at the end " + pct(plainHigh.deadAll(last), 0) + "% (" + pct(d[0], 0) + "% of the"
                + " first layer, " + pct(d[1], 0) + "% of the second), and their weights get no gradient again.");
        f.put("epoch1-bn", pct(bn.acc(1), 2) + "%");
        return f;
    }

    /** The sweep entry "lr: BN / plain" (final accuracies at one decimal) of a pair of runs at one rate. */
    static String sweepEntry(Run bn, Run plain) {
        String rate = bn.lr == Math.rint(bn.lr) ? String.format(Locale.ROOT, "%.1f", bn.lr) : Json.number(bn.lr);
        return rate + ": " + pct(bn.finalAcc(), 1) + " / " + pct(plain.finalAcc(), 1);
    }

    private static boolean hasFma() {
        try {
            var bean = ManagementFactory.getPlatformMXBean(com.sun.management.HotSpotDiagnosticMXBean.class);
            return Boolean.parseBoolean(bean.getVMOption("UseFMA").getValue());
        } catch (RuntimeException | LinkageError e) {
            return false;
        }
    }

    /** {@code text} broken into lines of at most 120 columns, the first starting at {@code column}. */
    static String wrap(String text, int column, String indent) {
        StringBuilder b = new StringBuilder();
        int col = column;
        for (String w : text.split(" ")) {
            if (b.length() > 0) {
                if (col + 1 + w.length() > 120) {
                    b.append('\n').append(indent);
                    col = indent.length();
                } else {
                    b.append(' ');
                    col++;
                }
            }
            b.append(w);
            col += w.length();
        }
        return b.toString();
    }

    /** README.md and every markdown file under docs/ (figures may move between them). */
    static List<Path> documents() throws IOException {
        List<Path> docs = new ArrayList<>(List.of(README));
        try (var s = Files.walk(Path.of("docs"))) {
            s.filter(p -> p.toString().endsWith(".md")).sorted().forEach(docs::add);
        }
        return docs;
    }

    private InProcess.Result lastRun;

    private Path compare(String... extra) {
        Path out = tmp.resolve("compare" + String.join("", extra).replace("-", ""));
        List<String> args = new ArrayList<>(List.of("train", "--compare", "--backend", "cpu", "--no-progress", "--out",
                out.toString()));
        args.addAll(List.of(extra));
        InProcess.Result r = InProcess.run(args.toArray(String[]::new));
        assertEquals(0, r.exitCode(), r::toString);
        lastRun = r;
        return out;
    }

    @Test
    void readmeAndDocsFiguresComeFromAFreshRunOfTrainCompare() throws IOException {
        assumeTrue(hasFma(), "the documented figures are those of a JVM with fused multiply-add");
        boolean update = Boolean.getBoolean(UPDATE);
        Path out = compare();
        InProcess.Result printed = lastRun;
        List<Run> runs = runs(out.resolve("metrics.json"));
        assertEquals(4, runs.size());
        Map<String, String> figures = figures(runs);
        String sweepDefault = sweepEntry(runs.get(0), runs.get(1));
        String sweepHigh = "**" + sweepEntry(runs.get(2), runs.get(3)) + "**";
        if (update) {
            List<Run> low = runs(compare("--lr", "0.02", "--high-lr", "0.1").resolve("metrics.json"));
            List<Run> high = runs(compare("--lr", "0.2", "--high-lr", "1").resolve("metrics.json"));
            figures.put("lr-sweep", String.join("; ", sweepEntry(low.get(0), low.get(1)), sweepDefault,
                    sweepEntry(low.get(2), low.get(3)), sweepEntry(high.get(0), high.get(1)), sweepHigh,
                    sweepEntry(high.get(2), high.get(3))));
            Files.copy(out.resolve("summary.png"), PLOT, StandardCopyOption.REPLACE_EXISTING);
        }

        List<String> mismatches = new ArrayList<>();
        int checked = 0;
        for (Path doc : documents()) {
            String text = Files.readString(doc);
            Matcher m = MARKER.matcher(text);
            StringBuilder rewritten = new StringBuilder();
            while (m.find()) {
                String name = m.group(1);
                String committed = m.group(2);
                String fresh = figures.get(name);
                if (name.equals("lr-sweep") && fresh == null) {
                    // Only its default-rate entries are re-run here: both must be in the committed sweep.
                    for (String entry : new String[] {sweepDefault, sweepHigh}) {
                        if (!committed.contains(entry)) {
                            mismatches.add(doc + " lr-sweep: expected the entry '" + entry + "' in '" + committed + "'");
                        }
                    }
                    assertTrue(SWEEP_ENTRY.matcher(committed).find(), committed);
                    fresh = committed;
                }
                if (fresh == null) {
                    mismatches.add(doc + ": unknown figure '" + name + "'");
                    fresh = committed;
                }
                if (!fresh.startsWith("\n")) {
                    // Prose: compared with its line breaks as spaces, written wrapped at 120 columns as the rest.
                    int lineStart = text.lastIndexOf('\n', m.start()) + 1;
                    String lead = text.substring(lineStart, m.start(2));
                    String indent = lead.substring(0, lead.length() - lead.stripLeading().length());
                    if (lead.stripLeading().startsWith("- ")) indent += "  ";
                    fresh = wrap(fresh, lead.length(), indent);
                }
                if (!fresh.replaceAll("\\s+", " ").equals(committed.replaceAll("\\s+", " "))) {
                    mismatches.add(doc + " " + name + ":\n  committed: " + committed + "\n  this run:  " + fresh);
                }
                m.appendReplacement(rewritten, Matcher.quoteReplacement("<!-- fig:" + name + " -->" + fresh
                        + "<!-- /fig -->"));
                checked++;
            }
            m.appendTail(rewritten);
            // The JSON example of the last line of train: its test_accuracy is the default run's.
            String expected = "{\"test_accuracy\": " + Json.number(runs.get(0).finalAcc()) + ",";
            String json = rewritten.toString().replaceAll("\\{\"test_accuracy\": [0-9.]+,", Matcher.quoteReplacement(expected));
            if (!json.equals(rewritten.toString())) mismatches.add(doc + ": the JSON example's test_accuracy, expected " + expected);
            if (update) Files.writeString(doc, json);
        }
        assertTrue(checked >= 8, checked + " marked figures: the markers were removed?");

        String committedDigest = Plots.readDataDigest(PLOT);
        String freshDigest = Plots.readDataDigest(out.resolve("summary.png"));
        assertNotNull(freshDigest);
        if (!freshDigest.equals(committedDigest)) {
            mismatches.add(PLOT + ": plots data " + committedDigest + ", this run's summary.png plots " + freshDigest);
        }
        assertTrue(update || mismatches.isEmpty(), "the documents quote figures this run does not produce; run"
                + " scripts/update-doc-figures.sh (and read the diff):\n" + String.join("\n", mismatches));

        // What the command printed and wrote, as a user reads it (was TrainCommandTest's 2-epoch compare).
        String[] lines = printed.stdout().strip().split("\\R");
        Map<String, Object> json = MiniJson.parseObject(lines[lines.length - 1]);
        for (String k : List.of("test_accuracy", "bn_test_accuracy", "plain_test_accuracy", "high_lr",
                "bn_high_lr_test_accuracy", "plain_high_lr_test_accuracy", "epochs", "seconds", "backend", "out")) {
            assertTrue(json.containsKey(k), "missing key " + k + " in " + lines[lines.length - 1]);
        }
        assertEquals(runs.get(2).finalAcc(), num(json.get("bn_high_lr_test_accuracy")), 1e-6);
        assertEquals(out.toString(), json.get("out"));
        assertTrue(printed.stdout().contains("output: " + out), printed::toString);
        assertTrue(printed.stdout().contains("[plain lr=0.5] epoch 20/20"), printed::toString);
        List<String> csv = Files.readAllLines(out.resolve("metrics.csv"));
        assertEquals(1 + 4 * 20, csv.size(), "header + 4 runs x 20 epochs");
        for (String line : csv) assertEquals(csv.get(0).split(",").length, line.split(",").length, line);
        for (String png : Plots.FILES) {
            BufferedImage img = ImageIO.read(out.resolve(png).toFile());
            assertNotNull(img, png + " does not decode");
            int scale = png.equals("summary.png") ? 2 : 1;
            assertEquals(scale * Plots.WIDTH, img.getWidth(), png);
            assertEquals(scale * Plots.HEIGHT, img.getHeight(), png);
            assertEquals(freshDigest, Plots.readDataDigest(out.resolve(png)), png);
        }
    }
}
