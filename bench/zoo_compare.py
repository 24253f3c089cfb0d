"""kiln vs ONNX Runtime on transformers' own encoders at their released sizes, side by side.

Each architecture is built by `transformers` with the dimensions of its base checkpoint (random
weights, seed 0, no hub), exported by torch's default (dynamo) exporter as a user would, then:
kiln FP32 and `--quantize int8` artifacts of that ONNX file, ORT on the same file (all graph
optimisations, which include its transformer fusions) and on ORT's `quantize_dynamic` of it
(default options). Outputs are checked (kiln FP32 vs ORT FP32 max |diff|; INT8 cosine vs ORT
FP32), then the systems are timed interleaved: each round runs every (threads, system) once in
its own process, the order rotated per round. The table gives medians over rounds of each run's
median latency and kiln/ORT ratios. Runs in the project venv (scripts/setup_venv.sh):

  PY=$(scripts/setup_venv.sh | tail -1)
  $PY bench/zoo_compare.py --models bert --seq 128 --threads 1,2 --rounds 5
  $PY bench/zoo_compare.py --models all --rounds 3 --json out/zoo_bench.json
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "tests" / "zoo"))
from harness import KILN, run_model  # noqa: E402
import zoo  # noqa: E402

PEERS = ROOT / "bench" / "peers"


def _bert_like(config_cls, model_cls, inputs, **kw):
    def build():
        return model_cls(config_cls(**kw)), inputs
    return build


def _base_models():
    """name -> () -> (transformers model, graph input names): the released checkpoints' sizes."""
    import transformers as t
    bert_in = ("input_ids", "attention_mask", "token_type_ids")
    ids_mask = ("input_ids", "attention_mask")
    rob = dict(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1)
    return {
        "bert": _bert_like(t.BertConfig, t.BertModel, bert_in),  # bert-base-uncased
        "distilbert": _bert_like(t.DistilBertConfig, t.DistilBertModel, ids_mask),
        "roberta": _bert_like(t.RobertaConfig, t.RobertaModel, ids_mask, **rob),
        "xlm_roberta": _bert_like(t.XLMRobertaConfig, t.XLMRobertaModel, ids_mask,
                                  **dict(rob, vocab_size=250002)),
        "albert": _bert_like(t.AlbertConfig, t.AlbertModel, bert_in, embedding_size=128,
                             hidden_size=768, num_attention_heads=12, intermediate_size=3072),
        "electra": _bert_like(t.ElectraConfig, t.ElectraModel, bert_in, embedding_size=768,
                              hidden_size=768, num_attention_heads=12, intermediate_size=3072,
                              num_hidden_layers=12),
        "mpnet": _bert_like(t.MPNetConfig, t.MPNetModel, ids_mask),  # mpnet-base
        "modernbert": _bert_like(t.ModernBertConfig, t.ModernBertModel, ids_mask),
        # all-MiniLM-L6-v2's encoder, the most used sentence-embedding model
        "minilm": _bert_like(t.BertConfig, t.BertModel, bert_in, hidden_size=384,
                             num_hidden_layers=6, intermediate_size=1536),
    }


def prepare(name, out, max_seq):
    """out/NAME.onnx (dynamo export, dynamic batch and seq) and the inputs; cached."""
    path = out / f"{name}.onnx"
    if path.exists():
        return path
    torch.manual_seed(0)
    model, inputs = _base_models()[name]()
    model.eval()
    case = zoo.ZooModel(name, zoo._Wrapper(model, inputs, ("last_hidden_state",)), inputs,
                        ("last_hidden_state",), model)
    case.module.eval()  # dropout off, as a user exports for inference
    feeds = zoo.example_inputs(case, batch=2, seq=16)
    args = tuple(torch.from_numpy(feeds[k]) for k in inputs)
    t0 = time.perf_counter()
    b = torch.export.Dim("batch", min=1, max=1024)
    s = torch.export.Dim("seq", min=1, max=max_seq)
    with torch.no_grad():
        torch.onnx.export(case.module, args, str(path), dynamo=True, input_names=list(inputs),
                          output_names=["last_hidden_state"],
                          dynamic_shapes={k: {0: b, 1: s} for k in inputs})
    print(f"{name}: exported in {time.perf_counter() - t0:.0f} s", flush=True)
    return path


def quantize_ort(path):
    out = path.with_name(path.stem + "_ort_int8.onnx")
    if not out.exists():
        from onnxruntime.quantization import quantize_dynamic
        quantize_dynamic(str(path), str(out))
    return out


