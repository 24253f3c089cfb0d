"""A full BERT-base (12 layers, hidden 768, vocab 30522, HF initialisation) exported from PyTorch
compiles, runs and matches PyTorch on last_hidden_state and pooler_output."""
import time

from harness import compile_model, max_abs_diff, run_model
from kiln.models.bert import CONFIGS, build_model, export_onnx, make_inputs, run_torch


def test_bert_base_matches_pytorch(tmp_path):
    cfg = CONFIGS["base"]
    model = build_model(cfg, seed=0)
    names, outputs = export_onnx(model, tmp_path / "base.onnx", opset=14)
    t0 = time.perf_counter()
    art = compile_model(tmp_path / "base.onnx", tmp_path / "art")
    print(f"BERT-base compile: {time.perf_counter() - t0:.1f} s")
    inputs = make_inputs(cfg, 2, 128)  # row 1 padded after 96 tokens
    want = run_torch(model, inputs, names)
    got = run_model(art, inputs, tmp_path)
    for name, w in zip(outputs, want):
        d = max_abs_diff(got[name], w)
        print(f"BERT-base {name}: max |kiln - PyTorch| = {d:.2e}")
        assert d <= 1e-4, name
