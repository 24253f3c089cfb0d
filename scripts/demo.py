"""kiln demo: PyTorch BERT -> ONNX -> kiln artifacts for x86, Pi 4 and Pi 5 -> run and compare."""
import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from harness import (KILN, QEMU_CPUS, compile_model, max_abs_diff, qemu_prefix,  # noqa: E402
                     run_model)
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
    ok = make_pi_bundle(onnx_path, out) and ok
    return 0 if ok else 1


def make_pi_bundle(onnx_path, out):
    """The deliverable: one archive for a Pi 5 (artifact + aarch64 runtime + infer.py), checked
    the way the board runs it (unpacked alone, kiln-rt under qemu as a Cortex-A76)."""
    bundle = out / "kiln-rpi5.tar.gz"
    compile_model(onnx_path, out / "rpi5-bundle", "rpi5", "--bundle", bundle)
    board = out / "board"
    if board.exists():
        shutil.rmtree(board)
    board.mkdir()
    subprocess.run(["tar", "xf", str(bundle)], cwd=board, check=True)
    ids = np.array([[101, 7592, 2013, 1996, 2604, 102]], dtype=np.int64)
    for name, arr in {"input_ids": ids, "attention_mask": np.ones_like(ids),
                      "token_type_ids": np.zeros_like(ids)}.items():
        np.save(board / "kiln-rpi5" / f"{name}.npy", arr)
    proc = subprocess.run([*qemu_prefix(QEMU_CPUS["rpi5"]), "./kiln-rt", "run", ".",
                           "--input", "input_ids=input_ids.npy",
                           "--input", "attention_mask=attention_mask.npy",
                           "--input", "token_type_ids=token_type_ids.npy", "--output-dir", "out"],
                          cwd=board / "kiln-rpi5", capture_output=True, text=True)
    ok = proc.returncode == 0
    print(f"\n[demo] Pi 5 bundle: {bundle} ({bundle.stat().st_size / 1e6:.1f} MB); its kiln-rt "
          f"{'ran' if ok else 'FAILED'} from the unpacked archive under "
          "qemu-aarch64 -cpu cortex-a76")
    if not ok:
        print(proc.stderr)
    print(f"[demo] copy it to the board:  scp {bundle} pi@raspberrypi.local:")
    print("[demo] then, on the Pi (64-bit OS), type:")
    print("  tar xf kiln-rpi5.tar.gz && cd kiln-rpi5")
    print("  python3 infer.py --ids 101,7592,2013,1996,2604,102")
    return ok


if __name__ == "__main__":
    sys.exit(main())
