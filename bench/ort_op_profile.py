#!/usr/bin/env python3
"""ONNX Runtime's time per op type (its own profiler, `enable_profiling`), to set beside
`kiln-rt bench --profile` on the same model: which of ORT's nodes kiln's fusions replace and what
each costs. Run with the project venv's python (onnxruntime):

  ~/.cache/kiln/venv-*/bin/python bench/ort_op_profile.py out/bench/bert_base_int8.onnx \\
      out/bench/inputs_base_b1_s128.npz --threads 1
  build/tools/kiln-rt/kiln-rt bench out/bench/kiln_base_s128_int8 --threads 1 --profile

(bench/compare.py --systems kiln,ort writes both models and the inputs.) The profiler adds a
little time per node, so the profiled run is slower than an unprofiled one.
"""
import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
from ort_worker import session  # noqa: E402  (the session compare.py times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("inputs", help=".npz with the model's inputs by name")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args()

    s = session(a.model, a.threads, profile=True)
    wanted = {i.name for i in s.get_inputs()}
    feeds = {k: v for k, v in np.load(a.inputs).items() if k in wanted}
    missing = wanted - feeds.keys()
    if missing:
        raise SystemExit(f"{a.inputs}: no input named {', '.join(sorted(missing))}")
    for _ in range(a.warmup):
        s.run(None, feeds)
    t = time.perf_counter()
    for _ in range(a.runs):
        s.run(None, feeds)
    wall = (time.perf_counter() - t) / a.runs * 1e3
    path = s.end_profiling()
    with open(path) as f:
        events = json.load(f)
    os.remove(path)

    us, nodes = collections.Counter(), collections.Counter()
    for e in events:  # warmup runs are in the trace too: divide by every run
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e["args"].get("op_name", "?")
            us[op] += e["dur"]
            nodes[op] += 1
    total = sum(us.values()) or 1
    calls = a.runs + a.warmup
    print(f"{a.model}: {a.threads} thread(s), {wall:.2f} ms/run (profiled, {a.runs} runs)")
    print(f"{'op':32s} {'ms/run':>8s} {'% of nodes':>10s} {'nodes/run':>9s}")
    for op, d in us.most_common():
        print(f"{op:32s} {d / calls / 1e3:8.2f} {100 * d / total:10.1f} {nodes[op] / calls:9.0f}")


if __name__ == "__main__":
    main()
