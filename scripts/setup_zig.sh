#!/usr/bin/env bash
# Zig, the C/C++ cross toolchain of the board runtime (cmake/portable_runtime.cmake): pinned
# ziglang from PyPI, installed once into ${KILN_VENV_ROOT:-~/.cache/kiln}/zig-<version>, shared
# by every clone. Prints the zig executable's path as its LAST line.
#
# Why zig: Debian 12's cross g++ links against glibc 2.36 and GCC 12's libstdc++, so what it
# builds needs glibc >= 2.34 and libstdc++ >= GCC 12 and will not start on Raspberry Pi OS
# bullseye or Ubuntu 20.04. `zig c++ -target aarch64-linux-gnu.2.17` links against glibc 2.17's
# symbol versions and a static libc++: the runtime then loads on any aarch64 glibc (manylinux2014).
set -euo pipefail
VERSION=0.17.1
DIR=${KILN_VENV_ROOT:-$HOME/.cache/kiln}/zig-$VERSION
ZIG=$DIR/ziglang/zig

if ! [[ -f $ZIG ]]; then
  echo "[setup_zig] installing ziglang==$VERSION from PyPI into $DIR" >&2
  mkdir -p "$(dirname "$DIR")"
  tmp=$(mktemp -d "$DIR.tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  /usr/bin/python3 -m venv "$tmp/venv" >&2  # for its pip (Debian's python3 may have none)
  "$tmp/venv/bin/pip" install -q --disable-pip-version-check --no-deps --target "$tmp/pkg" \
    "ziglang==$VERSION" >&2
  rm -rf "$DIR"
  mv "$tmp/pkg" "$DIR"
fi
chmod +x "$ZIG"  # pip --target does not always keep the executable bit
echo "$ZIG"
