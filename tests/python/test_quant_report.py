"""`kiln quant-report --json` on a small BERT with outlier dimensions made the way trained BERTs
have them: a few hidden channels' LayerNorm gain and bias scaled by 20-100, and the input columns
of the Linear layers reading that LayerNorm divided by the same factor (their outputs unchanged).
Every LayerNorm but the last gets them (the model outputs stay outlier-free, so their cosine shows
what the layers lost). The report must list exactly those channels first for the Dense layers
after those LayerNorms (the packed QKV projection and the FFN up-projection), with finite
per-layer cosines below 1 and a x W error far above that of the same model without outliers
(the control, where nothing is flagged)."""
import json
import math
import subprocess

import pytest
import torch

from kiln_testenv import KILN
from kiln.models.bert import BertConfig, build_model, export_onnx

CFG = BertConfig(vocab_size=500, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=128, max_position_embeddings=64, initializer_range=0.1)
OUTLIERS = {3: 20.0, 17: 50.0, 40: 100.0}  # channel -> factor


def with_outliers(model):
    with torch.no_grad():
        norms = [model.embeddings.LayerNorm]
        readers = []  # Linear layers whose input is the output of the LayerNorm before them
        for layer in model.encoder.layer:
            s = layer.attention.self
            readers.append([s.query, s.key, s.value])
            norms.append(layer.attention.output.LayerNorm)
            readers.append([layer.intermediate.dense])
            norms.append(layer.output.LayerNorm)
        # The last LayerNorm keeps its gain: last_hidden_state (and the pooler) without outliers,
        # so the model outputs' cosine shows what the layers before lost.
        for norm, linears in zip(norms[:-1], readers):
            for c, f in OUTLIERS.items():
                norm.weight[c] *= f
                norm.bias[c] *= f
                for lin in linears:
                    lin.weight[:, c] /= f
    return model


def report(tmp_path, name, model):
    onnx_path = tmp_path / f"{name}.onnx"
    export_onnx(model, onnx_path, opset=14)
    out = tmp_path / f"{name}.json"
    proc = subprocess.run([str(KILN), "quant-report", str(onnx_path), "--seq", "32", "--top", "3",
                           "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout)
    return json.loads(out.read_text())


def after_layer_norm(r):
    return [l for l in r["layers"] if "QKV" in l["node"] or "intermediate" in l["node"]]


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quant_report")
    return (report(tmp, "outliers", with_outliers(build_model(CFG, seed=0))),
            report(tmp, "control", build_model(CFG, seed=0)))


def test_outlier_channels_listed_first(reports):
    r, _ = reports
    layers = after_layer_norm(r)
    assert len(layers) == 2 * CFG.num_hidden_layers, [l["node"] for l in r["layers"]]
    for l in layers:
        top = [c["channel"] for c in l["top_channels"]]
        assert sorted(top) == sorted(OUTLIERS), (l["node"], l["top_channels"])
        assert l["outlier_channels"] == len(OUTLIERS), l["node"]
        assert all(c["ratio_to_median"] > 8 for c in l["top_channels"]), l["node"]


def test_cosines_finite_and_hurt_by_outliers(reports):
    r, control = reports
    assert r["outputs"] == ["last_hidden_state", "pooler_output"]
    for l in r["layers"]:
        assert len(l["cosine"]) == 2 and all(math.isfinite(c) for c in l["cosine"]), l
        assert l["min_cosine"] < 1.0, l["node"]
    by_node = {l["node"]: l for l in control["layers"]}
    for l in after_layer_norm(r):
        c = by_node[l["node"]]
        # The small channels lose their bits next to a 20-100x channel: x W is off by 10-60 %
        # (the control: ~1 %) while the relative error of x itself stays small (the outlier
        # channels dominate its norm).
        assert l["gemm_error"] > 0.1 and l["gemm_error"] > 10 * c["gemm_error"], (
            l["node"], l["gemm_error"], c["gemm_error"])
        assert l["activation_error"] < 0.02, l["node"]
        # The model outputs barely show it: the outlier channels ride the residual stream into
        # every later LayerNorm, whose statistics they dominate (measured: 1 - cos ~1e-7..1e-5).
        assert 0 < 1 - l["min_cosine"] < 1e-3, (l["node"], l["min_cosine"])


def test_control_flags_nothing(reports):
    _, control = reports
    for l in control["layers"]:
        assert l["outlier_channels"] == 0, (l["node"], l["top_channels"])
        assert math.isfinite(l["min_cosine"]) and l["min_cosine"] > 0.999, l["node"]
