#!/usr/bin/env bash
# Packs the kiln runtime into a Debian package (dpkg-deb, no debhelper):
#   kiln-runtime_<version>_<arch>.deb = /usr/bin/kiln-rt, /usr/lib/<triplet>/libkiln_runtime.so,
#   /usr/include/kiln/*.h(pp), the Python binding in /usr/lib/python3/dist-packages/kiln/.
#
#   scripts/package_deb.sh amd64 [BUILD_DIR] [OUT_DIR]   # default build/, out/deb/
#   scripts/package_deb.sh arm64 [BUILD_DIR] [OUT_DIR]   # default build-aarch64/
# The build dir must hold runtime/libkiln_runtime.so and tools/kiln-rt/kiln-rt for that arch
# (scripts/build.sh, scripts/build.sh --aarch64).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ARCH=${1:-amd64}
case "$ARCH" in
  amd64) TRIPLET=x86_64-linux-gnu; DEFAULT_BUILD=build; STRIP=strip; MACHINE="x86-64" ;;
  arm64) TRIPLET=aarch64-linux-gnu; DEFAULT_BUILD=build-aarch64; STRIP=aarch64-linux-gnu-strip
         MACHINE="AArch64" ;;
  *) echo "package_deb.sh: architecture '$ARCH' (expected amd64 or arm64)" >&2; exit 2 ;;
esac
BUILD=$(realpath -m "${2:-$DEFAULT_BUILD}")
OUT=$(realpath -m "${3:-out/deb}")
VERSION=$(cat VERSION)
LIB=$BUILD/runtime/libkiln_runtime.so
CLI=$BUILD/tools/kiln-rt/kiln-rt
for f in "$LIB" "$CLI"; do
  if [[ ! -f $f ]]; then
    hint="scripts/build.sh"; [[ $ARCH == arm64 ]] && hint="scripts/build.sh --aarch64"
    echo "package_deb.sh: $f is missing: build it with $hint" >&2
    exit 1
  fi
  if ! readelf -h "$f" | grep -qi "Machine:.*$MACHINE"; then
    echo "package_deb.sh: $f is not an $ARCH binary ($(readelf -h "$f" | sed -nE 's/ *Machine: *//p'))" >&2
    exit 1
  fi
done

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
PKG=$STAGE/kiln-runtime
install -d "$PKG/DEBIAN" "$PKG/usr/bin" "$PKG/usr/lib/$TRIPLET" "$PKG/usr/include/kiln" \
  "$PKG/usr/lib/python3/dist-packages/kiln" "$PKG/usr/share/doc/kiln-runtime"
install -m 0755 "$CLI" "$PKG/usr/bin/kiln-rt"
install -m 0644 "$LIB" "$PKG/usr/lib/$TRIPLET/libkiln_runtime.so"
$STRIP --strip-unneeded "$PKG/usr/bin/kiln-rt" "$PKG/usr/lib/$TRIPLET/libkiln_runtime.so"
install -m 0644 include/kiln/c_api.h include/kiln/runtime.hpp include/kiln/backend.h \
  "$PKG/usr/include/kiln/"
install -m 0644 python/kiln/__init__.py python/kiln/runtime.py \
  "$PKG/usr/lib/python3/dist-packages/kiln/"
install -m 0644 docs/deploy-raspberry-pi.md "$PKG/usr/share/doc/kiln-runtime/"
cat >"$PKG/DEBIAN/control" <<CONTROL
Package: kiln-runtime
Version: $VERSION
Architecture: $ARCH
Maintainer: kiln developers <kiln@localhost>
Depends: libc6 (>= 2.34), libstdc++6 (>= 12), libgcc-s1
Recommends: python3, python3-numpy
Section: libs
Priority: optional
Installed-Size: $(du -sk "$PKG/usr" | cut -f1)
Description: kiln runtime: runs kiln-compiled transformer models
 libkiln_runtime.so (C ABI, include/kiln/c_api.h), the kiln-rt command line tool
 (run, bench, inspect) and the Python binding (import kiln.runtime). Models are
 compiled on a PC with "kiln compile".
CONTROL
echo "activate-noawait ldconfig" >"$PKG/DEBIAN/triggers"
mkdir -p "$OUT"
DEB=$OUT/kiln-runtime_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group --build "$PKG" "$DEB" >/dev/null
echo "$DEB ($(du -k "$DEB" | cut -f1) KiB)"
