package io.github.batchnorm4j.cli;

import java.io.IOException;
import java.io.InputStream;
import java.util.Properties;
import picocli.CommandLine;

/** The library's version (from the build), for {@code --version} and {@code info}. */
public final class Version implements CommandLine.IVersionProvider {

    /** The Maven project version, or "unknown" when the build did not stamp it. */
    public static String library() {
        try (InputStream in = Version.class.getResourceAsStream("/io/github/batchnorm4j/version.properties")) {
            if (in == null) return "unknown";
            Properties p = new Properties();
            p.load(in);
            String v = p.getProperty("version", "unknown");
            return v.startsWith("${") ? "unknown" : v;
        } catch (IOException e) {
            return "unknown";
        }
    }

    @Override
    public String[] getVersion() {
        return new String[] {"batchnorm4j " + library() + " (Java " + Runtime.version() + ", "
                + System.getProperty("os.name") + " " + System.getProperty("os.arch") + ")"};
    }
}
