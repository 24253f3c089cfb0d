#!/usr/bin/env bash
# Builds kiln for the host (build/) with the x86_64 board runtime (build/portable-x86_64/, zig:
# cmake/portable_runtime.cmake) and, with --aarch64, the aarch64 side: the runtime that Pi bundles
# ship (build/portable-aarch64/) and the unit tests' build (build-aarch64/, cross-compiled with
# Debian's aarch64-linux-gnu-g++, run under qemu).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
# the board runtimes that bundles ship, built with zig for any glibc since 2.17
archs=x86_64
[[ "${1:-}" == "--aarch64" ]] && archs="x86_64;aarch64"
zig=$(scripts/setup_zig.sh | tail -1)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_PORTABLE_RUNTIMES="$archs" \
  -DKILN_ZIG="$zig" >/dev/null
cmake --build build -j "$JOBS"
if [[ "${1:-}" == "--aarch64" ]]; then
  cmake -S . -B build-aarch64 -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake >/dev/null
  cmake --build build-aarch64 -j "$JOBS"
fi
