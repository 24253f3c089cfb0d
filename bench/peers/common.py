"""Shared by the peer workers: the timing loop and the result line the driver reads."""
import json
import os
import sys
import time

import numpy as np


def time_runs(fn, runs, warmup):
    """`warmup` untimed then `runs` timed calls (ms). BENCH_BUDGET_S (set by compare.py) ends the
    timed calls early once they took that long, after at least 3, so a very slow system (untuned
    TVM) does not hold up the whole comparison."""
    budget = float(os.environ.get("BENCH_BUDGET_S", "0") or 0)
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
        if budget and len(times) >= 3 and time.perf_counter() - start > budget:
            break
    return times


def report(times, output, **extra):
    """Prints one JSON line: timing summary + the first output for the driver's accuracy check."""
    out = {"median_ms": float(np.median(times)), "min_ms": float(np.min(times)),
           "mean_ms": float(np.mean(times)), "runs": len(times), **extra}
    if "--save" in sys.argv:
        np.save(sys.argv[sys.argv.index("--save") + 1], output)
    print(json.dumps(out))
