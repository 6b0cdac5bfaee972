package io.github.batchnorm4j.cli;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.List;

/**
 * Runs the command line in this JVM ({@link Main#run(PrintWriter, PrintWriter, String...)}) and captures what it
 * prints: many runs cost milliseconds each, where {@link Launcher} starts a JVM per run. Pass absolute paths: relative
 * ones resolve against the test JVM's working directory.
 */
final class InProcess {
    private InProcess() {
    }

    /** What one run produced. */
    record Result(int exitCode, String stdout, String stderr) {
        /** stderr's non-empty lines. */
        List<String> stderrLines() {
            List<String> out = new ArrayList<>();
            for (String l : stderr.split("\\R")) {
                if (!l.isBlank()) out.add(l);
            }
            return out;
        }

        /** The one error line of a refused run (exit 2 or 3), or an AssertionError describing the run. */
        String errorLine() {
            List<String> lines = stderrLines();
            if (lines.size() != 1 || !lines.get(0).startsWith("error: ")) {
                throw new AssertionError("expected exactly one line starting with 'error: ' on stderr\n" + this);
            }
            return lines.get(0);
        }

        @Override
        public String toString() {
            return "exit " + exitCode + "\n--- stdout\n" + stdout + "--- stderr\n" + stderr;
        }
    }

    static Result run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(new PrintWriter(out, true), new PrintWriter(err, true), args);
        return new Result(code, out.toString(), err.toString());
    }
}
