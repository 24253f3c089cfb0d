"""kiln vs PyTorch vs ONNX Runtime vs Apache TVM, side by side in one run on this machine.

Builds a BERT in PyTorch (kiln.models.bert: HF architecture and init, seed 0), exports it to ONNX,
compiles it with kiln for this CPU, checks every system's output against PyTorch, measures the
core's FP32 FMA peak (kiln_fma_peak), then times the systems interleaved: each round runs every
(seq, threads, system) once, the system order rotated from round to round, each run in its own
process. The table gives the median over rounds of each run's median latency, the min over all
runs, and kiln/peer latency ratios; then kiln's achieved GFLOP/s (analytic model FLOPs / median
latency) and its fraction of the measured peak.

  /usr/bin/python3 bench/compare.py --config small --seq 128 --threads 1,2 --rounds 3
  KILN_BUILD_DIR=build-bench /usr/bin/python3 bench/compare.py --config base --json out.json

Systems: kiln; torch (Debian python3-torch + OpenBLAS, /usr/bin/python3); ort (onnxruntime wheel
in .venv/ort); tvm (apache-tvm in .venv/tvm, Relax flow; bench/setup_peers.sh --tvm). INT8:
kiln-int8, torch-int8, ort-int8, tvm-int8 (see SYSTEMS). Tuned: kiln-tuned (compiled with
--kiln-tuning-log, a `kiln tune` log) and tvm-tuned (--tvm-tune MetaSchedule trials first; its
tuning time is printed). A system that cannot run is reported with its reason instead of numbers.
"""
import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from harness import BUILD, KILN, KilnError, compile_model, max_abs_diff, run_model  # noqa: E402
from kiln.models.bert import CONFIGS, build_model, export_onnx, make_inputs  # noqa: E402

PEERS = ROOT / "bench" / "peers"
PYTHONS = {"torch": "/usr/bin/python3", "ort": str(ROOT / ".venv/ort/bin/python"),
           "tvm": str(ROOT / ".venv/tvm/bin/python")}
ALIASES = {"pytorch": "torch", "onnxruntime": "ort", "onnx-runtime": "ort", "apache-tvm": "tvm",
           "pytorch-int8": "torch-int8", "onnxruntime-int8": "ort-int8",
           "apache-tvm-int8": "tvm-int8"}
# *-int8: kiln --quantize int8; ORT's own quantize_dynamic (default options); PyTorch's
# quantize_dynamic of nn.Linear (onednn engine: Debian's torch has no FBGEMM); TVM: ORT's
# quantize_dynamic model (DynamicQuantizeLinear + MatMulInteger) through the Relax ONNX frontend
# (TVM 0.27 has no quantization pass of its own: relay.quantize went with Relay).
SYSTEMS = ("kiln", "torch", "ort", "tvm", "kiln-int8", "torch-int8", "ort-int8", "tvm-int8",
           "kiln-tuned", "tvm-tuned")
KILN_SYSTEMS = ("kiln", "kiln-int8", "kiln-tuned")
INT8 = ("kiln-int8", "torch-int8", "ort-int8", "tvm-int8")
# max |output - PyTorch| accepted as "ok" (FP32, different summation orders)
TOLERANCE = 1e-3


def model_flops(cfg, batch, seq):
    """FLOPs of one forward pass: 2*M*K*N per GEMM (Q, K, V, attention output, FFN up and down,
    pooler) plus attention's two batched matmuls, 4*B*S^2*H per layer. Element-wise work
    (softmax, LayerNorm, GELU, adds) is left out, as usual."""
    h, i, tokens = cfg.hidden_size, cfg.intermediate_size, batch * seq
    per_layer = 2 * tokens * h * (4 * h + 2 * i) + 4 * batch * seq * seq * h
    pooler = 2 * batch * h * h if cfg.add_pooler else 0
    return cfg.num_hidden_layers * per_layer + pooler


