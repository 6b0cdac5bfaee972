package io.github.batchnorm4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.batchnorm4j.ParsedDockerfile.Copy;
import io.github.batchnorm4j.ParsedDockerfile.Stage;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** The Dockerfile and .dockerignore readers that {@link DockerfileTest} relies on, on small hand-written inputs. */
class ParsedDockerfileTest {

    private static final String TEXT = """
            # a comment
            ARG BASE=1
            FROM  example/builder:1.2.3 AS Build
            WORKDIR /src
            RUN make \\
            # a comment inside the continuation disappears
                all \\

                install
            WORKDIR out
            FROM --platform=linux/amd64 example/run:4.5.6
            ENV A=1 B="two words" C=x\\ y
            ENV LEGACY some value
            WORKDIR /app
            COPY --from=build --chmod=0755 /src/out/tool ./bin/
            copy ["a b.txt", "c", "/dst/"]
            ENTRYPOINT ["/app/bin/tool", "--flag=\\"q\\""]
            """;

    @Test
    void readsStagesContinuationsAndWorkdirs() {
        ParsedDockerfile d = ParsedDockerfile.parse(TEXT);
        assertEquals(2, d.stages().size());
        Stage build = d.stages().get(0);
        assertEquals("example/builder:1.2.3", build.image());
        assertEquals(Optional.of("Build"), build.name());
        assertEquals(3, build.line());
        assertEquals("make     all     install", build.all("RUN").get(0).arguments());
        assertEquals(5, build.all("RUN").get(0).line());
        assertEquals("/src/out", build.finalWorkdir());
        Stage run = d.finalStage();
        assertEquals("example/run:4.5.6", run.image());
        assertEquals(Optional.empty(), run.name());
        assertEquals(Optional.of(build), d.earlierStage("build", 1), "stage names are case-insensitive");
        assertEquals(Optional.of(build), d.earlierStage("0", 1));
        assertEquals(Optional.empty(), d.earlierStage("build", 0), "a stage can only use earlier stages");
    }

    @Test
    void readsEnvCopyAndExecForm() {
        Stage run = ParsedDockerfile.parse(TEXT).finalStage();
        assertEquals(Map.of("A", "1", "B", "two words", "C", "x y", "LEGACY", "some value"), run.env());
        List<Copy> copies = ParsedDockerfile.copies(run);
        assertEquals(2, copies.size());
        Copy fromBuild = copies.get(0);
        assertEquals(Optional.of("build"), fromBuild.from());
        assertEquals("0755", fromBuild.flags().get("chmod"));
        assertEquals(List.of("/src/out/tool"), fromBuild.sources());
        assertEquals("/app/bin/tool", fromBuild.target("/src/out/tool", run.workdirAt(fromBuild.instruction())));
        Copy json = copies.get(1);
        assertEquals("COPY", json.instruction().keyword());
        assertEquals(List.of("a b.txt", "c"), json.sources());
        assertEquals("/dst/c", json.target("c", "/app"));
        assertEquals(List.of("/app/bin/tool", "--flag=\"q\""), ParsedDockerfile.execForm(run.all("ENTRYPOINT").get(0)));
    }

    @Test
    void refusesWhatItCannotReadFaithfully() {
        assertThrows(IllegalArgumentException.class, () -> ParsedDockerfile.parse("RUN x\nFROM a:1.2.3\n"));
        assertThrows(IllegalArgumentException.class, () -> ParsedDockerfile.parse("# escape=`\nFROM a:1.2.3\n"));
        assertThrows(IllegalArgumentException.class, () -> ParsedDockerfile.parse("FROM a:1.2.3 b\n"));
        assertThrows(IllegalArgumentException.class, () -> ParsedDockerfile.parse("# only a comment\n"));
        ParsedDockerfile shellForm = ParsedDockerfile.parse("FROM a:1.2.3\nENTRYPOINT java -jar x.jar\n");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ParsedDockerfile.execForm(shellForm.finalStage().all("ENTRYPOINT").get(0)));
        assertTrue(e.getMessage().contains("line 2"), e.getMessage());
        ParsedDockerfile oneArg = ParsedDockerfile.parse("FROM a:1.2.3\nCOPY onlysource\n");
        assertThrows(IllegalArgumentException.class, () -> ParsedDockerfile.copies(oneArg.finalStage()));
    }

    @Test
    void dockerignoreFollowsDockersMatchingRules() {
        DockerIgnore ignore = DockerIgnore.parse("""
                # comment
                /target
                **/*.log
                docs/*
                !docs/keep.md
                """);
        assertTrue(ignore.excludes("target"));
        assertTrue(ignore.excludes("target/classes/A.class"), "a folder's pattern excludes its contents");
        assertFalse(ignore.excludes("src/target"), "a rooted pattern does not match deeper");
        assertTrue(ignore.excludes("x.log"), "**/ also matches at the root");
        assertTrue(ignore.excludes("a/b/x.log"));
        assertTrue(ignore.excludes("docs/other.md"));
        assertFalse(ignore.excludes("docs/keep.md"), "the last matching pattern decides");
        assertFalse(ignore.excludes("pom.xml"));
        assertEquals("/target", ignore.ruleExcluding("target/x"));
    }
}
