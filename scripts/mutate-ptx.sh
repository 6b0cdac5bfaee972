#!/usr/bin/env bash
# Mutation testing of the shipped PTX: mutates the batch-norm kernels one instruction at a time, runs the emulator
# tests against each mutant (BATCHNORM4J_PTX_DIR points at the mutated PTX) and reports killed / survived /
# equivalent mutants. See docs/mutation-testing.md; `scripts/mutate-ptx.sh --help` lists the options.
#
#   scripts/mutate-ptx.sh --sample 20 --seed 1             # a quick look: about 4 minutes (the unmutated run is 2-3)
#   scripts/mutate-ptx.sh --sample 400 --seed 7 --jobs 2   # a measurement: 6-25 minutes on 2 shared cores
#
# Compiles the test classes (mvn test-compile) when they are older than the sources, and keeps the test class path in
# target/mutation-classpath.txt. Writes target/mutation/{results.jsonl,report.json,report.txt} unless --out says
# otherwise. Exit code 0 when the run completed, 1 when the unmutated PTX already fails the tests, 2 on bad usage.
#
# Environment: JAVA_HOME (the Java to use), MVN (the Maven command, default "mvn -B -q").
set -euo pipefail

root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
cd "$root"
mvn_cmd=(${MVN:-mvn -B -q})
java_bin="java"
if [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then
  java_bin="${JAVA_HOME}/bin/java"
fi

cp_file="target/mutation-classpath.txt"
stamp="target/test-classes/io/github/batchnorm4j/mutation/MutationRun.class"
if [[ ! -f "$stamp" || -n "$(find pom.xml src -newer "$stamp" -print -quit 2>/dev/null)" ]]; then
  echo "mutate-ptx: compiling (mvn test-compile) ..." >&2
  "${mvn_cmd[@]}" test-compile >&2
fi
if [[ ! -f "$cp_file" || pom.xml -nt "$cp_file" ]]; then
  "${mvn_cmd[@]}" org.apache.maven.plugins:maven-dependency-plugin:3.8.1:build-classpath \
    -Dmdep.outputFile="$cp_file" -Dmdep.includeScope=test >&2
fi
exec "$java_bin" -Xss8m -cp "target/test-classes:target/classes:$(cat "$cp_file")" \
  io.github.batchnorm4j.mutation.MutationRun "$@"