def prepare(config, out):
    """Model files shared by all systems: state_dict + config for PyTorch, ONNX for the rest."""
    prefix = out / f"bert_{config}"
    if not Path(f"{prefix}.onnx").exists() or not Path(f"{prefix}.pt").exists():
        cfg = CONFIGS[config]
        model = build_model(cfg, seed=0)
        torch.save(model.state_dict(), f"{prefix}.pt")
        json.dump(dataclasses.asdict(cfg), open(f"{prefix}_config.json", "w"))
        export_onnx(model, f"{prefix}.onnx", opset=14)
    return prefix


def compile_kiln(onnx, art, max_seq, *extra, log=None):
    """Compiles unless the artifact is newer than the ONNX file, the kiln binary and the tuning
    log (if any)."""
    stamp = art / "model.so"
    inputs = [Path(onnx), KILN] + ([Path(log)] if log else [])
    if stamp.exists() and stamp.stat().st_mtime > max(p.stat().st_mtime for p in inputs):
        print(f"kiln: reusing {art}")
        return
    t0 = time.perf_counter()
    compile_model(onnx, art, "native", "--max-seq", str(max_seq), *extra)
    print(f"kiln compile: {time.perf_counter() - t0:.1f} s; artifact " + ", ".join(
        f"{f} {(art / f).stat().st_size / 1e6:.1f} MB" for f in ("model.so", "model.params")))


def fma_peak():
    """{"avx512": GFLOP/s, "avx2": ..., "best": ..., "isa": ...} from kiln_fma_peak, or None."""
    exe = BUILD / "bench" / "kiln_fma_peak"
    if not exe.exists():
        print(f"note: {exe} not built; no FMA peak")
        return None
    proc = subprocess.run([str(exe), "--json"], capture_output=True, text=True, timeout=300)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


class Failed(Exception):
    pass


def cpu_busy(interval=0.5):
    """Fraction of all CPUs busy over `interval` seconds (/proc/stat), including this process."""
    def sample():
        v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    t0, i0 = sample()
    time.sleep(interval)
    t1, i1 = sample()
    return 1 - (i1 - i0) / max(1, t1 - t0)


def wait_quiet(max_wait, threshold=0.15):
    """Waits up to max_wait seconds for the other processes to use < threshold of the CPUs.
    Returns the last busy fraction seen."""
    deadline = time.monotonic() + max_wait
    busy = cpu_busy()
    while busy >= threshold and time.monotonic() < deadline:
        time.sleep(2)
        busy = cpu_busy()
    return busy


def quantize_ort(prefix):
    """PREFIX_int8.onnx by onnxruntime.quantization.quantize_dynamic with its default options."""
    out = Path(f"{prefix}_int8.onnx")
    if not out.exists():
        code = ("import sys; from onnxruntime.quantization import quantize_dynamic; "
                "quantize_dynamic(sys.argv[1], sys.argv[2])")
        proc = subprocess.run([PYTHONS["ort"], "-c", code, f"{prefix}.onnx", str(out)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise Failed("quantize_dynamic failed: " + (proc.stderr.strip().splitlines()
                                                        or ["?"])[-1])
    return out


def kiln_artifact(art, system):
    """The artifact directory of a kiln system: ART, ART_int8, ART_tuned."""
    return art if system == "kiln" else Path(f"{art}_{system.split('-')[1]}")


def worker(system, a, prefix, npz, threads, runs, warmup, art, seq, save=None):
    """Runs one system in its own process; returns its JSON result or raises Failed(reason)."""
    if system in KILN_SYSTEMS:
        cmd = [str(KILN), "bench", str(kiln_artifact(art, system)), "--batch", str(a.batch),
               "--seq", str(seq), "--threads", str(threads), "--runs", str(runs), "--warmup",
               str(warmup), "--json"]
    else:
        base = system.replace("-int8", "").replace("-tuned", "")
        python = PYTHONS[base]
        if not Path(python).exists():
            raise Failed(f"{python} missing (run bench/setup_peers.sh"
                         f"{' --tvm' if base == 'tvm' else ''})")
        model = str(prefix) + ("" if base == "torch" else ".onnx")
        if system in ("ort-int8", "tvm-int8"):
            model = str(quantize_ort(prefix))
        cmd = [python, str(PEERS / f"{base}_worker.py"), model, str(npz), str(threads),
               str(runs), str(warmup)] + (["--save", str(save)] if save else [])
        if system == "torch-int8":
            cmd.append("--int8")
        if base == "tvm":
            cmd += ["--cache", str(a.out / "tvm_cache")]
            if system == "tvm-tuned":
                cmd += ["--tune", str(a.tvm_tune)]
    env = {k: v for k, v in os.environ.items() if k not in ("KILN_PROFILE", "PYTHONPATH")}
    env.update(PYTHONPATH=f"{PEERS}:{ROOT / 'python'}", OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), KILN_NUM_THREADS=str(threads),
               BENCH_BUDGET_S=str(a.budget))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                              timeout=a.worker_timeout)
    except subprocess.TimeoutExpired:
        raise Failed(f"timed out after {a.worker_timeout} s") from None
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    res = None
    if lines:
        try:
            res = json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    if res and "error" in res:
        raise Failed(res["error"])
    if proc.returncode != 0 or res is None:
        err = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise Failed(f"exit {proc.returncode}: " + (err[-1] if err else "no output")[:300])
    return res


