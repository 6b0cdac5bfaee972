#!/usr/bin/env bash
# Regenerates the PTX of the emulator's own test kernels (src/test/cuda/*.cu -> src/test/resources/ptx/*.ptx)
# the same way scripts/build-ptx.sh builds the shipped kernels: nvcc -ptx -arch=compute_75 -O3, then the header is
# restamped from .version 9.0 (CUDA 13) to .version 8.0 (CUDA 12.0) so JCuda 12 drivers accept it.
set -euo pipefail
cd "$(dirname "$0")/.."
NVCC="${NVCC:-nvcc}"
command -v "$NVCC" >/dev/null || { echo "nvcc not found; the committed PTX is used as is" >&2; exit 0; }
for cu in src/test/cuda/*.cu; do
  name="$(basename "$cu" .cu)"
  out="src/test/resources/ptx/$name.ptx"
  "$NVCC" -ptx -arch=compute_75 -O3 "$cu" -o "$out"
  sed -i 's/^\.version 9\.0$/.version 8.0/' "$out"
  echo "wrote $out"
done
