#!/usr/bin/env bash
# Builds a private aarch64 sysroot with Debian's arm64 python3 + numpy in .cache/arm64-sysroot/,
# so the tests can run a Pi bundle's infer.py under qemu-aarch64:
#
#   qemu-aarch64 -L .cache/arm64-sysroot -cpu cortex-a72 \
#       .cache/arm64-sysroot/usr/bin/python3.11 -c 'import numpy; print(numpy.__version__)'
#
# Nothing arm64 is installed on the system and dpkg's architecture list is left alone (an arm64
# libc6 next to the cross toolchain breaks threaded programs under qemu): apt runs with a private
# configuration and state (.cache/arm64-apt/: APT::Architecture arm64, the host's Debian
# sources, an empty dpkg status), resolves the packages the way `apt-get install` would on an
# empty arm64 system, downloads the .debs and unpacks each with `dpkg-deb -x`. Maintainer scripts
# do not run; the one thing they do that numpy needs, the libblas.so.3 / liblapack.so.3
# alternatives, is done here with relative links inside the sysroot.
#
# Idempotent and cheap when done: a stamp records the package list; delete .cache/arm64-sysroot
# (or pass --force) to rebuild. Exit 0 = the sysroot's python imports numpy under qemu.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SYSROOT=$ROOT/.cache/arm64-sysroot
APTDIR=$ROOT/.cache/arm64-apt
STAMP=$SYSROOT/.kiln-sysroot-stamp
# python + numpy, and what libkiln_runtime.so links besides libc and libgcc_s (every Pi OS has it)
PKGS=(python3.11-minimal libpython3.11-minimal libpython3.11-stdlib python3-numpy libstdc++6)
MULTIARCH=aarch64-linux-gnu

check() {
  PYTHONNOUSERSITE=1 qemu-aarch64 -L "$SYSROOT" -cpu cortex-a72 "$SYSROOT/usr/bin/python3.11" -c \
    'import ctypes, numpy; numpy.dot(numpy.ones((4, 4)), numpy.ones(4)); print(numpy.__version__)'
}

want="packages: ${PKGS[*]}"
if [[ "${1:-}" != "--force" && -f $STAMP && "$(head -1 "$STAMP")" == "$want" ]] &&
   ver=$(check 2>/dev/null); then
  echo "[arm64-python] $SYSROOT: python3.11 + numpy $ver (ready)"
  exit 0
fi

die() { echo "[arm64-python] $*" >&2; exit 1; }
command -v qemu-aarch64 >/dev/null || die "qemu-aarch64 missing: run scripts/setup.sh"
command -v dpkg-deb >/dev/null || die "dpkg-deb missing (Debian/Ubuntu only)"

# --- private apt: arm64 package lists, nothing touches /var/lib/dpkg or /etc/apt ----------------
mkdir -p "$APTDIR"/{state/lists/partial,cache/archives/partial,debs} \
         "$APTDIR"/etc/{apt.conf.d,preferences.d,sources.list.d}
: >"$APTDIR/state/status"
# the host's Debian sources (Debian 12 has arm64 in the same archive; third-party repositories
# usually have no arm64 lists, and Ubuntu's arm64 is on another host: ports.ubuntu.com)
rm -f "$APTDIR"/etc/sources.list.d/*
for f in /etc/apt/sources.list.d/*.sources; do
  [[ -f $f ]] && grep -qE '^URIs:.*debian' "$f" && cp "$f" "$APTDIR/etc/sources.list.d/"
done
cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
  grep -E '^deb .*debian' >"$APTDIR/etc/sources.list" || true
[[ -s $APTDIR/etc/sources.list ]] || compgen -G "$APTDIR/etc/sources.list.d/*.sources" >/dev/null ||
  die "no Debian sources in /etc/apt (this script needs Debian's arm64 packages)"
cat >"$APTDIR/apt.conf" <<EOF
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
APT::Install-Recommends "false";
Dir::State "$APTDIR/state";
Dir::State::status "$APTDIR/state/status";
Dir::Cache "$APTDIR/cache";
Dir::Etc "$APTDIR/etc";
Dir::Etc::Trusted "/etc/apt/trusted.gpg";
Dir::Etc::TrustedParts "/etc/apt/trusted.gpg.d";
Debug::NoLocking "true";
EOF
export APT_CONFIG=$APTDIR/apt.conf

echo "[arm64-python] apt-get update (arm64 lists, private state in $APTDIR)"
apt-get -q --error-on=any update >"$APTDIR/update.log" 2>&1 ||
  { cat "$APTDIR/update.log" >&2; die "apt-get update failed (no network?)"; }

# The dependency closure as apt resolves it for an empty arm64 system (first alternatives:
# libblas3 + liblapack3 for numpy's libblas.so.3 / liblapack.so.3).
mapfile -t closure < <(apt-get install -s -q "${PKGS[@]}" 2>"$APTDIR/resolve.err" |
                       awk '/^Inst /{print $2}')
((${#closure[@]})) || { cat "$APTDIR/resolve.err" >&2; die "could not resolve ${PKGS[*]}"; }
echo "[arm64-python] ${#closure[@]} packages: ${closure[*]}"

(cd "$APTDIR/debs" && rm -f ./*.deb &&
 apt-get -q download "${closure[@]/%/:arm64}" >"$APTDIR/download.log" 2>&1) ||
  { cat "$APTDIR/download.log" >&2; die "download failed"; }

# --- unpack -------------------------------------------------------------------------------------
rm -rf "$SYSROOT"
mkdir -p "$SYSROOT"
for deb in "$APTDIR"/debs/*.deb; do
  dpkg-deb -x "$deb" "$SYSROOT"
done

# update-alternatives, as libblas3's / liblapack3's postinst would do it (relative links: the
# sysroot is not /)
libdir=$SYSROOT/usr/lib/$MULTIARCH
ln -sfn blas/libblas.so.3 "$libdir/libblas.so.3"
ln -sfn lapack/liblapack.so.3 "$libdir/liblapack.so.3"
# absolute symlinks inside the packages would point at the host: make them relative
find "$SYSROOT" -type l -lname '/*' | while read -r link; do
  target=$(readlink "$link")
  ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$SYSROOT$target")" "$link"
done

ver=$(check) || die "the sysroot's python3.11 does not import numpy under qemu"
{ echo "$want"; printf '%s\n' "${closure[@]}"; } >"$STAMP"
# the lists and apt's caches are ~150 MB and refetched in seconds
rm -rf "$APTDIR"/debs/*.deb "$APTDIR"/state/lists "$APTDIR"/cache
echo "[arm64-python] $SYSROOT: python3.11 + numpy $ver (built)"
