#!/usr/bin/env python3
"""`kiln tune` A/B: tunes a BERT-family model on this machine (timed), compiles it with and
without the tuning log, and times both artifacts interleaved (kiln-rt bench, one round = one run
of each, alternating which goes first) at each thread count; prints the median tuned / default
ratio per thread count, and each tuned GEMM's GFLOP/s against the core's FMA peak
(kiln_fma_peak; INT8 against 4x that, the vpdpbusd / sdot rate per FMA lane).

  bench/tune_ab.py --config base --seq 128 --threads 1,2 --budget 5m
  bench/tune_ab.py --config minilm --seq 16 --threads 2
  bench/tune_ab.py --config base --seq 128 --target x86-64-v3 --threads 1

The machine is shared: only the ratios of one run mean anything (docs/measurements.md).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
BUILD = Path(os.environ.get("KILN_BUILD_DIR", ROOT / "build")).resolve()
KILN = BUILD / "tools" / "kiln" / "kiln"
KILN_RT = BUILD / "tools" / "kiln-rt" / "kiln-rt"

from kiln.models.bert import CONFIGS, build_model, export_onnx  # noqa: E402

def run(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, **kw)


def bench_ms(art, threads, seq, batch, runs):
    out = run(KILN_RT, "bench", art, "--json", "--threads", threads, "--seq", seq, "--batch",
              batch, "--runs", runs, "--warmup", 2).stdout
    return json.loads(out)["median_ms"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--config", default="base", choices=sorted(CONFIGS))
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--target", default="native")
    ap.add_argument("--quantize", default="none")
    ap.add_argument("--budget", default="5m")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--runs", type=int, default=10, help="kiln-rt bench runs per measurement")
    ap.add_argument("--out", default=str(ROOT / "out" / "tune_ab"))
    a = ap.parse_args()

    out = Path(a.out) / f"{a.config}-s{a.seq}-b{a.batch}-{a.target}-{a.quantize}"
    out.mkdir(parents=True, exist_ok=True)
    onnx = Path(a.out) / f"{a.config}.onnx"
    if not onnx.exists():
        cfg = CONFIGS[a.config]
        export_onnx(build_model(cfg, seed=0), onnx, opset=14)
    threads = [int(t) for t in a.threads.split(",")]
    peak = json.loads(run(BUILD / "bench" / "kiln_fma_peak", "--json").stdout)
    isa_peak = peak["avx2"] if a.target == "x86-64-v3" else peak["best"]
    print(f"{a.config} seq {a.seq} batch {a.batch}, target {a.target}, quantize {a.quantize}; "
          f"FMA peak 1 thread {isa_peak:.0f} GFLOP/s")

    results = {}
    for t in threads:
        log = out / f"tuning-t{t}.json"
        t0 = time.perf_counter()
        proc = run(KILN, "tune", onnx, "--target", a.target, "--quantize", a.quantize, "--seq",
                   a.seq, "--batch", a.batch, "--threads", t, "--budget", a.budget, "-o", log)
        tune_s = time.perf_counter() - t0
        print(f"\n--- {t} thread(s): kiln tune {tune_s:.0f} s wall")
        print(proc.stdout.rstrip())
        entries = json.loads(log.read_text())["entries"]
        for e in entries:
            if e["M"] < 8:
                continue
            flops = 2 * e["M"] * e["N"] * e["K"]
            p = isa_peak * t * (4 if e["op"] == "dense_s8" else 1)
            for which in ("default", "best"):
                g = flops / e[which]["median_ns"]
                e[which + "_gflops"] = g
            print(f"  {e['op']} {e['M']}x{e['N']}x{e['K']}: default {e['default_gflops']:.0f} "
                  f"GFLOP/s ({100 * e['default_gflops'] / p:.0f} % of peak), tuned "
                  f"{e['best_gflops']:.0f} ({100 * e['best_gflops'] / p:.0f} %)")
        arts = {}
        for name, extra in (("default", []), ("tuned", ["--tuning-log", log])):
            arts[name] = out / f"{name}-t{t}"
            run(KILN, "compile", onnx, "-o", arts[name], "--target", a.target, "--quantize",
                a.quantize, "--max-seq", max(a.seq, 16), *extra)
        ratios, times = [], {"default": [], "tuned": []}
        for r in range(a.rounds):
            order = ["default", "tuned"] if r % 2 == 0 else ["tuned", "default"]
            ms = {n: bench_ms(arts[n], t, a.seq, a.batch, a.runs) for n in order}
            for n in ms:
                times[n].append(ms[n])
            ratios.append(ms["tuned"] / ms["default"])
        d, tu = statistics.median(times["default"]), statistics.median(times["tuned"])
        r = statistics.median(ratios)
        results[t] = {"tune_seconds": tune_s, "default_ms": d, "tuned_ms": tu, "ratio": r,
                      "ratios": ratios}
        print(f"  A/B ({a.rounds} interleaved rounds of {a.runs} runs): default {d:.2f} ms, tuned "
              f"{tu:.2f} ms, tuned/default median {r:.3f} (range {min(ratios):.3f}-"
              f"{max(ratios):.3f})")
    (out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
