package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.train.EpochMetrics;
import io.github.batchnorm4j.train.TrainListener;
import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

import java.io.PrintWriter;
import java.util.Locale;

/**
 * What {@code train} shows while it runs: a progress bar over each epoch's batches on stderr (only on an interactive
 * terminal, never when {@code CI} is set, so logs stay clean), and one line per epoch on stdout with the loss,
 * accuracies, dead-unit fractions and time.
 */
final class TrainProgress implements TrainListener {
    private final PrintWriter out;
    private final boolean bar;
    private ProgressBar current;

    TrainProgress(PrintWriter out, boolean bar) {
        this.out = out;
        this.bar = bar;
    }

    /** True when stderr is worth a live progress bar: a console is attached and CI is not set. */
    static boolean interactive() {
        String ci = System.getenv("CI");
        return System.console() != null && (ci == null || ci.isEmpty() || ci.equalsIgnoreCase("false"));
    }

    @Override
    public void epochStarted(String run, int epoch, int epochs, int batches) {
        if (!bar) return;
        current = new ProgressBarBuilder().setTaskName(String.format(Locale.ROOT, "%s %d/%d", run, epoch, epochs))
                .setInitialMax(batches).setStyle(ProgressBarStyle.COLORFUL_UNICODE_BLOCK)
                .setConsumer(new ConsoleProgressBarConsumer(System.err)).setUpdateIntervalMillis(100)
                .clearDisplayOnFinish().build();
    }

    @Override
    public void batchDone(String run, int done, int batches) {
        if (current != null) current.stepTo(done);
    }

    @Override
    public void epochFinished(String run, EpochMetrics m, int epochs) {
        if (current != null) {
            current.close();
            current = null;
        }
        StringBuilder dead = new StringBuilder();
        for (double d : m.deadFraction()) dead.append(dead.length() == 0 ? "" : "/").append(fmt("%.2f", d));
        out.println(fmt("[%s] epoch %2d/%d  loss %.4f  train_acc %.4f  test_loss %.4f  test_acc %.4f  dead %s  %.2f s",
                run, m.epoch(), epochs, m.trainLoss(), m.trainAccuracy(), m.testLoss(), m.testAccuracy(),
                dead.length() == 0 ? "-" : dead, m.seconds()));
        out.flush();
    }

    static String fmt(String f, Object... args) {
        return String.format(Locale.ROOT, f, args);
    }
}
