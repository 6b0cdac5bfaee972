package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.BackendUnavailableException;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ScopeType;
import picocli.CommandLine.Spec;

/**
 * The {@code batchnorm4j} command line (docs/design.md §5, a stable interface): forward, backward, check, bench, info,
 * train.
 *
 * <p>Exit codes: {@link #OK} 0 success; {@link #FAILED} 1 a check or validation failed; {@link #BAD_INPUT} 2 bad usage
 * or bad input, with exactly one line on stderr starting with {@code error:}; {@link #UNAVAILABLE} 3 the backend asked
 * for cannot be used here (the line says why). An unexpected exception (a bug) is exit 1 with one line, and its stack
 * trace only with {@code --debug} or {@code BATCHNORM4J_DEBUG=1}. A subcommand is added by naming its class in
 * {@code subcommands}.
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
            ValidationReportCommand.class,
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

    /** Set by {@code --debug} or {@code BATCHNORM4J_DEBUG=1}: internal errors print their stack trace. */
    static final String DEBUG_ENV = "BATCHNORM4J_DEBUG";

    @Spec
    CommandSpec spec;

    @Option(names = "--debug", scope = ScopeType.INHERIT,
            description = "On an internal error, print its Java stack trace (also: BATCHNORM4J_DEBUG=1).")
    boolean debug;

    /** Runs the command line and exits with its code. */
    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the command line and returns the exit code (for embedding; output goes to System.out/err). */
    public static int run(String... args) {
        return run(new PrintWriter(System.out, true), new PrintWriter(System.err, true), args);
    }

    /** Runs the command line with its output on {@code out} and {@code err}; returns the exit code. */
    static int run(PrintWriter out, PrintWriter err, String... args) {
        boolean debug = debugRequested(args);
        try {
            CommandLine cl = commandLine(new Main());
            cl.setOut(out);
            cl.setErr(err);
            cl.setParameterExceptionHandler((ex, a) -> {
                String cmd = ex.getCommandLine().getCommandSpec().qualifiedName();
                return error(ex.getCommandLine().getErr(), BAD_INPUT, ex.getMessage() + " (see '" + cmd + " --help')");
            });
            cl.setExecutionExceptionHandler((ex, cmd, parsed) -> exitCodeOf(ex, cmd.getErr(), debug));
            return cl.execute(args);
        } catch (OutOfMemoryError e) {
            // Inputs are checked against the heap before allocating; this is what those checks cannot foresee.
            return error(err, BAD_INPUT, "out of memory: the input is too large for this JVM's maximum heap of "
                    + Inputs.mib(Runtime.getRuntime().maxMemory()) + " (raise it, e.g. BATCHNORM4J_JAVA_OPTS=-Xmx8g)");
        } catch (StackOverflowError | LinkageError e) {
            return internalError(e, err, debug);
        }
    }

    /**
     * A command line of {@code command} with this tool's settings: case-insensitive enum values, and numbers that
     * refuse to round to 0 or infinity (a user who typed {@code --eps 1e-400} must hear about 1e-400, not 0.0).
     */
    static CommandLine commandLine(Object command) {
        CommandLine cl = new CommandLine(command);
        cl.setCaseInsensitiveEnumValuesAllowed(true);
        cl.registerConverter(Double.class, Main::parseDouble);
        cl.registerConverter(double.class, Main::parseDouble);
        cl.registerConverter(Float.class, Main::parseFloat);
        cl.registerConverter(float.class, Main::parseFloat);
        return cl;
    }

    /** Whether the stack trace of an internal error should be shown. */
    static boolean debugRequested(String... args) {
        for (String a : args) {
            if (a.equals("--")) break;
            if (a.equals("--debug")) return true;
        }
        String env = System.getenv(DEBUG_ENV);
        return env != null && !env.isEmpty() && !env.equals("0");
    }

    /** A double as Java reads it, except that a non-zero number that rounds to 0 or a finite one to infinity fails. */
    static double parseDouble(String text) {
        double v = Double.parseDouble(text.strip());
        checkRounding(text, v == 0, Double.isInfinite(v), "a double");
        return v;
    }

    /** A float as Java reads it, except that a non-zero number that rounds to 0 or a finite one to infinity fails. */
    static float parseFloat(String text) {
        float v = Float.parseFloat(text.strip());
        checkRounding(text, v == 0, Float.isInfinite(v), "a float");
        return v;
    }

    private static void checkRounding(String text, boolean zero, boolean infinite, String type) {
        if (!zero && !infinite) return;
        BigDecimal exact;
        try {
            exact = new BigDecimal(text.strip());
        } catch (NumberFormatException e) {
            return; // Infinity, NaN, hexadecimal: as written
        }
        if (zero && exact.signum() != 0) {
            throw new CommandLine.TypeConversionException("'" + text + "' is too small for " + type
                    + ": it would round to 0");
        }
        if (infinite) {
            throw new CommandLine.TypeConversionException("'" + text + "' is too large for " + type
                    + ": it would round to infinity");
        }
    }

    /** No subcommand: a usage error listing the subcommands. */
    @Override
    public Integer call() {
        throw new CommandLine.ParameterException(spec.commandLine(), "missing subcommand: expected one of "
                + String.join(", ", spec.subcommands().entrySet().stream()
                        .filter(e -> !e.getValue().getCommandSpec().usageMessage().hidden()).map(Map.Entry::getKey)
                        .toList()));
    }

    /** Maps an exception of a subcommand to its exit code, printing the one-line message. */
    static int exitCodeOf(Exception ex, PrintWriter err) {
        return exitCodeOf(ex, err, debugRequested());
    }

    /** As {@link #exitCodeOf(Exception, PrintWriter)}; {@code debug} adds the stack trace of an internal error. */
    static int exitCodeOf(Exception ex, PrintWriter err, boolean debug) {
        if (ex instanceof BackendUnavailableException) return error(err, UNAVAILABLE, ex.getMessage());
        if (ex instanceof CommandLine.ParameterException) return error(err, BAD_INPUT, ex.getMessage());
        if (ex instanceof IllegalArgumentException) return error(err, BAD_INPUT, ex.getMessage());
        if (ex instanceof IOException io) return error(err, BAD_INPUT, Inputs.describe(io));
        if (ex instanceof UncheckedIOException u) return error(err, BAD_INPUT, Inputs.describe(u.getCause()));
        return internalError(ex, err, debug);
    }

    /** Anything else is a bug: one line saying so; the stack trace only when asked for. */
    private static int internalError(Throwable ex, PrintWriter err, boolean debug) {
        error(err, FAILED, "internal error: " + ex + (debug ? "" : " (run with --debug or " + DEBUG_ENV
                + "=1 for the stack trace, and please report it)"));
        if (debug) ex.printStackTrace(err);
        err.flush();
        return FAILED;
    }

    /** Prints {@code error: message} on one line and returns {@code code}. */
    static int error(PrintWriter err, int code, String message) {
        String line = message == null ? "(no message)" : message.replaceAll("\\s*\\R+\\s*", " ").strip();
        err.println("error: " + line);
        err.flush();
        return code;
    }
}
