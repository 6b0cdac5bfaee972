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

import javax.imageio.IIOImage;
import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.ImageTypeSpecifier;
import javax.imageio.ImageWriteParam;
import javax.imageio.ImageWriter;
import javax.imageio.metadata.IIOMetadata;
import javax.imageio.metadata.IIOMetadataNode;
import javax.imageio.stream.ImageInputStream;
import javax.imageio.stream.ImageOutputStream;
import org.w3c.dom.Node;
import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Locale;
import java.io.OutputStream;
import java.nio.file.Files;
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

    /** The names of the files {@link #write} writes. */
    public static final List<String> FILES = List.of("loss.png", "accuracy.png", "dead_relu.png",
            "dead_relu_epochs.png", "summary.png");

    /** Writes the five PNG files into {@code dir}; returns their paths. */
    public static List<Path> write(Path dir, String dataset, List<RunResult> runs) throws IOException {
        System.setProperty("java.awt.headless", "true");
        BufferedImage loss = BitmapEncoder.getBufferedImage(lossChart(dataset, runs));
        BufferedImage acc = BitmapEncoder.getBufferedImage(accuracyChart(dataset, runs));
        BufferedImage dead = BitmapEncoder.getBufferedImage(deadChart(dataset, runs));
        BufferedImage deadEpochs = BitmapEncoder.getBufferedImage(deadEpochChart(dataset, runs));
        String digest = dataDigest(runs);
        List<Path> out = new ArrayList<>();
        out.add(save(loss, dir.resolve("loss.png"), digest));
        out.add(save(acc, dir.resolve("accuracy.png"), digest));
        out.add(save(dead, dir.resolve("dead_relu.png"), digest));
        out.add(save(deadEpochs, dir.resolve("dead_relu_epochs.png"), digest));
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
        out.add(save(all, dir.resolve("summary.png"), digest));
        return out;
    }

    /** The PNG text keyword under which every chart carries {@link #dataDigest} of the data it shows. */
    public static final String DATA_KEYWORD = "batchnorm4j-data";

    /**
     * A digest of everything the charts show (per run: its label, and per epoch the training loss, test accuracy
     * and dead fractions, at 6 significant digits), written into each PNG as a text chunk: two charts with the same
     * digest plot the same numbers, whatever fonts drew them. The documentation's plot is checked against a fresh
     * run this way (DocsFiguresTest).
     */
    public static String dataDigest(List<RunResult> runs) {
        StringBuilder b = new StringBuilder();
        for (RunResult r : runs) {
            b.append(r.label()).append('\n');
            for (EpochMetrics m : r.epochs()) {
                b.append(String.format(Locale.ROOT, "%d %.6g %.6g", m.epoch(), m.trainLoss(), m.testAccuracy()));
                for (double d : m.deadFraction()) b.append(String.format(Locale.ROOT, " %.6g", d));
                b.append('\n');
            }
        }
        try {
            byte[] h = MessageDigest.getInstance("SHA-256").digest(b.toString().getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(h, 0, 16);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is required of every Java platform", e);
        }
    }

    /** The {@link #DATA_KEYWORD} text of a PNG written by this class, or null when it has none. */
    public static String readDataDigest(Path png) throws IOException {
        try (InputStream raw = Files.newInputStream(png); ImageInputStream in = ImageIO.createImageInputStream(raw)) {
            ImageReader reader = ImageIO.getImageReadersByFormatName("png").next();
            try {
                reader.setInput(in);
                Node root = reader.getImageMetadata(0).getAsTree(PNG_FORMAT);
                for (Node n = root.getFirstChild(); n != null; n = n.getNextSibling()) {
                    if (!n.getNodeName().equals("tEXt")) continue;
                    for (Node e = n.getFirstChild(); e != null; e = e.getNextSibling()) {
                        Node k = e.getAttributes().getNamedItem("keyword");
                        if (k != null && k.getNodeValue().equals(DATA_KEYWORD)) {
                            return e.getAttributes().getNamedItem("value").getNodeValue();
                        }
                    }
                }
                return null;
            } finally {
                reader.dispose();
            }
        }
    }

    private static final String PNG_FORMAT = "javax_imageio_png_1.0";

    /**
     * Writes a PNG with the data digest as a text chunk, through an ordinary output stream, so that a failure is an
     * I/O exception naming the file and the reason (ImageIO's own file output says only "Can't create an
     * ImageOutputStream!"), and without ImageIO's cache file in the temporary folder.
     */
    private static Path save(BufferedImage img, Path p, String digest) throws IOException {
        ImageIO.setUseCache(false);
        ImageWriter writer = ImageIO.getImageWritersByFormatName("png").next();
        try (OutputStream out = Files.newOutputStream(p);
             ImageOutputStream ios = ImageIO.createImageOutputStream(out)) {
            ImageWriteParam param = writer.getDefaultWriteParam();
            IIOMetadata meta = writer.getDefaultImageMetadata(ImageTypeSpecifier.createFromRenderedImage(img), param);
            IIOMetadataNode entry = new IIOMetadataNode("tEXtEntry");
            entry.setAttribute("keyword", DATA_KEYWORD);
            entry.setAttribute("value", digest);
            IIOMetadataNode text = new IIOMetadataNode("tEXt");
            text.appendChild(entry);
            IIOMetadataNode root = new IIOMetadataNode(PNG_FORMAT);
            root.appendChild(text);
            meta.mergeTree(PNG_FORMAT, root);
            writer.setOutput(ios);
            writer.write(null, new IIOImage(img, null, meta), param);
        } finally {
            writer.dispose();
        }
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
