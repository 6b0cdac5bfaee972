package io.github.batchnorm4j.train;

import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.CategorySeries;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.lines.SeriesLines;
import org.knowm.xchart.style.markers.SeriesMarkers;

import javax.imageio.ImageIO;
import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * PNG charts of training runs with XChart, rendered off-screen (headless: no display needed):
 * <ul>
 *   <li>{@code loss.png}: mean training loss per epoch (log scale), every run on one chart;</li>
 *   <li>{@code accuracy.png}: test accuracy per epoch;</li>
 *   <li>{@code dead_relu.png}: fraction of dead ReLU units per hidden layer after the last epoch, per run;</li>
 *   <li>{@code dead_relu_epochs.png}: fraction of all hidden ReLU units that are dead, after each epoch;</li>
 *   <li>{@code summary.png}: the four in a 2x2 grid.</li>
 * </ul>
 * Colour tells batch norm (blue) from plain (red); the line style and a lighter shade tell the learning rates apart
 * (solid for the first, dashed for the next). A diverged epoch (non-finite loss) is left out of the loss chart.
 */
public final class Plots {
    /** Size of each chart in pixels. */
    public static final int WIDTH = 560;
    public static final int HEIGHT = 400;

    private static final Color BN = new Color(31, 119, 180);
    private static final Color BN_LIGHT = new Color(120, 175, 225);
    private static final Color PLAIN = new Color(214, 39, 40);
    private static final Color PLAIN_LIGHT = new Color(245, 140, 130);

    private Plots() {
    }

