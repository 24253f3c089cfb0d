#!/usr/bin/env bash
# Builds kiln for the host (build/) and, with --aarch64, the runtime side for aarch64
# (build-aarch64/, cross-compiled with Debian's aarch64-linux-gnu-g++).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$JOBS"
if [[ "${1:-}" == "--aarch64" ]]; then
  cmake -S . -B build-aarch64 -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake >/dev/null
  cmake --build build-aarch64 -j "$JOBS"
fi
