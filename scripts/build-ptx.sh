#!/usr/bin/env bash
# Compiles every cuda/*.cu into PTX under src/main/resources/io/github/batchnorm4j/ptx/<name>.ptx (docs/design.md §3), or,
# with --tests, the emulator's own test kernels src/test/cuda/*.cu into src/test/resources/ptx/<name>.ptx.
#
#   scripts/build-ptx.sh [--tests]           regenerate the committed PTX
#   scripts/build-ptx.sh [--tests] --check   regenerate into a temporary folder and fail if it differs from the
#                                            committed PTX (exits 0 with a message when nvcc is not installed:
#                                            nothing can be checked then)
#
# Flags: -ptx -arch=compute_75 -O3 (Turing and newer; the driver JIT-compiles for the GPU it runs on), plus what a
# source asks for on a line "// build-ptx-flags: <flags>" (the batch-norm kernels: --fmad=false, see cuda/README.md).
# nvcc 13 stamps ".version 9.0", which only CUDA 13 drivers accept; JCuda 12.x users run CUDA 12 drivers, so the
# header is restamped to ".version 8.0" (CUDA 12.0). PtxCompileTest proves the result is valid 8.0 PTX by compiling
# it with JCuda's bundled nvPTXCompiler for sm_75..sm_90. Environment: NVCC overrides the compiler path.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/cuda"
dest="$root/src/main/resources/io/github/batchnorm4j/ptx"
nvcc="${NVCC:-nvcc}"
ptx_version="8.0"

mode=build
rebuild="scripts/build-ptx.sh"
for arg in "$@"; do
  case "$arg" in
    --tests) src="$root/src/test/cuda"; dest="$root/src/test/resources/ptx"; rebuild="scripts/build-ptx.sh --tests" ;;
    --check) mode=check ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "error: unknown argument '$arg' (expected --tests and/or --check)" >&2; exit 2 ;;
  esac
done

if ! command -v "$nvcc" >/dev/null 2>&1; then
  if [[ $mode == check ]]; then
    echo "build-ptx --check: skipped, nvcc not found (set NVCC or install the CUDA toolkit to verify the PTX)"
    exit 0
  fi
  echo "error: nvcc not found (set NVCC or install the CUDA toolkit)" >&2
  exit 3
fi

shopt -s nullglob
sources=("$src"/*.cu)
if (( ${#sources[@]} == 0 )); then
  echo "error: no .cu files in $src" >&2
  exit 2
fi

compile_all() {  # $1 = output folder
  local out="$1" cu name
  mkdir -p "$out"
  for cu in "${sources[@]}"; do
    name="$(basename "$cu" .cu)"
    # Compile from inside the source folder with a relative path: nvcc records nothing machine-specific then.
    local extra
    extra="$(sed -n 's|^// build-ptx-flags: *||p' "$cu" | head -1)"
    # shellcheck disable=SC2086  # the flags are words
    (cd "$src" && "$nvcc" -ptx -arch=compute_75 -O3 $extra "$name.cu" -o "$out/$name.ptx.tmp")
    sed -E "s/^\.version [0-9]+\.[0-9]+\$/.version $ptx_version/" "$out/$name.ptx.tmp" > "$out/$name.ptx"
    rm -f "$out/$name.ptx.tmp"
    grep -q "^\.version $ptx_version\$" "$out/$name.ptx" || { echo "error: no .version line restamped in $name.ptx" >&2; exit 1; }
  done
}

if [[ $mode == build ]]; then
  compile_all "$dest"
  # Remove PTX whose .cu no longer exists, so the resources are exactly the sources.
  for ptx in "$dest"/*.ptx; do
    [[ -f "$src/$(basename "$ptx" .ptx).cu" ]] || rm -f "$ptx"
  done
  echo "build-ptx: wrote ${#sources[@]} PTX file(s) to ${dest#$root/} ($("$nvcc" --version | tail -1))"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
compile_all "$tmp"
status=0
for cu in "${sources[@]}"; do
  name="$(basename "$cu" .cu)"
  if [[ ! -f "$dest/$name.ptx" ]]; then
    echo "build-ptx --check: missing committed $name.ptx (run $rebuild)"; status=1
  elif ! diff -q "$tmp/$name.ptx" "$dest/$name.ptx" >/dev/null; then
    echo "build-ptx --check: $name.ptx differs from what $name.cu compiles to (run $rebuild):"
    diff -u "$dest/$name.ptx" "$tmp/$name.ptx" | head -40; status=1
  fi
done
for ptx in "$dest"/*.ptx; do
  [[ -f "$src/$(basename "$ptx" .ptx).cu" ]] || { echo "build-ptx --check: $(basename "$ptx") has no source in ${src#$root/}/"; status=1; }
done
(( status == 0 )) && echo "build-ptx --check: ${#sources[@]} PTX file(s) match their sources"
exit $status
