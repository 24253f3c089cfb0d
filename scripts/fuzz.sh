#!/usr/bin/env bash
# Builds kiln's libFuzzer targets (tests/fuzz, clang with ASan + UBSan, in build-fuzz/) and runs
# each: first the committed seed corpus and every input that ever crashed it
# (tests/fuzz/{corpus,regressions}/<target>/) once, then SECONDS of fuzzing (default 60; 0 =
# replay only). New corpus entries go to build-fuzz/corpus/<target>/ (kept between runs, never
# committed); a crash, leak, timeout or out-of-memory is saved to build-fuzz/crashes/<target>/
# and fails the script: fix it, then commit the input to tests/fuzz/regressions/<target>/.
#
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]     (targets: all of them by default)
# Env: JOBS (build parallelism, default nproc), FUZZ_ARGS (more libFuzzer flags), FUZZ_RUNS (stop
# fuzzing a target after this many executions, or SECONDS, whichever comes first: not in FUZZ_ARGS,
# where libFuzzer would replay each seed that many times), KILN_FUZZ_BUILD (build directory,
# default build-fuzz; its corpus/ and crashes/ go with it).
# One fuzzer runs at a time, at nice 10. The last line sums up executions and failures.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_EACH=${1:-60}
shift $(($# > 0 ? 1 : 0))
ALL=(npy model_json params artifact vocab tokenizer_json serve_request tune_probe_request onnx_import)
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=("${ALL[@]}")

scripts/setup.sh || exit 1  # also clang and its libFuzzer runtime
BUILD=${KILN_FUZZ_BUILD:-$ROOT/build-fuzz}
CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKILN_BUILD_TESTS=OFF -DKILN_BUILD_FUZZERS=ON -DKILN_SANITIZE=address,undefined >/dev/null ||
  exit 1
targets=()
for t in "${TARGETS[@]}"; do targets+=("${t}_fuzzer"); done
cmake --build "$BUILD" -j "${JOBS:-$(nproc)}" --target "${targets[@]}" || {
  echo "fuzz: 0 targets run, build failed"
  exit 1
}

# Leaks are real failures (detect_leaks is libFuzzer's default on Linux); UBSan stops at the first
# report (-fno-sanitize-recover=all), with a stack.
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=0
total_execs=0
summary=()
for t in "${TARGETS[@]}"; do
  fuzzer=$BUILD/tests/fuzz/${t}_fuzzer
  seeds=$ROOT/tests/fuzz/corpus/$t
  regressions=$ROOT/tests/fuzz/regressions/$t
  work=$BUILD/corpus/$t
  crashes=$BUILD/crashes/$t
  mkdir -p "$work" "$crashes" "$regressions"
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: above the importer's own limits
  # (constant folding stops at 1 GiB per tensor) plus the fuzzer's ~0.6 GB.
  common=(-timeout=10 -rss_limit_mb=4096 -artifact_prefix="$crashes/" -print_final_stats=1)
  echo "=== fuzz $t: replay $(ls "$seeds" | wc -l) seeds, $(ls "$regressions" | wc -l) regressions ==="
  log=$BUILD/$t.log
  # Files as arguments: each is run once, and a crash names the file.
  inputs=("$seeds"/* "$regressions"/*)
  existing=()
  for f in "${inputs[@]}"; do [[ -f $f ]] && existing+=("$f"); done
  if ! nice -n 10 "$fuzzer" "${common[@]}" ${FUZZ_ARGS:-} "${existing[@]}" >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz $t: FAILED replaying the corpus (log: $log)"
    failed=$((failed + 1))
    summary+=("$t: replay FAILED")
    continue
  fi
  ((SECONDS_EACH > 0)) || {
    summary+=("$t: replayed ${#existing[@]} inputs")
    continue
  }
  echo "=== fuzz $t: ${SECONDS_EACH} s ==="
  if nice -n 10 "$fuzzer" "${common[@]}" -max_total_time="$SECONDS_EACH" \
    ${FUZZ_RUNS:+-runs=$FUZZ_RUNS} ${FUZZ_ARGS:-} \
    "$work" "$seeds" "$regressions" >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed=$((failed + 1))
    grep -E "ERROR|SUMMARY|Test unit written" "$log" | head -20
  fi
  execs=$(grep -oE "stat::number_of_executed_units: [0-9]+" "$log" | grep -oE "[0-9]+$" || echo 0)
  last=$(grep -E "^#[0-9]+.*cov: " "$log" | tail -1)
  cov=$(grep -oE "cov: [0-9]+" <<<"$last" | grep -oE "[0-9]+" || echo "?")
  ft=$(grep -oE "ft: [0-9]+" <<<"$last" | grep -oE "[0-9]+" || echo "?")
  corpus=$(grep -oE "corp: [0-9]+" <<<"$last" | grep -oE "[0-9]+" || echo "?")
  total_execs=$((total_execs + ${execs:-0}))
  summary+=("$t: $status, ${execs:-0} execs, cov $cov ft $ft, corpus $corpus (log: $log)")
  [[ $status == ok ]] || echo "fuzz $t: FAILED; the input is in $crashes/"
done
echo
printf '%s\n' "${summary[@]}"
echo "fuzz: ${#TARGETS[@]} targets, $total_execs executions, $failed failed"
[[ $failed -eq 0 ]]
