#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds host + aarch64, then runs
#   1. host unit tests (ctest: kernels, runtime, compiler),
#   2. aarch64 unit tests under qemu-aarch64 as a Cortex-A72 (Pi 4) and a Cortex-A76 (Pi 5),
#   3. the op harness (tests/ops: every op x GEMM variant x target, FP32 and INT8, against
#      onnx.reference), the transformers zoo exports (tests/zoo) and tokenizer.json against the
#      `tokenizers` package (tests/tokenizers), sentence embeddings against sentence-transformers
#      (tests/embed, host and rpi4 / rpi5 under qemu), `kiln-rt serve` over HTTP (tests/serve,
#      host and rpi5 under qemu), in the pinned project venv
#      (scripts/setup_venv.sh: torch 2.x, transformers 5.x, onnx; ~/.cache/kiln, kept across clones),
#   4. end-to-end tests against PyTorch (pytest: host, and aarch64 artifacts under qemu) and the
#      Python API, tokenizer, deploy-bundle and .deb tests (tests/python) and `kiln tune`'s
#      runners (tests/tune: a private sshd on 127.0.0.1, the aarch64 probe under qemu); the Pi bundles'
#      infer.py runs under qemu with Debian's arm64 python3 + numpy from a private sysroot
#      (scripts/setup_arm64_python.sh: .cache/arm64-sysroot/, a few seconds once, then cached).
#      Stage 4 includes a short soak (tests/e2e/test_soak.py: 10000 runs of one model, RSS and
#      descriptors flat, 4 threads with a model each; scripts/soak.sh runs 100 k).
#   5. the libFuzzer targets (scripts/fuzz.sh: build-fuzz/, clang + ASan/UBSan): the saved corpus
#      and every input that ever crashed replayed, then FUZZ_SECONDS (default 10) of fuzzing each.
# Every stage runs even if an earlier one fails; the last line sums them up and the exit code
# is non-zero on any failure.
#
# usage: scripts/test.sh [--only host|aarch64|harness|e2e|fuzz] [--sanitize LIST]
#   --only STAGE     runs one stage (with the builds it needs)
#   --sanitize LIST  instead: the host build with -fsanitize=LIST in build-san/<LIST>/, generated
#                    model.so too (KILN_EXTRA_CXXFLAGS). address,undefined: host ctest, then stages
#                    3 and 4 on the host (qemu tests deselected: their runtime is not instrumented);
#                    thread: the thread pool, runtime and serve tests (ctest runtime.*, serve.*)
#                    under TSan.
#                    KILN_SAN_BUILD=DIR builds there instead (two sanitizer runs side by side).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ONLY=""
SANITIZE=""
usage="usage: scripts/test.sh [--only host|aarch64|harness|e2e|fuzz] [--sanitize LIST]"
while (($#)); do
  case $1 in
    --only) ONLY=${2:-}; shift 2 || shift ;;
    --sanitize) SANITIZE=${2:-}; shift 2 || shift ;;
    *) echo "$usage"; exit 2 ;;
  esac
done
[[ -z $ONLY || $ONLY =~ ^(host|aarch64|harness|e2e|fuzz)$ ]] || { echo "$usage"; exit 2; }
want() { [[ -z $ONLY || $ONLY == "$1" ]] && [[ -z $SANITIZE || $1 == sanitize ]]; }
[[ -n $SANITIZE ]] && ONLY=sanitize