def compile_kiln(path, art, max_seq, *extra):
    stamp = art / "model.so"
    if stamp.exists() and stamp.stat().st_mtime > max(path.stat().st_mtime, KILN.stat().st_mtime):
        return None
    proc = subprocess.run([str(KILN), "compile", str(path), "-o", str(art), "--max-seq",
                           str(max_seq), *extra], capture_output=True, text=True, check=True)
    return next((ln.strip() for ln in proc.stdout.splitlines() if "graph:" in ln), None)


def time_one(system, path, npz, seq, threads, runs, warmup):
    """One process timing `system` on `path` (kiln: artifact dir, ORT: ONNX file); median ms."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), KILN_NUM_THREADS=str(threads),
               PYTHONPATH=str(PEERS))
    if system.startswith("kiln"):
        cmd = [str(KILN), "bench", str(path), "--batch", "1", "--seq", str(seq), "--threads",
               str(threads), "--runs", str(runs), "--warmup", str(warmup), "--json"]
    else:
        cmd = [sys.executable, str(PEERS / "ort_worker.py"), str(path), str(npz), str(threads),
               str(runs), str(warmup)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{system}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return json.loads(lines[-1])["median_ms"]


def cosine(a, b):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="bert", help="comma-separated, or 'all'")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--no-int8", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "out" / "zoo_bench"))
    ap.add_argument("--json", metavar="OUT")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    names = list(_base_models()) if a.models == "all" else a.models.split(",")
    threads = [int(t) for t in a.threads.split(",")]
    systems = ["kiln", "ort"] + ([] if a.no_int8 else ["kiln-int8", "ort-int8"])
    import onnxruntime as ort
    print(f"machine: {os.cpu_count()} cores; ORT {ort.__version__}; torch {torch.__version__}; "
          f"seq {a.seq}, batch 1, {a.rounds} rounds x {a.runs} runs", flush=True)
    results = {}
    for name in names:
        onnx = prepare(name, out, 512)
        art = out / f"{name}_kiln"
        fused = compile_kiln(onnx, art, a.seq)
        if not a.no_int8:
            compile_kiln(onnx, out / f"{name}_kiln_int8", a.seq, "--quantize", "int8")
        files = {"kiln": art, "kiln-int8": out / f"{name}_kiln_int8", "ort": onnx,
                 "ort-int8": quantize_ort(onnx) if not a.no_int8 else None}
        sess = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
        in_names = [i.name for i in sess.get_inputs()]
        case = zoo.ZooModel(name, None, tuple(in_names), ("last_hidden_state",), None)
        feed = zoo.example_inputs(case, batch=1, seq=a.seq, pad=False)
        npz = out / f"{name}_s{a.seq}.npz"
        np.savez(npz, **feed)
        want = sess.run(None, feed)[0]
        check = {}
        for s in systems:
            if s.startswith("kiln"):
                got = run_model(files[s], feed, out / "run")["last_hidden_state"]
            else:
                got = ort.InferenceSession(str(files[s]), providers=["CPUExecutionProvider"]) \
                    .run(None, feed)[0]
            check[s] = (float(np.abs(got - want).max()) if s == "kiln" else cosine(got, want))
        print(f"{name}: {fused or '(reused artifact)'}\n  kiln FP32 max|d| vs ORT "
              f"{check['kiln']:.2e}" + "".join(f"; {s} cosine {check[s]:.5f}"
                                               for s in systems if "int8" in s), flush=True)
        times = {(s, t): [] for s in systems for t in threads}
        order = [(s, t) for t in threads for s in systems]
        for r in range(a.rounds):
            rot = order[r % len(order):] + order[:r % len(order)]
            for s, t in rot:
                times[(s, t)].append(time_one(s, files[s], npz, a.seq, t, a.runs, a.warmup))
        med = {k: statistics.median(v) for k, v in times.items()}
        for t in threads:
            row = f"  {t} thread{'s' if t > 1 else ' '}: kiln {med[('kiln', t)]:7.1f} ms  " \
                  f"ORT {med[('ort', t)]:7.1f} ms  kiln/ORT {med[('kiln', t)] / med[('ort', t)]:.2f}"
            if not a.no_int8:
                row += f" | INT8: kiln {med[('kiln-int8', t)]:7.1f} ms  ORT " \
                       f"{med[('ort-int8', t)]:7.1f} ms  kiln/ORT " \
                       f"{med[('kiln-int8', t)] / med[('ort-int8', t)]:.2f}"
            print(row, flush=True)
        results[name] = {"check": check, "graph": fused,
                         "median_ms": {f"{s}@{t}": v for (s, t), v in med.items()}}
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
