"""kiln demo: PyTorch BERT -> ONNX -> kiln artifacts for x86, Pi 4 and Pi 5 -> run and compare."""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from harness import KILN, QEMU_CPUS, compile_model, max_abs_diff, run_model  # noqa: E402
from kiln.models.bert import CONFIGS, build_model, export_onnx, make_inputs, run_torch  # noqa: E402


def torch_latency_ms(model, inputs, names, threads, runs):
    torch.set_num_threads(threads)
    args = [torch.from_numpy(inputs[n]) for n in names]
    times = []
    with torch.no_grad():
        for i in range(runs + 3):
            t0 = time.perf_counter()
            model(*args)
            if i >= 3:
                times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def kiln_latency_ms(art, batch, seq, threads, runs):
    out = subprocess.run([str(KILN), "bench", str(art), "--batch", str(batch), "--seq", str(seq),
                          "--threads", str(threads), "--runs", str(runs), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["median_ms"]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="small", choices=sorted(CONFIGS))
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--qemu-seq", type=int, default=32, help="sequence length for the qemu runs")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "out" / "demo"))
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    cfg = CONFIGS[a.config]
    print(f"[demo] building a {a.config} BERT in PyTorch {torch.__version__}: "
          f"{cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, vocab {cfg.vocab_size}")
    model = build_model(cfg, seed=0)
    onnx_path = out / "bert.onnx"
    names, outputs = export_onnx(model, onnx_path, opset=14)
    print(f"[demo] exported {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB)")

    rows = []
    for target in ["native", "rpi4", "rpi5"]:
        t0 = time.perf_counter()
        art = compile_model(onnx_path, out / target, target)
        compile_s = time.perf_counter() - t0
        cpu = QEMU_CPUS.get(target)
        seq = a.qemu_seq if cpu else a.seq
        inputs = make_inputs(cfg, 2, seq)
        want = run_torch(model, inputs, names)
        got = run_model(art, inputs, out / f"run_{target}", qemu_cpu=cpu)
        diff = max(max_abs_diff(got[n], w) for n, w in zip(outputs, want))
        where = f"qemu-aarch64 -cpu {cpu}" if cpu else "this PC"
        rows.append((target, where, seq, diff, compile_s))
        print(f"[demo] {target:6s} compiled in {compile_s:5.1f} s, ran on {where}: "
              f"batch 2 seq {seq}, max |kiln - PyTorch| = {diff:.2e}")

    print(f"\n[demo] host latency, batch 1, seq {a.seq}, median of {a.runs} runs (ms):")
    print(f"  {'threads':>7}  {'kiln':>8}  {'PyTorch':>8}  {'kiln/PyTorch':>12}")
    inputs = make_inputs(cfg, 1, a.seq)
    for threads in (1, 2):
        k = kiln_latency_ms(out / "native", 1, a.seq, threads, a.runs)
        t = torch_latency_ms(model, inputs, names, threads, a.runs)
        print(f"  {threads:>7}  {k:8.2f}  {t:8.2f}  {k / t:12.2f}")
    ok = all(r[3] <= 1e-4 for r in rows)
    print(f"\n[demo] {'all targets match PyTorch within 1e-4' if ok else 'MISMATCH above 1e-4'}")
    print(f"[demo] to run on a Pi: scp -r {out / 'rpi5'} pi@board:bert && "
          "ssh pi@board kiln-rt run bert --input input_ids=ids.npy ...")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
