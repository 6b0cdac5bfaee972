#!/usr/bin/env bash
# The one command to run when a machine with an NVIDIA GPU is available: validates and measures batchnorm4j there.
#
#   scripts/gpu-validate.sh [--out DIR] [--repeat R] [--warmup S]   # on the GPU machine (under 8 minutes on one GPU)
#   scripts/gpu-validate.sh --prepare                    # before: a kit that needs neither Maven nor a network
#
# Steps, each bounded by a timeout, each logged in DIR (default target/gpu-validate):
#   1. info --json                     the device, driver and libraries; no usable CUDA device: exit 3 with the reason
#   2. the GPU-tagged tests            @GpuTest classes (mvn -B test -Dgroups=gpu, or the kit's JUnit runner)
#   3. check --backends cpu,cuda,cudnn our kernels and cuDNN against float64 and each other
#   4. bench, cuda and cudnn           [32,64,56,56] NCHW, [32,56,56,64] NHWC and [256,1024], all ops, with the
#                                      device-to-device copy of each size
#   5. validation-report               DIR/report.json (everything above as one object) and DIR/summary.txt (our GB/s
#                                      against cuDNN's and against the copy), printed at the end
# Without cuDNN the cudnn steps are skipped (and say why); the rest still runs.
#
# --repeat R and --warmup S go to every bench (timed runs per op, warm-up seconds per op;
# defaults: 20 runs, bench's 0.5 s); small values are for testing the script itself.
#
# Exit code: 0 every step passed; 1 a step failed (tests, check, a bench validation, a timeout); 2 bad usage;
# 3 no usable GPU (the reason on stderr; nothing else runs).
#
# --prepare (on a machine with Maven and the dependencies) writes target/gpu-validate-kit: the compiled classes and
# tests and every test dependency (about 25 MB). With the kit present this script needs only Java: a lent GPU
# machine without network carries target/gpu-validate-kit next to the working tree.
#
# Environment (for tests and special machines): JAVA_HOME; MVN (default "mvn -B"); BATCHNORM4J_CLI (the command line to
# run, default: the kit's, else scripts/batchnorm4j); GPU_VALIDATE_TEST_COMMAND (replaces step 2);
# GPU_VALIDATE_SHAPES (semicolon-separated bench shapes, default "32,64,56,56;256,1024": a 4-D shape runs in both
# layouts, a 2-D one as [N, C]).
set -uo pipefail

