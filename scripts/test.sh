#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds host + aarch64, then runs
#   1. host unit tests (ctest: kernels, runtime, compiler),
#   2. aarch64 unit tests under qemu-aarch64 as a Cortex-A72 (Pi 4) and a Cortex-A76 (Pi 5),
#   3. the op harness (tests/ops: every op x GEMM variant x target, FP32 and INT8, against
#      onnx.reference), the transformers zoo exports (tests/zoo) and tokenizer.json against the
#      `tokenizers` package (tests/tokenizers), sentence embeddings against sentence-transformers
#      (tests/embed, host and rpi4 / rpi5 under qemu), in the pinned project venv
#      (scripts/setup_venv.sh: torch 2.x, transformers 5.x, onnx; ~/.cache/kiln, kept across clones),
#   4. end-to-end tests against PyTorch (pytest: host, and aarch64 artifacts under qemu) and the
#      Python API, tokenizer, deploy-bundle and .deb tests (tests/python); the Pi bundles'
#      infer.py runs under qemu with Debian's arm64 python3 + numpy from a private sysroot
#      (scripts/setup_arm64_python.sh: .cache/arm64-sysroot/, a few seconds once, then cached).
# Every stage runs even if an earlier one fails; the last line sums them up and the exit code
# is non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

scripts/setup.sh || exit 1
scripts/build.sh --aarch64 || { echo "0 passed, 1 failed (build)"; exit 1; }
# without it (no network) tests/python/test_bundle_qemu_python.py is skipped, saying why
scripts/setup_arm64_python.sh || echo "[test] no arm64 python sysroot: the Pi infer.py tests skip"
VENV_PY=$(scripts/setup_venv.sh | tail -1) || { echo "0 passed, 1 failed (project venv)"; exit 1; }

passed=0
failed=0
skipped=0
log=$(mktemp)

count_ctest() {  # "100% tests passed, 0 tests failed out of 42"
  local line
  line=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$log" | tail -1)
  if [[ -z "$line" ]]; then
    failed=$((failed + 1))
    return
  fi
  local f t
  f=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
  t=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
  local s
  s=$(grep -cE "\*\*\*Skipped" "$log")
  passed=$((passed + t - f - s))
  failed=$((failed + f))
  skipped=$((skipped + s))
}

echo "=== host unit tests ==="
ctest --test-dir build --output-on-failure -j 2 2>&1 | tee "$log"
count_ctest

for cpu in cortex-a72 cortex-a76; do
  echo "=== aarch64 unit tests under qemu ($cpu) ==="
  QEMU_CPU=$cpu ctest --test-dir build-aarch64 --output-on-failure -j 2 2>&1 | tee "$log"
  count_ctest
done

count_pytest() {  # "12 passed, 1 skipped in 3.4s"
  local line p s f
  line=$(grep -E "[0-9]+ (passed|failed|errors?).* in [0-9.]+s" "$log" | tail -1)
  p=$(grep -oE "[0-9]+ passed" <<<"$line" | grep -oE "[0-9]+" || echo 0)
  s=$(grep -oE "[0-9]+ skipped" <<<"$line" | grep -oE "[0-9]+" || echo 0)
  f=$(grep -oE "[0-9]+ (failed|errors?)" <<<"$line" | awk '{s += $1} END {print s + 0}')
  [[ -z "$line" ]] && f=1
  passed=$((passed + p))
  failed=$((failed + ${f:-0}))
  skipped=$((skipped + s))
}

echo "=== op harness and transformers zoo (pytest, project venv) ==="
KILN_BUILD_DIR=$ROOT/build KILN_AARCH64_BUILD_DIR=$ROOT/build-aarch64 PYTHONPATH=$ROOT/python \
  "$VENV_PY" -m pytest -q -ra -p no:cacheprovider tests/ops tests/zoo tests/tokenizers \
  tests/embed 2>&1 | tee "$log"
count_pytest

echo "=== end-to-end and Python API tests (pytest) ==="
KILN_BUILD_DIR=$ROOT/build KILN_AARCH64_BUILD_DIR=$ROOT/build-aarch64 PYTHONPATH=$ROOT/python \
  /usr/bin/python3 -m pytest -q -ra tests/e2e tests/python 2>&1 | tee "$log"
count_pytest
rm -f "$log"

echo
echo "kiln: $passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
