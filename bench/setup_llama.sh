#!/usr/bin/env bash
# llama.cpp as a benchmark peer (bench/llama_compare.py): the llama.cpp vendored in the pinned
# llama-cpp-python sdist, built CPU-only into a cache outside the clone:
#   ~/.cache/kiln/llama.cpp-$VERSION/src    the sdist's vendor/llama.cpp (converter, gguf-py/)
#   ~/.cache/kiln/llama.cpp-$VERSION/build  bin/: llama-embedding, -bench, -tokenize, -server
# Idempotent: skips what exists. Prints the directory. Usage: bench/setup_llama.sh [--no-server]
# The converter runs in the project venv with PYTHONPATH=src/gguf-py (llama_compare.py does that).
set -euo pipefail
VERSION=0.3.36   # llama-cpp-python; its vendor/llama.cpp is the peer
CACHE="${KILN_LLAMA_CACHE:-$HOME/.cache/kiln/llama.cpp-$VERSION}"
# only `pip download` (no install), which Debian's own pip allows
PIP="${KILN_PIP:-/usr/bin/python3 -m pip}"
TARGETS=(llama-embedding llama-bench llama-tokenize)
[[ "${1:-}" == "--no-server" ]] || TARGETS+=(llama-server)

mkdir -p "$CACHE"
if [[ ! -f "$CACHE/src/CMakeLists.txt" ]]; then
  # only llama-cpp-python from source: ":all:" would also build its build backends from source
  $PIP download -q --no-binary llama-cpp-python --no-deps "llama-cpp-python==$VERSION" -d "$CACHE"
  tar xzf "$CACHE/llama_cpp_python-$VERSION.tar.gz" -C "$CACHE"
  mv "$CACHE/llama_cpp_python-$VERSION/vendor/llama.cpp" "$CACHE/src"
  rm -f "$CACHE/src/.git"  # a submodule link into the sdist's absent .git
  rm -rf "$CACHE/llama_cpp_python-$VERSION"
fi
if [[ ! -f "$CACHE/build/build.ninja" ]]; then
  cmake -S "$CACHE/src" -B "$CACHE/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DGGML_OPENMP=ON -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TESTS=OFF >/dev/null
fi
# the machine is shared (2 vCPUs): nice, 2 jobs; ninja skips what is up to date
for t in "${TARGETS[@]}"; do
  [[ -x "$CACHE/build/bin/$t" ]] || nice -n 10 cmake --build "$CACHE/build" -j2 --target "$t"
done
echo "$CACHE"
