"""Shared by the peer workers: the timing loop and the result line the driver reads."""
import json
import sys
import time

import numpy as np


def time_runs(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def report(times, output, **extra):
    """Prints one JSON line: timing summary + the first output for the driver's accuracy check."""
    out = {"median_ms": float(np.median(times)), "min_ms": float(np.min(times)),
           "mean_ms": float(np.mean(times)), "runs": len(times), **extra}
    if "--save" in sys.argv:
        np.save(sys.argv[sys.argv.index("--save") + 1], output)
    print(json.dumps(out))
