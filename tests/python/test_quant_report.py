"""`kiln quant-report --json` on a small BERT with outlier dimensions made the way trained BERTs
have them: a few hidden channels' LayerNorm gain and bias scaled by 20-100, and the input columns
of the Linear layers reading that LayerNorm divided by the same factor (their outputs unchanged).
Every LayerNorm but the last gets them (the model outputs stay outlier-free, so their cosine shows
what the layers lost). The report must list exactly those channels first for the Dense layers
after those LayerNorms (the packed QKV projection and the FFN up-projection), with finite
per-layer cosines below 1 and a x W error far above that of the same model without outliers
(the control, where nothing is flagged). Those are measured with --no-smoothing; by default the
report shows the layers as --quantize int8 compiles them, smoothed (compiler/quantize/smooth.h)."""
import json
import math
import re
import subprocess

import numpy as np
import pytest
import torch

from kiln_testenv import KILN
import kiln
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


def report(tmp_path, name, model, *flags):
    onnx_path = tmp_path / f"{name}.onnx"
    if model is not None:
        export_onnx(model, onnx_path, opset=14)
    out = tmp_path / f"{name}{''.join(flags)}.json"
    proc = subprocess.run([str(KILN), "quant-report", str(onnx_path), "--seq", "32", "--top", "3",
                           "--json", str(out), *flags], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout)
    return json.loads(out.read_text())


def after_layer_norm(r):
    return [l for l in r["layers"] if "QKV" in l["node"] or "intermediate" in l["node"]]


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quant_report")
    return (report(tmp, "outliers", with_outliers(build_model(CFG, seed=0)), "--no-smoothing"),
            report(tmp, "control", build_model(CFG, seed=0), "--no-smoothing"),
            report(tmp, "outliers", None))


def test_outlier_channels_listed_first(reports):
    r, _, _ = reports
    layers = after_layer_norm(r)
    assert len(layers) == 2 * CFG.num_hidden_layers, [l["node"] for l in r["layers"]]
    for l in layers:
        top = [c["channel"] for c in l["top_channels"]]
        assert sorted(top) == sorted(OUTLIERS), (l["node"], l["top_channels"])
        assert l["outlier_channels"] == len(OUTLIERS), l["node"]
        assert all(c["ratio_to_median"] > 8 for c in l["top_channels"]), l["node"]


def test_cosines_finite_and_hurt_by_outliers(reports):
    r, control, _ = reports
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
    _, control, _ = reports
    for l in control["layers"]:
        assert l["outlier_channels"] == 0, (l["node"], l["top_channels"])
        assert math.isfinite(l["min_cosine"]) and l["min_cosine"] > 0.999, l["node"]


def test_default_report_is_smoothed_as_compiled(reports):
    """Without --no-smoothing every INT8 Dense is smoothed, and the x W error of those reading
    outliers drops to the control's order."""
    plain, control, smoothed = reports
    by_node = {l["node"]: l for l in plain["layers"]}
    for l in smoothed["layers"]:
        assert l["smoothed"], l["node"]
        assert l["weight"] == by_node[l["node"]]["weight"], "the model's name, not W * s's"
        assert not by_node[l["node"]]["smoothed"], l["node"]
    for l in after_layer_norm(smoothed):
        assert l["gemm_error"] < by_node[l["node"]]["gemm_error"] / 10, l["node"]
    assert smoothed["all_dense_int8_min_cosine"] > plain["all_dense_int8_min_cosine"]


