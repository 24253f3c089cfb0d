"""Soak and concurrency (issue 15, item 3): kiln_soak (tests/soak/soak.cpp, the C ABI alone) on a
small BERT compiled by kiln (hidden 64, 2 layers, max seq 64): one model run KILN_SOAK_RUNS times
(default 10000; scripts/soak.sh runs 100 k) on mixed batch 1-4 x seq 1-64 with RSS within 5 % of
the post-warm-up value and the open descriptors unchanged, then 4 threads with a model each
against a single-threaded reference, bit for bit. Prints the RSS / descriptor curve (pytest -s)."""
import os
import subprocess

from harness import BUILD, compile_model
from kiln.models.bert import BertConfig, build_model, export_onnx

SOAK = BUILD / "tests" / "soak" / "kiln_soak"
CFG = BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=128, max_position_embeddings=64)


def test_soak_and_concurrency(tmp_path):
    runs = int(os.environ.get("KILN_SOAK_RUNS", "10000"))
    onnx = tmp_path / "soak_bert.onnx"
    export_onnx(build_model(CFG, seed=0, init="random"), onnx, opset=14)
    art = compile_model(onnx, tmp_path / "art")
    cmd = [str(SOAK), str(art), "--runs", str(runs), "--max-batch", "4", "--max-seq", "64",
           "--vocab", str(CFG.vocab_size), "--model-threads", "2", "--threads", "4",
           "--per-thread", str(max(500, runs // 20))]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(600, runs // 10))
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "every output bit-identical to the single-threaded reference: yes" in proc.stdout
