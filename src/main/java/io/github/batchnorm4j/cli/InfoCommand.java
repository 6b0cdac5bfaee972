package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.BackendInfo;
import io.github.batchnorm4j.Backends;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code batchnorm4j info}: every registered backend with its availability and detail (or the reason it is
 * unavailable), what {@code auto} picks and why, and the Java, OS and library versions.
 */
@Command(name = "info", mixinStandardHelpOptions = true,
        description = "Backends (available or why not), what 'auto' picks, Java/OS/library versions.")
final class InfoCommand implements Callable<Integer> {

    @Option(names = "--json", description = "One JSON object on one line.")
    boolean json;

    @Override
    public Integer call() {
        List<BackendInfo> infos = Backends.probeAll();
        String auto = Backends.describeAuto();
        String java = Runtime.version() + " (" + System.getProperty("java.vendor") + ", "
                + System.getProperty("java.home") + ")";
        String os = System.getProperty("os.name") + " " + System.getProperty("os.version") + " "
                + System.getProperty("os.arch") + ", " + Runtime.getRuntime().availableProcessors() + " processors";
        if (json) {
            List<Json> backends = new ArrayList<>();
            for (BackendInfo i : infos) {
                backends.add(new Json().put("name", i.name()).put("available", i.available()).put("detail", i.detail()));
            }
            System.out.println(new Json().put("library_version", Version.library()).put("java", java).put("os", os)
                    .put("auto", Backends.resolveAuto()).put("auto_reason", auto).put("backends", backends));
        } else {
            System.out.println("batchnorm4j " + Version.library());
            System.out.println("java     " + java);
            System.out.println("os       " + os);
            System.out.println(auto);
            System.out.println("backends:");
            for (BackendInfo i : infos) {
                System.out.printf("  %-9s %-12s %s%n", i.name(), i.available() ? "available" : "unavailable",
                        i.detail());
            }
        }
        return Main.OK;
    }
}
