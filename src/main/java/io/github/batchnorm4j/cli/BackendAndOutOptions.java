package io.github.batchnorm4j.cli;

import java.nio.file.Path;
import picocli.CommandLine.Option;

/**
 * The last two options of {@code forward} and {@code backward}, a picocli mixin: {@code --backend} (default
 * {@code auto}) and the required output folder {@code --out}. Shared so that both commands spell, default and
 * describe them alike.
 */
final class BackendAndOutOptions {

    @Option(names = "--backend", defaultValue = "auto", paramLabel = "B",
            description = "auto (cuda when available, else cpu) or a backend listed by 'info' (default: ${DEFAULT-VALUE}).")
    String backend;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output directory (created).")
    Path out;
}