def check_outputs(a, systems, prefix, art, cfg, seqs):
    """Saves PyTorch's output per seq and compares every system with it. Returns
    ({system: reason} for systems that failed, {(system, seq): max abs diff}, versions)."""
    failed, diffs, versions = {}, {}, {}
    for seq in seqs:
        feed = make_inputs(cfg, a.batch, seq, pad=False)
        npz = a.out / f"inputs_{a.config}_b{a.batch}_s{seq}.npz"
        np.savez(npz, **feed)
        ref = a.out / f"ref_{a.config}_b{a.batch}_s{seq}.npy"
        try:
            res = worker("torch", a, prefix, npz, 1, 1, 0, art, seq, save=ref)
        except Failed as e:
            sys.exit(f"PyTorch (the reference) failed: {e}")
        versions["torch"] = res.get("version")
        want = np.load(ref)
        line = [f"seq {seq}:"]
        for s in systems:
            if s == "torch" or s in failed:
                continue
            t0 = time.perf_counter()
            try:
                if s in KILN_SYSTEMS:
                    got = run_model(kiln_artifact(art, s), feed, a.out / "run")[
                        "last_hidden_state"]
                else:
                    out = a.out / f"{s}_{a.config}_b{a.batch}_s{seq}.npy"
                    # TVM tunes for the target's thread count: check with the first timed one, so
                    # that a one-count run tunes once
                    t = int(a.threads.split(",")[0]) if s == "tvm-tuned" else 1
                    res = worker(s, a, prefix, npz, t, 1, 0, art, seq, save=out)
                    versions[s] = res.get("version")
                    if s == "tvm-tuned":
                        line.append(f"[MetaSchedule: {res.get('tuning_trials')} trials, "
                                    f"{res.get('tune_s', '?')} s"
                                    f"{' (cached build)' if res.get('cached') else ''}, cost "
                                    f"model {res.get('cost_model', '?')}]")
                    got = np.load(out)
            except (Failed, KilnError) as e:
                failed[s] = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
                line.append(f"{s} FAILED ({failed[s]})")
                continue
            d = diffs[(s, seq)] = max_abs_diff(got, want)
            if s in INT8:  # INT8 is judged by cosine similarity to FP32, never hidden
                g, w = got.ravel().astype(np.float64), want.ravel().astype(np.float64)
                cos = float(g @ w / (np.linalg.norm(g) * np.linalg.norm(w)))
                diffs[(s, seq, "cosine")] = cos
                line.append(f"{s}: cosine {cos:.5f} max|d| {d:.2e}")
                continue
            line.append(f"|{s} - PyTorch| = {d:.2e}"
                        + ("" if d <= TOLERANCE else " (ABOVE TOLERANCE)")
                        + (f" [{time.perf_counter() - t0:.0f} s]" if s.startswith("tvm") else ""))
        print(" ".join(line), flush=True)
    return failed, diffs, versions