root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
kit="$root/target/gpu-validate-kit"
out="$root/target/gpu-validate"
repeat=20
warmup=()
prepare=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) [[ $# -ge 2 ]] || { echo "error: --out: expected a folder" >&2; exit 2; }; out="$2"; shift 2 ;;
    --repeat) [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || { echo "error: --repeat: expected a positive integer" >&2; exit 2; }
              repeat="$2"; shift 2 ;;
    --warmup) [[ $# -ge 2 && "$2" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "error: --warmup: expected seconds >= 0" >&2; exit 2; }
              warmup=(--warmup "$2"); shift 2 ;;
    --prepare) prepare=1; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

java_bin="java"
if [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then java_bin="${JAVA_HOME}/bin/java"; fi
read -r -a mvn_cmd <<< "${MVN:-mvn -B}"

if [[ $prepare -eq 1 ]]; then
  set -e
  cd "$root"
  "${mvn_cmd[@]}" -q test-compile >&2
  rm -rf "$kit"; mkdir -p "$kit/lib"
  "${mvn_cmd[@]}" -q org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DincludeScope=test -DoutputDirectory="$kit/lib" >&2
  cp -r target/classes "$kit/classes"
  cp -r target/test-classes "$kit/test-classes"
  echo "gpu-validate: kit ready: $kit ($(du -sh "$kit" | cut -f1)); carry it to the GPU machine and run scripts/gpu-validate.sh"
  exit 0
fi

if [[ -n "${BATCHNORM4J_CLI:-}" ]]; then
  read -r -a cli <<< "$BATCHNORM4J_CLI"
elif [[ -d "$kit/classes" ]]; then
  cli=("$java_bin" -cp "$kit/classes:$kit/lib/*" io.github.batchnorm4j.cli.Main)
else
  cli=("$root/scripts/batchnorm4j")
fi
have_timeout=0
command -v timeout >/dev/null 2>&1 && have_timeout=1

mkdir -p "$out" || { echo "error: --out: cannot create $out" >&2; exit 2; }
out="$(cd "$out" && pwd)"
cd "$root"
rm -f "$out"/*.jsonl "$out"/*.log "$out"/steps.tsv "$out"/report.json "$out"/summary.txt "$out"/info.json
started=$(date +%s)

# step NAME SECONDS OUTFILE CMD...: runs CMD with a timeout, stdout to OUTFILE, stderr to NAME.err, and records
# "name <TAB> exit <TAB> seconds <TAB> command" in steps.tsv (exit 124: timed out).
step() {
  local name="$1" limit="$2" file="$3"; shift 3
  local t0 t1 rc
  t0=$(date +%s.%N)
  echo "gpu-validate: $name ..." >&2
  if [[ $have_timeout -eq 1 ]]; then
    timeout --kill-after=10 "$limit" "$@" > "$out/$file" 2> "$out/$name.err"; rc=$?
  else
    "$@" > "$out/$file" 2> "$out/$name.err"; rc=$?
  fi
  t1=$(date +%s.%N)
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')" "$*" >> "$out/steps.tsv"
  return $rc
}

# 1. Is there a GPU?
step info 30 info.json "${cli[@]}" info --json
cuda_line=$(grep -o '{"name":"cuda","available":[a-z]*,"detail":"[^"]*"' "$out/info.json" 2>/dev/null | head -1)
if [[ "$cuda_line" != *'"available":true'* ]]; then
  reason=$(sed -e 's/.*"detail":"//' -e 's/"$//' <<< "$cuda_line")
  [[ -n "$reason" ]] || reason="the command line did not report the cuda backend ($(head -c 300 "$out/info.err" 2>/dev/null))"
  echo "error: no usable GPU: cuda: $reason" >&2
  exit 3
fi
cudnn_line=$(grep -o '{"name":"cudnn","available":[a-z]*,"detail":"[^"]*"' "$out/info.json" | head -1)
backends="cpu,cuda"
bench_backends=(cuda)
if [[ "$cudnn_line" == *'"available":true'* ]]; then
  backends="cpu,cuda,cudnn"
  bench_backends=(cuda cudnn)
else
  printf 'skipped-cudnn\t0\t0\t%s\n' "$(sed -e 's/.*"detail":"//' -e 's/"$//' <<< "$cudnn_line")" >> "$out/steps.tsv"
fi

# 2. The GPU-tagged tests.
if [[ -n "${GPU_VALIDATE_TEST_COMMAND:-}" ]]; then
  step tests 180 tests.log bash -c "$GPU_VALIDATE_TEST_COMMAND"
elif [[ -d "$kit/test-classes" ]]; then
  step tests 180 tests.log "$java_bin" -cp "$kit/test-classes:$kit/classes:$kit/lib/*" \
    io.github.batchnorm4j.testing.SuiteRunner --tag gpu --all 'io.github.batchnorm4j.*'
else
  step tests 180 tests.log bash -c "cd '$root' && ${mvn_cmd[*]} test -Dgroups=gpu"
fi

# 3. Cross-check against float64 and each other.
step check 60 check.jsonl "${cli[@]}" check --backends "$backends" --json

# 4. Bandwidth, ours and cuDNN's, with the device copy of the same size.
IFS=';' read -r -a shapes <<< "${GPU_VALIDATE_SHAPES:-32,64,56,56;256,1024}"
for b in "${bench_backends[@]}"; do
  for i in "${!shapes[@]}"; do
    step "bench-$b-$i" 40 "bench-$b-$i.jsonl" "${cli[@]}" bench --backend "$b" --shape "${shapes[$i]}" \
      --repeat "$repeat" "${warmup[@]}" --json
  done
done

# 5. One report.
elapsed=$(( $(date +%s) - started ))
"${cli[@]}" validation-report --dir "$out" --seconds "$elapsed"
