package io.github.batchnorm4j.testing;

import org.junit.jupiter.api.function.Executable;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Assertions on error messages: bad input must fail with a message that names what was wrong. */
public final class Messages {
    private Messages() {
    }

    /** Asserts that {@code message} contains every one of {@code parts}. */
    public static void assertMentions(String message, String... parts) {
        for (String p : parts) assertTrue(message.contains(p), "message lacks '" + p + "': " + message);
    }

    /** Asserts that the message of {@code t} contains every one of {@code parts}. */
    public static void assertMentions(Throwable t, String... parts) {
        assertMentions(t.getMessage(), parts);
    }

    /** Asserts that {@code call} throws IllegalArgumentException whose message contains {@code part}; returns it. */
    public static IllegalArgumentException assertRejected(String part, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(part), "message should name '" + part + "': " + e.getMessage());
        return e;
    }
}
