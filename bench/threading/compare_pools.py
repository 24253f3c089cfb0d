"""Whole-model latency of one artifact with each thread pool, interleaved.

Runs `kiln bench ART --seq S --threads T --json` once per (round, artifact, seq, pool), the pool
order rotated every round, each run in its own process, and prints the median over rounds of each
process's median latency (ms) and the min. Pools:
  spin, block, openmp   the KILN_THREADING variants of build/bench/threading/openmp/libkiln_runtime.so
  openmp-passive        openmp with OMP_WAIT_POLICY=passive
  default               the build's own runtime (what ships)
  LABEL=DIR             another libkiln_runtime.so directory (e.g. a baseline build)

  /usr/bin/python3 bench/threading/compare_pools.py --build build-bench --rounds 5 \
      /tmp/h6bench/kiln_small_s128 /tmp/h6bench/kiln_base_s128
"""
import argparse
import json
import os
import statistics
import subprocess
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("artifacts", nargs="+")
    ap.add_argument("--build", default="build-bench")
    ap.add_argument("--pools", default="default,spin,block,openmp")
    ap.add_argument("--seq", default="16,128")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args()
    build = Path(a.build).resolve()
    kiln = build / "tools" / "kiln" / "kiln"
    variant_dir = build / "bench" / "threading" / "openmp"
    pools = []
    for p in a.pools.split(","):
        label, _, d = p.partition("=")
        if d:
            pools.append((label, {"LD_LIBRARY_PATH": str(Path(d).resolve())}))
        elif label == "default":
            pools.append((label, {}))
        elif label == "openmp-passive":  # libgomp sleeps at once instead of spinning ~300k times
            pools.append((label, {"LD_LIBRARY_PATH": str(variant_dir), "KILN_THREADING": "openmp",
                                  "OMP_WAIT_POLICY": "passive"}))
        else:
            pools.append((label, {"LD_LIBRARY_PATH": str(variant_dir), "KILN_THREADING": label}))
    seqs = [int(s) for s in a.seq.split(",")]
    res = {}
    print(f"load average at start: {os.getloadavg()}", flush=True)
    for r in range(a.rounds):
        for art in a.artifacts:
            for seq in seqs:
                k = r % len(pools)
                for label, env in pools[k:] + pools[:k]:
                    cmd = [str(kiln), "bench", art, "--seq", str(seq), "--threads", str(a.threads),
                           "--runs", str(a.runs), "--warmup", str(a.warmup), "--json"]
                    out = subprocess.run(cmd, env={**os.environ, **env}, check=True,
                                         capture_output=True, text=True).stdout
                    j = json.loads(out.strip().splitlines()[-1])
                    res.setdefault((art, seq, label), []).append((j["median_ms"], j["min_ms"]))
        print(f"round {r + 1}/{a.rounds} done, load average {os.getloadavg()[0]:.2f}", flush=True)
    print(f"load average at end: {os.getloadavg()}")
    labels = [p[0] for p in pools]
    print("| artifact | seq | " + " | ".join(labels) + " |")
    print("|---|---:|" + "---:|" * len(labels))
    for art in a.artifacts:
        for seq in seqs:
            cells = []
            for label in labels:
                v = res[(art, seq, label)]
                cells.append(f"{statistics.median(m for m, _ in v):.2f} ({min(x for _, x in v):.2f})")
            print(f"| {Path(art).name} | {seq} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
