package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.train.EpochMetrics;
import io.github.batchnorm4j.train.RunResult;
import io.github.batchnorm4j.train.TrainConfig;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Writes the per-epoch metrics of one or more runs as {@code metrics.csv} (one row per run and epoch) and
 * {@code metrics.json} (the configuration, then each run with its summary and epochs). Non-finite values (a diverged
 * run) are written as {@code NaN} in the CSV and {@code null} in the JSON.
 */
final class MetricsFiles {
    static final String CSV = "metrics.csv";
    static final String JSON = "metrics.json";

    private MetricsFiles() {
    }

    /** Writes both files into {@code dir} (which must exist); returns their paths (csv, json). */
    static List<Path> write(Path dir, String dataset, String backend, List<RunResult> runs) throws IOException {
        Path csv = dir.resolve(CSV);
        Path json = dir.resolve(JSON);
        Files.writeString(csv, csv(runs), StandardCharsets.UTF_8);
        Files.writeString(json, json(dataset, backend, runs) + "\n", StandardCharsets.UTF_8);
        return List.of(csv, json);
    }

    static String csv(List<RunResult> runs) {
        int layers = runs.isEmpty() ? 0 : runs.get(0).config().hidden().length;
        StringBuilder b = new StringBuilder("run,batch_norm,lr,epoch,train_loss,train_accuracy,test_loss,test_accuracy");
        for (int k = 1; k <= layers; k++) b.append(",dead_relu_layer").append(k);
        b.append(",epoch_seconds\n");
        for (RunResult r : runs) {
            for (EpochMetrics m : r.epochs()) {
                b.append(r.label()).append(',').append(r.config().batchNorm()).append(',')
                        .append(Json.number(r.config().lr())).append(',').append(m.epoch());
                for (double v : new double[] {m.trainLoss(), m.trainAccuracy(), m.testLoss(), m.testAccuracy()}) {
                    b.append(',').append(csvNumber(v));
                }
                for (double d : m.deadFraction()) b.append(',').append(csvNumber(d));
                b.append(',').append(csvNumber(m.seconds())).append('\n');
            }
        }
        return b.toString();
    }

    private static String csvNumber(double v) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, "%.6g", v) : "NaN";
    }

    static String json(String dataset, String backend, List<RunResult> runs) {
        List<Json> rs = new ArrayList<>();
        for (RunResult r : runs) {
            TrainConfig c = r.config();
            List<Json> eps = new ArrayList<>();
            for (EpochMetrics m : r.epochs()) {
                eps.add(Json.spaced().put("epoch", m.epoch()).put("train_loss", m.trainLoss())
                        .put("train_accuracy", m.trainAccuracy()).put("test_loss", m.testLoss())
                        .put("test_accuracy", m.testAccuracy()).put("dead_relu", m.deadFraction())
                        .put("seconds", m.seconds()));
            }
            double[] hidden = new double[c.hidden().length];
            for (int i = 0; i < hidden.length; i++) hidden[i] = c.hidden()[i];
            rs.add(Json.spaced().put("label", r.label()).put("batch_norm", c.batchNorm()).put("lr", c.lr())
                    .put("momentum", c.momentum()).put("weight_decay", c.weightDecay()).put("batch_size", c.batchSize())
                    .put("hidden", hidden).put("seed", c.seed()).put("epochs", c.epochs())
                    .put("test_accuracy", r.testAccuracy()).put("seconds", r.seconds())
                    .put("seconds_per_epoch", r.secondsPerEpoch()).put("history", eps));
        }
        return Json.spaced().put("dataset", dataset).put("backend", backend).put("runs", rs).toString();
    }
}
