#!/usr/bin/env bash
# Peer benchmark: PyTorch's CPU batch norm against batchnorm4j's CPU backend, same shapes, same inputs, same thread
# count, alternating rounds in one run; prints the ratio table (torch time / batchnorm4j time). Not part of `mvn test`.
#
# Setup (Debian 12): apt-get install -y python3-torch libjemalloc2
#   torch runs under jemalloc (LD_PRELOAD, pages kept: MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1); with glibc's
#   allocator torch pays ~25,000 page faults per call on large outputs and the comparison says nothing about batch
#   norm. The JVM runs without the preload, on transparent huge pages where the kernel offers them on request
#   (-XX:+UseTransparentHugePages, as scripts/batchnorm4j starts it; PEER_THP=0 leaves it out).
#
# Usage: bench/peer-torch.sh [--threads 2] [--rounds 5] [--shapes '32,64,56,56:nchw;256,1024:nc'] [--ops ...]
#   (options of bench/peer_torch.py; --help lists them). Environment: PYTHON (default /usr/bin/python3), JAVA
#   (default java), PEER_JAVA_OPTS (extra JVM options), PEER_LOOPS=scalar (time batchnorm4j without the Vector API).
# Quote figures only from a quiet machine: the script prints the load average at its start and end.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
python="${PYTHON:-/usr/bin/python3}"
java_bin="${JAVA:-java}"
threads=2
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [[ "${args[$i]}" == "--threads" ]] && threads="${args[$((i + 1))]}"
done

if ! "$python" -c 'import torch, numpy' 2>/dev/null; then
  echo "error: $python cannot import torch and numpy (Debian: apt-get install -y python3-torch)" >&2
  exit 2
fi
jemalloc="$(/sbin/ldconfig -p 2>/dev/null | awk '/libjemalloc\.so\.2 / {print $NF; exit}')"
if [[ -z "$jemalloc" ]]; then
  echo "error: libjemalloc.so.2 not found (Debian: apt-get install -y libjemalloc2)" >&2
  exit 2
fi

(cd "$root" && mvn -q -B test-compile) >&2
loops=()
[[ "${PEER_LOOPS:-}" == "scalar" ]] && loops=(-Dbatchnorm4j.cpu.vector=false)
read -r -a extra <<< "${PEER_JAVA_OPTS:-}"
thp=""
if [[ "${PEER_THP:-1}" != "0" ]] && grep -q -E '\[(madvise|always)\]' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null; then
  thp=-XX:+UseTransparentHugePages
fi
java_cmd="$java_bin --add-modules jdk.incubator.vector -Xmx6g -Xms6g -XX:+AlwaysPreTouch $thp ${loops[*]:-} ${extra[*]:-}"
java_cmd+=" -cp $root/target/classes:$root/target/test-classes io.github.batchnorm4j.cpu.PeerBenchMain $threads"

LD_PRELOAD="$jemalloc" MALLOC_CONF="dirty_decay_ms:-1,muzzy_decay_ms:-1" OMP_NUM_THREADS="$threads" \
  exec "$python" "$root/bench/peer_torch.py" --java "$java_cmd" "$@"