    /** Writes the five PNG files into {@code dir}; returns their paths. */
    public static List<Path> write(Path dir, String dataset, List<RunResult> runs) throws IOException {
        System.setProperty("java.awt.headless", "true");
        BufferedImage loss = BitmapEncoder.getBufferedImage(lossChart(dataset, runs));
        BufferedImage acc = BitmapEncoder.getBufferedImage(accuracyChart(dataset, runs));
        BufferedImage dead = BitmapEncoder.getBufferedImage(deadChart(dataset, runs));
        BufferedImage deadEpochs = BitmapEncoder.getBufferedImage(deadEpochChart(dataset, runs));
        List<Path> out = new ArrayList<>();
        out.add(save(loss, dir.resolve("loss.png")));
        out.add(save(acc, dir.resolve("accuracy.png")));
        out.add(save(dead, dir.resolve("dead_relu.png")));
        out.add(save(deadEpochs, dir.resolve("dead_relu_epochs.png")));
        BufferedImage all = new BufferedImage(2 * WIDTH, 2 * HEIGHT, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = all.createGraphics();
        try {
            g.drawImage(loss, 0, 0, null);
            g.drawImage(acc, WIDTH, 0, null);
            g.drawImage(deadEpochs, 0, HEIGHT, null);
            g.drawImage(dead, WIDTH, HEIGHT, null);
        } finally {
            g.dispose();
        }
        out.add(save(all, dir.resolve("summary.png")));
        return out;
    }

    private static Path save(BufferedImage img, Path p) throws IOException {
        if (!ImageIO.write(img, "png", p.toFile())) throw new IOException("no PNG writer for " + p);
        return p;
    }

    static XYChart lossChart(String dataset, List<RunResult> runs) {
        XYChart chart = new XYChartBuilder().width(WIDTH).height(HEIGHT).title("Training loss (" + dataset + ")")
                .xAxisTitle("epoch").yAxisTitle("mean cross-entropy (log)").build();
        style(chart);
        chart.getStyler().setYAxisLogarithmic(true);
        for (RunResult r : runs) {
            List<Double> xs = new ArrayList<>();
            List<Double> ys = new ArrayList<>();
            for (EpochMetrics m : r.epochs()) {
                // Log axis: only finite, positive values can be drawn.
                if (Double.isFinite(m.trainLoss()) && m.trainLoss() > 0) {
                    xs.add((double) m.epoch());
                    ys.add(m.trainLoss());
                }
            }
            if (xs.isEmpty()) continue;
            decorate(chart.addSeries(r.label(), xs, ys), r, runs);
        }
        return chart;
    }

    static XYChart accuracyChart(String dataset, List<RunResult> runs) {
        XYChart chart = new XYChartBuilder().width(WIDTH).height(HEIGHT).title("Test accuracy (" + dataset + ")")
                .xAxisTitle("epoch").yAxisTitle("accuracy").build();
        style(chart);
        chart.getStyler().setYAxisMin(0.0).setYAxisMax(1.0).setLegendPosition(Styler.LegendPosition.InsideSE);
        for (RunResult r : runs) {
            List<Double> xs = new ArrayList<>();
            List<Double> ys = new ArrayList<>();
            for (EpochMetrics m : r.epochs()) {
                xs.add((double) m.epoch());
                ys.add(m.testAccuracy());
            }
            decorate(chart.addSeries(r.label(), xs, ys), r, runs);
        }
        return chart;
    }

    static XYChart deadEpochChart(String dataset, List<RunResult> runs) {
        XYChart chart = new XYChartBuilder().width(WIDTH).height(HEIGHT).title("Dead ReLUs per epoch (" + dataset + ")")
                .xAxisTitle("epoch").yAxisTitle("fraction of hidden units never active").build();
        style(chart);
        // Outside: dead fractions span the whole height, any corner of the plot may hold a curve.
        chart.getStyler().setYAxisMin(0.0).setYAxisMax(1.0).setLegendPosition(Styler.LegendPosition.OutsideS);
        for (RunResult r : runs) {
            int[] widths = r.config().hidden();
            int total = 0;
            for (int w : widths) total += w;
            if (total == 0) continue;
            List<Double> xs = new ArrayList<>();
            List<Double> ys = new ArrayList<>();
            for (EpochMetrics m : r.epochs()) {
                // Unit-weighted over the layers: the fraction of all hidden units that are dead.
                double dead = 0;
                double[] d = m.deadFraction();
                for (int k = 0; k < d.length; k++) dead += d[k] * widths[k];
                xs.add((double) m.epoch());
                ys.add(dead / total);
            }
            decorate(chart.addSeries(r.label(), xs, ys), r, runs);
        }
        return chart;
    }

    static CategoryChart deadChart(String dataset, List<RunResult> runs) {
        CategoryChart chart = new CategoryChartBuilder().width(WIDTH).height(HEIGHT)
                .title("Dead ReLUs after training (" + dataset + ")").xAxisTitle("hidden layer")
                .yAxisTitle("fraction of units never active on test set").build();
        Styler s = chart.getStyler();
        s.setChartBackgroundColor(Color.WHITE);
        s.setLegendPosition(Styler.LegendPosition.InsideNW);
        s.setLegendBorderColor(Color.LIGHT_GRAY);
        chart.getStyler().setYAxisMin(0.0).setYAxisMax(1.0);
        chart.getStyler().setOverlapped(false);
        // Values on the bars: a 0 bar (no dead unit) is otherwise invisible.
        chart.getStyler().setLabelsVisible(true);
        chart.getStyler().setDecimalPattern("0.00");
        for (RunResult r : runs) {
            double[] dead = r.last().deadFraction();
            List<String> layers = new ArrayList<>();
            List<Double> ys = new ArrayList<>();
            for (int k = 0; k < dead.length; k++) {
                layers.add("layer " + (k + 1));
                ys.add(dead[k]);
            }
            if (layers.isEmpty()) continue;
            CategorySeries cs = chart.addSeries(r.label(), layers, ys);
            cs.setFillColor(color(r, runs));
        }
        return chart;
    }

    private static void style(XYChart chart) {
        Styler s = chart.getStyler();
        s.setChartBackgroundColor(Color.WHITE);
        s.setLegendPosition(Styler.LegendPosition.InsideNE);
        s.setLegendBorderColor(Color.LIGHT_GRAY);
        chart.getStyler().setMarkerSize(4);
    }

    private static void decorate(XYSeries s, RunResult r, List<RunResult> runs) {
        s.setLineColor(color(r, runs));
        s.setMarkerColor(color(r, runs));
        s.setMarker(SeriesMarkers.CIRCLE);
        s.setLineStyle(lrIndex(r, runs) == 0 ? SeriesLines.SOLID : SeriesLines.DASH_DASH);
    }

    /** Blue for batch norm, red for plain; lighter for the second learning rate. */
    private static Color color(RunResult r, List<RunResult> runs) {
        boolean first = lrIndex(r, runs) == 0;
        if (r.config().batchNorm()) return first ? BN : BN_LIGHT;
        return first ? PLAIN : PLAIN_LIGHT;
    }

    /** Position of the run's learning rate among the distinct learning rates, in order of appearance. */
    private static int lrIndex(RunResult r, List<RunResult> runs) {
        Set<Float> lrs = new LinkedHashSet<>();
        for (RunResult x : runs) lrs.add(x.config().lr());
        return new ArrayList<>(lrs).indexOf(r.config().lr());
    }
}