def ratio(a, b):
    """a/b with 2 decimals, or 2 significant digits below 0.1 (untuned TVM is ~200x slower)."""
    if not a or not b:
        return "-"
    r = a / b
    return f"{r:.2f}" if r >= 0.1 else f"{r:.2g}"


def names(versions):
    return {"kiln": "kiln", "torch": f"PyTorch {versions.get('torch') or ''}".strip(),
            "ort": f"ONNX Runtime {versions.get('ort') or ''}".strip(),
            "tvm": f"TVM {versions.get('tvm') or ''}".strip(), "kiln-int8": "kiln INT8",
            "torch-int8": "PyTorch INT8", "ort-int8": "ORT INT8", "tvm-int8": "TVM INT8",
            "kiln-tuned": "kiln tuned", "tvm-tuned": "TVM tuned"}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="base", choices=sorted(CONFIGS))
    ap.add_argument("--seq", default="128", help="comma-separated sequence lengths")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--systems", default="kiln,torch,ort,tvm",
                    help="comma-separated: kiln, torch (pytorch), ort (onnxruntime), tvm, "
                         "kiln-int8, torch-int8, ort-int8, tvm-int8, kiln-tuned, tvm-tuned")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10, help="timed runs per process")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs per process first")
    ap.add_argument("--tvm-tune", type=int, default=0, metavar="TRIALS",
                    help="MetaSchedule trials before building tvm-tuned (tvm stays untuned)")
    ap.add_argument("--kiln-tuning-log", metavar="FILE",
                    help="kiln-tuned: kiln compile --tuning-log FILE (a log from kiln tune)")
    ap.add_argument("--profile", action="store_true",
                    help="also print kiln's per-op profile (kiln bench --profile, 1 thread)")
    ap.add_argument("--budget", type=float, default=60,
                    help="a peer process stops timing after this many seconds (>= 3 runs)")
    ap.add_argument("--max-wait", type=float, default=0, metavar="S",
                    help="before each timed process wait up to S seconds for the CPUs to be "
                         "< 15%% busy; cells timed while busier are marked with a dagger")
    ap.add_argument("--worker-timeout", type=int, default=1800)
    ap.add_argument("--out", default=str(ROOT / "out" / "bench"), help="work directory")
    ap.add_argument("--json", metavar="OUT", help="write all results as JSON")
    a = ap.parse_args()
    a.out = Path(a.out)
    a.out.mkdir(parents=True, exist_ok=True)
    systems = []
    for s in a.systems.split(","):
        s = ALIASES.get(s.strip().lower(), s.strip().lower())
        if s not in SYSTEMS:
            ap.error(f"unknown system '{s}' (known: {', '.join(SYSTEMS)})")
        if s not in systems:
            systems.append(s)
    seqs = [int(s) for s in a.seq.split(",")]
    threads = [int(t) for t in a.threads.split(",")]
    cfg = CONFIGS[a.config]
    if max(seqs) > cfg.max_position_embeddings:
        ap.error(f"--seq {max(seqs)} exceeds the {a.config} model's "
                 f"{cfg.max_position_embeddings} positions")
    if "tvm-tuned" in systems and a.tvm_tune <= 0:
        ap.error("tvm-tuned needs --tvm-tune TRIALS")
    if "kiln-tuned" in systems and not a.kiln_tuning_log:
        ap.error("kiln-tuned needs --kiln-tuning-log FILE")
    if any(s in KILN_SYSTEMS for s in systems) and not KILN.exists():
        ap.error(f"{KILN} not found: build kiln or set KILN_BUILD_DIR")

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")), platform.processor())
    load0 = os.getloadavg()
    print(f"machine: {cpu}, {os.cpu_count()} cores; load average {load0[0]:.2f} {load0[1]:.2f} "
          f"{load0[2]:.2f}; kiln build {BUILD}")
    prefix = prepare(a.config, a.out)
    onnx = Path(f"{prefix}.onnx")
    art = a.out / f"kiln_{a.config}_s{max(seqs)}"
    compile_failed = {}
    log = a.kiln_tuning_log
    for s, extra in (("kiln", ()), ("kiln-int8", ("--quantize", "int8")),
                     ("kiln-tuned", ("--tuning-log", str(log)))):
        if s not in systems:
            continue
        try:
            compile_kiln(onnx, kiln_artifact(art, s), max(seqs), *extra,
                         log=log if s == "kiln-tuned" else None)
        except KilnError as e:
            compile_failed[s] = "kiln compile failed: " + (e.stderr.strip().splitlines()
                                                           or ["?"])[-1]
            print(compile_failed[s])
    # PyTorch is the reference: it always runs the accuracy check.
    failed, diffs, versions = check_outputs(
        a, [s for s in systems if s not in compile_failed], prefix, art, cfg, seqs)
    failed.update(compile_failed)
    peaks = [fma_peak()]

    results = {}
    timed = [s for s in systems if s not in failed]
    t_rounds = time.perf_counter()
    for r in range(a.rounds):
        order = timed[r % len(timed):] + timed[:r % len(timed)] if timed else []
        for seq in seqs:
            npz = a.out / f"inputs_{a.config}_b{a.batch}_s{seq}.npz"
            for t in threads:
                for s in order:
                    key = (s, seq, t)
                    if isinstance(results.get(key), str):
                        continue  # failed in an earlier round
                    busy = wait_quiet(a.max_wait) if a.max_wait > 0 else None
                    try:
                        res = worker(s, a, prefix, npz, t, a.runs, a.warmup, art, seq)
                        res["cpu_busy_before"] = busy
                        results.setdefault(key, []).append(res)
                    except Failed as e:
                        results[key] = str(e)
        load = os.getloadavg()
        print(f"round {r + 1}/{a.rounds} done ({time.perf_counter() - t_rounds:.0f} s, "
              f"load average {load[0]:.2f})", flush=True)
    peaks.append(fma_peak())
    peaks = [p for p in peaks if p]
    peak = max(peaks, key=lambda p: p["best"]) if peaks else None
    load1 = os.getloadavg()

    label = names(versions)
    flops = model_flops(cfg, a.batch, max(seqs))
    print(f"\nBERT {a.config} (L{cfg.num_hidden_layers} H{cfg.hidden_size} "
          f"A{cfg.num_attention_heads} FFN{cfg.intermediate_size}), batch {a.batch}, "
          f"{'/'.join(sorted({'INT8' if x in INT8 else 'FP32' for x in systems}))}; "
          f"median over {a.rounds} rounds of per-process medians ({a.runs} runs after "
          f"{a.warmup} warm-up), ms, min over all runs in brackets; kiln/peer < 1 = kiln "
          f"faster. Load average {load0[0]:.2f} at start, {load1[0]:.2f} at end.\n")
    peers = [s for s in systems if s not in KILN_SYSTEMS]
    # (numerator, denominator) of each ratio column
    ratios = [("kiln", s) for s in peers if s not in INT8 and "kiln" in systems]
    ratios += [("kiln-tuned", s) for s in ("kiln", "tvm-tuned")
               if "kiln-tuned" in systems and s in systems]
    ratios += [("kiln-int8", s) for s in peers if s in INT8 and "kiln-int8" in systems]
    head = ["seq", "threads"] + [label[s] for s in systems]

    def column(s):  # a denominator's name in a ratio column's header
        return label[s] if s in INT8 else {"ort": "ORT", "tvm-tuned": "TVM tuned"}.get(
            s, label[s].split()[0])

    head += [f"{label[n]}/{column(d)}" for n, d in ratios]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * 2 + "---:|" * (len(head) - 2))
    reasons = {}
    summary = {}

    def cell(s, seq, t):
        v = failed.get(s) or results.get((s, seq, t))
        if isinstance(v, str):
            n = reasons.setdefault(v, len(reasons) + 1)
            return f"failed [{n}]", None
        if not v:
            return "-", None
        med = statistics.median(x["median_ms"] for x in v)
        mn = min(x["min_ms"] for x in v)
        busy = [x["cpu_busy_before"] for x in v if x.get("cpu_busy_before") is not None]
        summary[(s, seq, t)] = {"median_ms": med, "min_ms": mn,
                                "round_medians_ms": [x["median_ms"] for x in v],
                                "runs_per_round": [x.get("runs") for x in v],
                                "cpu_busy_before": busy}
        loaded = "†" if any(b >= 0.15 for b in busy) else ""
        return f"{med:.2f} ({mn:.2f}){loaded}", med

    for seq in seqs:
        for t in threads:
            cells = [cell(s, seq, t) for s in systems]
            med = dict(zip(systems, (c[1] for c in cells)))
            row = [str(seq), str(t)] + [c[0] for c in cells]
            row += [ratio(med[n], med[d]) for n, d in ratios]
            print("| " + " | ".join(row) + " |")
    for reason, n in reasons.items():
        print(f"\n[{n}] {reason}")
    if a.max_wait > 0:
        print("\n† timed while other processes kept >= 15% of the CPUs busy (after waiting "
              f"{a.max_wait:.0f} s)")

    if "kiln" in systems:
        print(f"\nkiln throughput (model FLOPs: 2*M*K*N per GEMM + 4*B*S^2*H attention per "
              f"layer; median latency):")
        if peak:
            print(f"FMA peak, 1 thread (kiln_fma_peak, best of {len(peaks)} runs): " + ", ".join(
                f"{k} {v:.1f} GFLOP/s" for k, v in peak.items() if k not in ("best", "isa")))
        print("\n| seq | threads | GFLOP | kiln ms | GFLOP/s | % of peak x threads |")
        print("|---:|---:|---:|---:|---:|---:|")
        for seq in seqs:
            f = model_flops(cfg, a.batch, seq)
            for t in threads:
                r = summary.get(("kiln", seq, t))
                if not r:
                    continue
                gf = f / r["median_ms"] * 1e-6
                pct = f"{100 * gf / (peak['best'] * t):.1f}% of {t} x {peak['best']:.1f}" \
                    if peak else "-"
                r["gflops"] = gf
                print(f"| {seq} | {t} | {f * 1e-9:.3g} | {r['median_ms']:.2f} | {gf:.1f} | "
                      f"{pct} |")

    if a.profile and "kiln" in systems and "kiln" not in failed:
        proc = subprocess.run([str(KILN), "bench", str(art), "--batch", str(a.batch), "--seq",
                               str(seqs[0]), "--threads", "1", "--runs", str(a.runs),
                               "--warmup", str(a.warmup), "--profile"],
                              capture_output=True, text=True)
        print(f"\nkiln per-op profile, seq {seqs[0]}, 1 thread:\n{proc.stdout}{proc.stderr}")

    if a.json:
        doc = {"machine": {"cpu": cpu, "cores": os.cpu_count(), "load_start": load0,
                           "load_end": load1},
               "config": a.config, "model": dataclasses.asdict(cfg), "batch": a.batch,
               "rounds": a.rounds, "runs": a.runs, "warmup": a.warmup,
               "flops": {seq: model_flops(cfg, a.batch, seq) for seq in seqs},
               "fma_peak_gflops": peak, "versions": versions,
               "accuracy_max_abs_diff": [{"system": k[0], "seq": k[1], "max_abs_diff": d}
                                         for k, d in diffs.items() if len(k) == 2],
               "int8_cosine_vs_pytorch_fp32": [{"system": k[0], "seq": k[1], "cosine": d}
                                               for k, d in diffs.items() if len(k) == 3],
               "failed": failed,
               "results": [{"system": s, "seq": q, "threads": t,
                            **(summary.get((s, q, t)) or {"error": failed.get(s) or results.get(
                                (s, q, t))})}
                           for s in systems for q in seqs for t in threads]}
        Path(a.json).write_text(json.dumps(doc, indent=1))
        print(f"\nwrote {a.json}")


if __name__ == "__main__":
    main()
