"""kiln vs PyTorch vs ONNX Runtime (vs Apache TVM), side by side in one run on this machine.

Builds a BERT in PyTorch (HF architecture and init, seed 0), exports it to ONNX, compiles it with
kiln for this CPU, checks every system's output against PyTorch, then times them interleaved:
each round runs every (system, threads, seq) once in a rotated order, each in its own process,
and the table reports the median over rounds of each run's median, the min, and kiln's ratio.

  /usr/bin/python3 bench/compare.py --config base --seq 128 --threads 1,2 --rounds 3
"""
import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from harness import KILN, compile_model, max_abs_diff, run_model  # noqa: E402
from kiln.models.bert import CONFIGS, build_model, export_onnx, make_inputs  # noqa: E402

PEERS = ROOT / "bench" / "peers"
PYTHONS = {"torch": "/usr/bin/python3", "ort": str(ROOT / ".venv/ort/bin/python")}


def prepare(config, out):
    """Model files shared by all systems: state_dict + config for PyTorch, ONNX for the rest."""
    prefix = out / f"bert_{config}"
    if not Path(str(prefix) + ".onnx").exists():
        cfg = CONFIGS[config]
        model = build_model(cfg, seed=0)
        torch.save(model.state_dict(), str(prefix) + ".pt")
        json.dump(dataclasses.asdict(cfg), open(str(prefix) + "_config.json", "w"))
        export_onnx(model, str(prefix) + ".onnx", opset=14)
    return prefix


def worker(system, prefix, npz, threads, runs, warmup, art, seq, save=None):
    if system == "kiln":
        cmd = [str(KILN), "bench", str(art), "--seq", str(seq), "--threads", str(threads),
               "--runs", str(runs), "--warmup", str(warmup), "--json"]
    else:
        model = str(prefix) + (".onnx" if system != "torch" else "")
        cmd = [PYTHONS[system], str(PEERS / f"{system}_worker.py"), model, str(npz), str(threads),
               str(runs), str(warmup)] + (["--save", str(save)] if save else [])
    env = dict(os.environ, PYTHONPATH=f"{PEERS}:{ROOT / 'python'}", OMP_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="base", choices=sorted(CONFIGS))
    ap.add_argument("--seq", default="128", help="comma-separated sequence lengths")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--systems", default="kiln,torch,ort")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "out" / "bench"))
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    systems = a.systems.split(",")
    seqs = [int(s) for s in a.seq.split(",")]
    threads = [int(t) for t in a.threads.split(",")]

    prefix = prepare(a.config, out)
    t0 = time.perf_counter()
    art = compile_model(str(prefix) + ".onnx", out / f"kiln_{a.config}", "native")
    print(f"kiln compile: {time.perf_counter() - t0:.1f} s; artifact " + ", ".join(
        f"{f} {(art / f).stat().st_size / 1e6:.1f} MB" for f in ("model.so", "model.params")))

    cfg = CONFIGS[a.config]
    results = {}
    for seq in seqs:
        feed = make_inputs(cfg, 1, seq, pad=False)
        npz = out / f"inputs_{seq}.npz"
        np.savez(npz, **feed)
        ref = out / f"ref_{seq}.npy"
        worker("torch", prefix, npz, 1, 1, 0, art, seq, save=ref)
        want = np.load(ref)
        got = run_model(art, feed, out / "run")["last_hidden_state"]
        print(f"seq {seq}: max |kiln - PyTorch| = {max_abs_diff(got, want):.2e}", end="")
        for s in systems:
            if s not in ("kiln", "torch"):
                p = out / f"{s}_{seq}.npy"
                worker(s, prefix, npz, 1, 1, 0, art, seq, save=p)
                print(f", |{s} - PyTorch| = {max_abs_diff(np.load(p), want):.2e}", end="")
        print()

    for r in range(a.rounds):
        order = systems[r % len(systems):] + systems[:r % len(systems)]
        for seq in seqs:
            for t in threads:
                for s in order:
                    res = worker(s, prefix, out / f"inputs_{seq}.npz", t, a.runs, a.warmup, art, seq)
                    results.setdefault((s, seq, t), []).append(res)
        print(f"round {r + 1}/{a.rounds} done", flush=True)

    names = {"kiln": "kiln", "torch": f"PyTorch {torch.__version__}", "ort": "ONNX Runtime"}
    print(f"\nBERT {a.config} ({cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}), batch 1, "
          f"FP32, median of {a.rounds} rounds x {a.runs} runs, ms (min in brackets)\n")
    head = "| seq | threads | " + " | ".join(names.get(s, s) for s in systems) + " | " + \
        " | ".join(f"kiln/{names.get(s, s)}" for s in systems if s != "kiln") + " |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for seq in seqs:
        for t in threads:
            med = {s: float(np.median([x["median_ms"] for x in results[(s, seq, t)]])) for s in systems}
            mn = {s: float(np.min([x["min_ms"] for x in results[(s, seq, t)]])) for s in systems}
            cells = [f"{med[s]:.2f} ({mn[s]:.2f})" for s in systems]
            ratios = [f"{med['kiln'] / med[s]:.2f}" for s in systems if s != "kiln"] if "kiln" in med else []
            print(f"| {seq} | {t} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")


if __name__ == "__main__":
    main()
