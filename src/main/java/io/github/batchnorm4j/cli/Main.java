package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.BackendUnavailableException;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/**
 * The {@code batchnorm4j} command line (docs/design.md §5, a stable interface): forward, backward, check, bench, info,
 * train.
 *
 * <p>Exit codes: {@link #OK} 0 success; {@link #FAILED} 1 a check or validation failed; {@link #BAD_INPUT} 2 bad usage
 * or bad input, with exactly one line on stderr starting with {@code error:}; {@link #UNAVAILABLE} 3 the backend asked
 * for cannot be used here (the line says why). A subcommand is added by naming its class in {@code subcommands}.
 */
@Command(name = "batchnorm4j", mixinStandardHelpOptions = true, versionProvider = Version.class,
        description = "Batch normalization for Java on NVIDIA GPUs (and the CPU): run, check and time it on .npy files.",
        subcommands = {
            ForwardCommand.class,
            BackwardCommand.class,
            CheckCommand.class,
            BenchCommand.class,
            InfoCommand.class,
            TrainCommand.class,
        })
public final class Main implements Callable<Integer> {
    /** Success. */
    public static final int OK = 0;
    /** A check or a validation found wrong results. */
    public static final int FAILED = 1;
    /** Bad usage or bad input. */
    public static final int BAD_INPUT = 2;
    /** The backend asked for is unavailable. */
    public static final int UNAVAILABLE = 3;

    @Spec
    CommandSpec spec;

    /** Runs the command line and exits with its code. */
    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the command line and returns the exit code (for embedding; output goes to System.out/err). */
    public static int run(String... args) {
        CommandLine cl = new CommandLine(new Main());
        cl.setCaseInsensitiveEnumValuesAllowed(true);
        cl.setParameterExceptionHandler((ex, a) -> {
            String cmd = ex.getCommandLine().getCommandSpec().qualifiedName();
            return error(ex.getCommandLine().getErr(), BAD_INPUT, ex.getMessage() + " (see '" + cmd + " --help')");
        });
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> exitCodeOf(ex, cmd.getErr()));
        return cl.execute(args);
    }

    /** No subcommand: a usage error listing the subcommands. */
    @Override
    public Integer call() {
        throw new CommandLine.ParameterException(spec.commandLine(), "missing subcommand: expected one of "
                + String.join(", ", spec.subcommands().keySet()));
    }

    /** Maps an exception of a subcommand to its exit code, printing the one-line message. */
    static int exitCodeOf(Exception ex, PrintWriter err) {
        if (ex instanceof BackendUnavailableException) return error(err, UNAVAILABLE, ex.getMessage());
        if (ex instanceof CommandLine.ParameterException) return error(err, BAD_INPUT, ex.getMessage());
        if (ex instanceof IllegalArgumentException) return error(err, BAD_INPUT, ex.getMessage());
        if (ex instanceof IOException || ex instanceof UncheckedIOException) return error(err, BAD_INPUT, ex.toString());
        // Anything else is a bug: say so, with the stack trace after the error line.
        error(err, FAILED, "internal error: " + ex);
        ex.printStackTrace(err);
        err.flush();
        return FAILED;
    }

    /** Prints {@code error: message} on one line and returns {@code code}. */
    static int error(PrintWriter err, int code, String message) {
        String line = message == null ? "(no message)" : message.replaceAll("\\s*[\\r\\n]+\\s*", " ").strip();
        err.println("error: " + line);
        err.flush();
        return code;
    }
}
