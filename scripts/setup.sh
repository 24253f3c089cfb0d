#!/usr/bin/env bash
# Installs everything kiln's build, tests and demo need on Debian 12 / Ubuntu, by package name.
# Idempotent: apt runs only when something is missing.
set -euo pipefail

PKGS=(
  cmake ninja-build g++ git                      # host build
  g++-aarch64-linux-gnu qemu-user                # aarch64 cross build, tests under emulation
  openssh-server openssh-client                  # kiln tune's ssh runner, tested against a private sshd
  libonnx-dev libprotobuf-dev protobuf-compiler  # ONNX import
  nlohmann-json3-dev libcli11-dev                # header-only: json (runtime too), CLI
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-venv python3-torch python3-onnx python3-numpy python3-pytest
  python3-pytest-xdist                           # the e2e stage runs on every core (scripts/test.sh)
  libopenblas0-openmp                            # a fair PyTorch FP32 peer (else netlib BLAS)
  clang-format
  ccache                                         # builds reuse a cache outside the clone (CMakeLists.txt)
  llvm-19                                        # llvm-mca: bench/mca_rates.py (kiln tune's aarch64 model)
  clang libclang-rt-14-dev                       # libFuzzer targets (scripts/fuzz.sh; Debian 12's clang 14)
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[setup] installing: ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y \
    --no-install-recommends "${missing[@]}"
fi