scripts/setup.sh || exit 1
if [[ $ONLY == sanitize ]]; then
  SAN_BUILD=${KILN_SAN_BUILD:-$ROOT/build-san/${SANITIZE//,/_}}
  SAN_FLAGS="-fsanitize=$SANITIZE -fno-sanitize-recover=all -fno-omit-frame-pointer"
  san_targets=()
  san_config=()
  if [[ $SANITIZE == thread ]]; then
    san_config=(-DKILN_BUILD_COMPILER=OFF)
    san_targets=(--target kiln_runtime_test kiln_thread_pool_test kiln-rt kiln_make_test_artifact
                 kiln_soak kiln_serve_test)
  fi
  cmake -S . -B "$SAN_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DKILN_SANITIZE="$SANITIZE" "${san_config[@]}" >/dev/null &&
    cmake --build "$SAN_BUILD" -j "${JOBS:-$(nproc)}" "${san_targets[@]}" ||
    { echo "0 passed, 1 failed (sanitizer build)"; exit 1; }
elif [[ $ONLY != fuzz ]]; then
  scripts/build.sh --aarch64 || { echo "0 passed, 1 failed (build)"; exit 1; }
fi
if want harness || want e2e || [[ $SANITIZE == *address* ]]; then
  # without it (no network) tests/python/test_bundle_qemu_python.py is skipped, saying why
  scripts/setup_arm64_python.sh || echo "[test] no arm64 python sysroot: the Pi infer.py tests skip"
  VENV_PY=$(scripts/setup_venv.sh | tail -1) || { echo "0 passed, 1 failed (project venv)"; exit 1; }
fi

passed=0
failed=0
skipped=0
log=$(mktemp)
times=""  # "stage N s" per stage, printed before the summary (the suite should stay under 30 min)
stage_end() {
  times+="${times:+, }$1 $((SECONDS - stage_start)) s"
  stage_start=$SECONDS
}
stage_start=0
stage_end "setup and builds"

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

if want host; then
  echo "=== host unit tests ==="
  ctest --test-dir build --output-on-failure -j 2 2>&1 | tee "$log"
  count_ctest
  stage_end host
fi

for cpu in cortex-a72 cortex-a76; do
  want aarch64 || break
  echo "=== aarch64 unit tests under qemu ($cpu) ==="
  QEMU_CPU=$cpu ctest --test-dir build-aarch64 --output-on-failure -j 2 2>&1 | tee "$log"
  count_ctest
  stage_end "qemu $cpu"
done

if [[ -n $SANITIZE ]]; then
  # Leak checks stay on for the unit tests; UBSan stops at the first report, with a stack.
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  san_filter=()
  [[ $SANITIZE == thread ]] && san_filter=(-R '^(runtime|serve)\.' -E 'openmp')
  echo "=== host unit tests (-fsanitize=$SANITIZE) ==="
  ctest --test-dir "$SAN_BUILD" --output-on-failure -j 2 "${san_filter[@]}" 2>&1 | tee "$log"
  count_ctest
  stage_end "host -fsanitize=$SANITIZE"
fi

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

PY_BUILD=$ROOT/build
py_env=()
py_select=()
if [[ $SANITIZE == *address* ]]; then
  # The Python processes load the instrumented libkiln_runtime.so: the ASan runtime must come
  # first, and libstdc++ with it (else ASan's __cxa_throw interceptor finds no real one when
  # torch throws). Leaks are not checked there (Python's and torch's own allocations at exit).
  PY_BUILD=$SAN_BUILD
  py_env=(LD_PRELOAD="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libstdc++.so)"
          ASAN_OPTIONS=detect_leaks=0
          KILN_EXTRA_CXXFLAGS="$SAN_FLAGS")
  py_select=(-k "not qemu and not aarch64 and not rpi4 and not rpi5 and not cortex")
fi

if want harness || [[ $SANITIZE == *address* ]]; then
  echo "=== op harness and transformers zoo (pytest, project venv) ==="
  env "${py_env[@]}" KILN_BUILD_DIR=$PY_BUILD KILN_AARCH64_BUILD_DIR=$ROOT/build-aarch64 \
    PYTHONPATH=$ROOT/python "$VENV_PY" -m pytest -q -ra -p no:cacheprovider "${py_select[@]}" \
    tests/ops tests/zoo tests/tokenizers tests/embed tests/quant tests/serve 2>&1 | tee "$log"
  count_pytest
  stage_end harness
fi

if want e2e || [[ $SANITIZE == *address* ]]; then
  echo "=== end-to-end and Python API tests (pytest) ==="
  # One worker per core (pytest-xdist; a file's tests stay on one worker, tests/conftest.py): these
  # tests spend most of their time in one-threaded Python, torch and g++, so two workers took 317 s
  # instead of 568 s. The harness above stays serial: its kiln runs already use both cores, and two
  # workers made it slower (737 s against 555 s).
  env "${py_env[@]}" KILN_BUILD_DIR=$PY_BUILD KILN_AARCH64_BUILD_DIR=$ROOT/build-aarch64 \
    PYTHONPATH=$ROOT/python /usr/bin/python3 -m pytest -q -ra -n auto --dist loadgroup \
    "${py_select[@]}" tests/e2e \
    tests/python tests/tune 2>&1 | tee "$log"
  count_pytest
  stage_end e2e
fi

if want fuzz; then
  echo "=== fuzz targets (scripts/fuzz.sh ${FUZZ_SECONDS:-10}) ==="
  scripts/fuzz.sh "${FUZZ_SECONDS:-10}" 2>&1 | tee "$log"
  line=$(grep -E "^fuzz: [0-9]+ targets, [0-9]+ executions, [0-9]+ failed" "$log" | tail -1)
  if [[ -z $line ]]; then
    failed=$((failed + 1))
  else
    read -r t f < <(sed -E 's/fuzz: ([0-9]+) targets, .* ([0-9]+) failed/\1 \2/' <<<"$line")
    passed=$((passed + t - f))
    failed=$((failed + f))
  fi
  stage_end fuzz
fi
rm -f "$log"

echo
echo "stage times: $times"
echo "kiln: $passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
