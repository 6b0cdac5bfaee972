package io.github.batchnorm4j;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every design reference in the repository points into it: "docs/design.md §n" names a section docs/design.md has,
 * and no reference to a design document outside the repository ("DESIGN §n") is left.
 */
class DesignReferencesTest {
    private static final Pattern REFERENCE = Pattern.compile("docs/design\\.md §(\\d+)");
    private static final Pattern OUTSIDE = Pattern.compile("DESIGN §\\d+|DESIGN\\.md");

    private static List<Path> sources() throws IOException {
        List<Path> out = new ArrayList<>(List.of(Path.of("README.md")));
        for (String root : new String[]{"src", "cuda", "scripts", "docs"}) {
            try (Stream<Path> s = Files.walk(Path.of(root))) {
                s.filter(Files::isRegularFile).filter(p -> p.toString().matches(".*\\.(java|md|cu|cuh|sh)$")
                        || p.getParent().endsWith("scripts")).forEach(out::add);
            }
        }
        return out;
    }

    @Test
    void everyReferenceNamesASectionOfTheDesignInTheRepository() throws IOException {
        Set<String> sections = new TreeSet<>();
        Matcher h = Pattern.compile("(?m)^## (\\d+)\\. ").matcher(Files.readString(Path.of("docs", "design.md")));
        while (h.find()) sections.add(h.group(1));
        assertEquals(Set.of("1", "2", "3", "4", "5", "6", "7"), sections, "the sections of docs/design.md");
        List<String> dangling = new ArrayList<>();
        int references = 0;
        for (Path p : sources()) {
            String text;
            try {
                text = Files.readString(p);
            } catch (IOException e) {
                throw new UncheckedIOException(p.toString(), e);
            }
            Matcher m = REFERENCE.matcher(text);
            while (m.find()) {
                references++;
                if (!sections.contains(m.group(1))) dangling.add(p + ": " + m.group());
            }
            Matcher o = OUTSIDE.matcher(text);
            while (o.find()) dangling.add(p + ": " + o.group() + " (a design outside the repository)");
        }
        assertTrue(dangling.isEmpty(), String.join("\n", dangling));
        assertTrue(references >= 20, "the code and tests refer to the design: " + references + " references");
    }
}