def compile_int8(tmp_path, onnx_path, *flags):
    return subprocess.run([str(KILN), "compile", str(onnx_path), "-o", str(tmp_path / "int8"),
                           "--quantize", "int8", *flags], capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def outlier_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("smooth") / "outliers.onnx"
    export_onnx(with_outliers(build_model(CFG, seed=0)), path, opset=14)
    return path


def test_compile_smooths_the_layers_reading_outliers(tmp_path, outlier_onnx):
    """kiln compile --quantize int8 calibrates (generated ids, or --calibrate FILE) and smooths
    every INT8 Dense, QKV and FFN-up after the LayerNorms that carry the outliers among them
    (compiler/quantize/smooth.h)."""
    proc = compile_int8(tmp_path, outlier_onnx)
    assert proc.returncode == 0, proc.stderr
    assert "smoothing: " in proc.stdout and "generated inputs" in proc.stdout, proc.stdout
    meta = json.loads((tmp_path / "int8" / "model.json").read_text())
    assert "smoothing" in meta["quantization"]["activations"], meta["quantization"]
    names = [t.get("name", "") for t in meta["tensors"]]
    smoothed = {n["name"] for n in meta["nodes"]
                if any("act_smooth" in names[i] for i in n["inputs"] if isinstance(i, int))}
    after_norms = {f"/encoder/layer.{i}/{p}" for i in range(CFG.num_hidden_layers)
                   for p in ("attention/self/query/QKV/Dense", "intermediate/dense/Dense")}
    assert after_norms <= smoothed, smoothed
    assert len(smoothed) == 9 and "smoothing: 9 of 9 Dense" in proc.stdout, proc.stdout
    ids = np.random.RandomState(0).randint(0, CFG.vocab_size, size=(2, 24)).astype(np.int64)
    np.savez(tmp_path / "calib.npz", input_ids=ids)
    proc = compile_int8(tmp_path, outlier_onnx, "--calibrate", str(tmp_path / "calib.npz"))
    assert proc.returncode == 0, proc.stderr
    assert "smoothing: " in proc.stdout and "calib.npz" in proc.stdout, proc.stdout
    proc = compile_int8(tmp_path, outlier_onnx, "--no-smoothing")
    assert proc.returncode == 0 and "smoothing" not in proc.stdout, proc.stdout


@pytest.fixture(scope="module")
def uneven_onnx(tmp_path_factory):
    """Rows k >= 16 of every W at 1/50 (as smoothing leaves trained weights): weight scales per
    group of 16 along K cut every Dense's rounding error severalfold."""
    model = build_model(CFG, seed=0)
    with torch.no_grad():
        for lin in model.modules():
            if isinstance(lin, torch.nn.Linear):
                lin.weight[:, 16:] /= 50.0
    path = tmp_path_factory.mktemp("uneven") / "uneven.onnx"
    export_onnx(model, path, opset=14)
    return path


def test_compile_int8_weight_group(tmp_path, outlier_onnx, uneven_onnx):
    """--int8-weight-group N: INT8 weight scales per group of N input channels (0: per output
    channel; default 128). On weights whose rows differ 50x every Dense gets model.json's
    "weight_group" and kiln inspect says "K groups of N"; bad values are errors naming the flag
    and value, before compiling; it needs --quantize int8 like --no-smoothing."""
    for bad in ("3", "1024", "-4"):
        proc = compile_int8(tmp_path, outlier_onnx, "--int8-weight-group", bad)
        assert proc.returncode != 0, (bad, proc.stdout)
        assert f"--int8-weight-group {bad}: expected 0" in proc.stderr, proc.stderr
    proc = subprocess.run([str(KILN), "compile", str(outlier_onnx), "-o", str(tmp_path / "f"),
                           "--int8-weight-group", "64"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode != 0, proc.stdout
    assert "--int8-weight-group needs --quantize int8" in proc.stderr, proc.stderr
    with pytest.raises(kiln.CompileError, match="weight_group"):
        kiln.compile(str(outlier_onnx), output_dir=tmp_path / "py_none", weight_group=64)
    with pytest.raises(kiln.CompileError, match="--int8-weight-group 6: expected 0"):
        kiln.compile(str(outlier_onnx), output_dir=tmp_path / "py_bad", quantize="int8",
                     weight_group=6)

    def layers(art):
        meta = json.loads((art / "model.json").read_text())
        dense = {n["name"]: n for n in meta["nodes"] if n["op"] == "Dense"}
        q = meta["quantization"]
        return q, {l["name"]: l for l in q["layers"] if l["name"] in dense}, dense

    proc = compile_int8(tmp_path, uneven_onnx, "--int8-weight-group", "16", "--no-smoothing")
    assert proc.returncode == 0, proc.stderr
    q, by_name, dense = layers(tmp_path / "int8")
    assert "group of 16 input channels" in q["weights"], q["weights"]
    assert len(by_name) == len(dense) == 4 * CFG.num_hidden_layers + 1, by_name  # + the pooler
    assert all(l.get("weight_group") == 16 for l in by_name.values()), by_name
    assert all(n["attrs"].get("weight_group") == 16 for n in dense.values()), dense
    out = subprocess.run([str(KILN), "inspect", str(tmp_path / "int8")], capture_output=True,
                         text=True, check=True).stdout
    lines = [ln for ln in out.splitlines() if ln.startswith("    int8  ")]
    assert sum(ln.endswith("(K groups of 16)") for ln in lines) == len(dense), out

    proc = compile_int8(tmp_path, uneven_onnx, "--int8-weight-group", "0", "--no-smoothing")
    assert proc.returncode == 0, proc.stderr
    q, by_name, dense = layers(tmp_path / "int8")
    assert q["weights"] == "per-channel symmetric int8", q["weights"]
    assert not [l for l in by_name.values() if "weight_group" in l], by_name
    assert not [n for n in dense.values() if "weight_group" in n["attrs"]], dense


def test_quant_report_weight_group(tmp_path, uneven_onnx):
    """quant-report emulates the weight groups the compile would use (--int8-weight-group): with 0
    none, with 16 every Dense, whose weight error drops."""
    def run(*flags):
        out = tmp_path / f"r{''.join(flags)}.json"
        proc = subprocess.run([str(KILN), "quant-report", str(uneven_onnx), "--seq", "16",
                               "--no-cosine", "--json", str(out), *flags],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        return {l["node"]: l for l in json.loads(out.read_text())["layers"]}, proc.stdout

    channel, text = run("--int8-weight-group", "0")
    assert "one scale per output channel" in text, text
    assert all(l["weight_group"] == 0 for l in channel.values()), channel
    grouped, text = run("--int8-weight-group", "16")
    assert "group of 16 input channels" in text, text
    assert grouped.keys() == channel.keys()
    for name, l in grouped.items():
        assert l["weight_group"] == 16, name
        assert l["weight_error"] < channel[name]["weight_error"] / 1.5, name
    proc = subprocess.run([str(KILN), "quant-report", str(uneven_onnx), "--int8-weight-group",
                           "3"], capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "--int8-weight-group 3: expected 0" in proc.stderr, proc.stderr


def test_compile_calibration_errors(tmp_path, outlier_onnx):
    np.savez(tmp_path / "typo.npz", input_idz=np.zeros((1, 8), np.int64))
    proc = compile_int8(tmp_path, outlier_onnx, "--calibrate", str(tmp_path / "typo.npz"))
    assert proc.returncode != 0 and "'input_idz' is not a graph input" in proc.stderr, proc.stderr
    proc = compile_int8(tmp_path, outlier_onnx, "--calibrate", str(tmp_path / "missing.npz"))
    assert proc.returncode != 0 and "missing.npz: cannot open" in proc.stderr, proc.stderr
    proc = subprocess.run([str(KILN), "compile", str(outlier_onnx), "-o", str(tmp_path / "f"),
                           "--calibrate", str(tmp_path / "typo.npz")], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode != 0 and "--calibrate needs --quantize int8" in proc.stderr


def test_compile_when_generated_inputs_cannot_run(tmp_path):
    """Calibration on generated inputs (zeros for an integer input that is not token ids) can fail
    to evaluate, here an integer Mod by such an input: the compile warns and goes on without
    smoothing; the user's own --calibrate inputs failing the same way are an error."""
    import onnx
    from onnx import TensorProto, helper
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], np.eye(4, dtype=np.float32).ravel())
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"]),
             helper.make_node("Mod", ["n", "d"], ["r"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
                     helper.make_tensor_value_info("n", TensorProto.INT64, ["batch"]),
                     helper.make_tensor_value_info("d", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("r", TensorProto.INT64, ["batch"])], [w])
    path = tmp_path / "mod.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    proc = compile_int8(tmp_path, path)
    assert proc.returncode == 0, proc.stderr
    assert "INT8 calibration on generated inputs failed" in proc.stderr, proc.stderr
    assert "integer division by zero" in proc.stderr and "smoothing:" not in proc.stdout
    np.savez(tmp_path / "zeros.npz", d=np.zeros(2, np.int64))
    proc = compile_int8(tmp_path, path, "--calibrate", str(tmp_path / "zeros.npz"))
    assert proc.returncode != 0 and "INT8 calibration: " in proc.stderr, proc.stderr


TEXTS = ["hello from the board", "", "kiln runs bert on a raspberry pi .", "the board , the pi !"]


def test_text_calibration_is_tokenized_like_the_given_ids(tmp_path, outlier_onnx, vocab_file):
    """--calibrate FILE.txt (one text per line, blank lines skipped) with --vocab: the texts are
    tokenized by the runtime's WordPiece, padded to the longest, masked, and calibrate exactly as
    the same ids given in an .npz: the two artifacts' parameters are identical."""
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    vocab = {t: i for i, t in enumerate(vocab_file.read_text().split("\n")[:-1])}
    rows = [[vocab["[CLS]"]] + [vocab[w] for w in t.split()] + [vocab["[SEP]"]]
            for t in TEXTS if t]
    longest = max(map(len, rows))
    ids = np.array([r + [vocab["[PAD]"]] * (longest - len(r)) for r in rows], dtype=np.int64)
    np.savez(tmp_path / "ids.npz", input_ids=ids, attention_mask=(ids != vocab["[PAD]"]).astype(
        np.int64))
    arts = {}
    for name, calib in (("text", texts), ("ids", tmp_path / "ids.npz")):
        out = tmp_path / name
        proc = subprocess.run([str(KILN), "compile", str(outlier_onnx), "-o", str(out),
                               "--quantize", "int8", "--vocab", str(vocab_file), "--calibrate",
                               str(calib)], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        assert f"calibrated on {calib}" in proc.stdout, proc.stdout
        assert not re.search(r"smoothing: 0 of", proc.stdout), proc.stdout
        arts[name] = out
    assert (arts["text"] / "model.params").read_bytes() == (arts["ids"] / "model.params").read_bytes()

    proc = compile_int8(tmp_path, outlier_onnx, "--calibrate", str(texts))
    assert proc.returncode != 0 and "needs the tokenizer" in proc.stderr, proc.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    proc = compile_int8(tmp_path, outlier_onnx, "--vocab", str(vocab_file), "--calibrate",
                        str(empty))
    assert proc.returncode != 0 and "no text" in proc.stderr, proc.stderr


def test_python_calibrate_takes_texts(tmp_path, outlier_onnx, vocab_file):
    art = kiln.compile(str(outlier_onnx), output_dir=tmp_path / "py", quantize="int8",
                       vocab=vocab_file, calibrate=[t for t in TEXTS if t], verbose=False)
    assert "smoothing" in json.loads((art / "model.json").read_text())["quantization"][
        "activations"]
