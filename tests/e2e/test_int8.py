"""INT8 dynamic quantization end to end (`kiln compile --quantize int8`): small BERTs against the
FP32 artifact on the host and for the Pi 4 / Pi 5 under qemu-aarch64 (Cortex-A72 must run the
non-dotprod INT8 kernel, Cortex-A76 the SDOT one), weight scales per group along K
(--int8-weight-group), model.json metadata and `kiln inspect`, exclude patterns and their
warnings, bad --quantize values, the Python API, `kiln quant-report --compiled`, and BERT-base
(cosine on last_hidden_state, artifact size against FP32)."""
import json
import os
import platform
import re
import subprocess

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import kiln
from harness import KILN, QEMU_CPUS, compile_model, host_cpu_flags, max_abs_diff, run_model
from kiln.compiler import CompileWarning
from kiln.models.bert import CONFIGS, BertConfig, build_model, export_onnx, make_inputs

MIN_COSINE = 0.999
MODELS = {
    "h64a4_pooler": BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2,
                               num_attention_heads=4, intermediate_size=128,
                               max_position_embeddings=64),
    # 60 and 100 are not multiples of 16 or 4: partial column tiles and K padding in the INT8 GEMM.
    "h60a5_nopooler": BertConfig(vocab_size=500, hidden_size=60, num_hidden_layers=2,
                                 num_attention_heads=5, intermediate_size=100,
                                 max_position_embeddings=48, add_pooler=False),
}


def cosine(a, b):
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def compile_proc(*args):
    return subprocess.run([str(KILN), "compile", *map(str, args)], capture_output=True, text=True,
                          timeout=900)


def uneven_rows(module):
    """Every Linear's input channels past the first 8 at 1/50: the rows of each W differ 50x, as
    smoothing leaves trained weights, and scales per group of 8 along K cut every weight's
    rounding error ~3x (per channel the large rows' step rounds the small rows)."""
    with torch.no_grad():
        for lin in module.modules():
            if isinstance(lin, torch.nn.Linear):
                lin.weight[:, 8:] /= 50.0
    return module


class Model:
    def __init__(self, name, tmp, uneven=False):
        self.cfg = MODELS[name]
        self.tmp = tmp
        self.onnx = tmp / f"{name}.onnx"
        m = build_model(self.cfg, seed=0, init="random")
        self.names, self.outputs = export_onnx(uneven_rows(m) if uneven else m, self.onnx,
                                               opset=14)
        self.arts = {}

    def artifact(self, target, quantized):
        key = (target, quantized)
        if key not in self.arts:
            extra = ["--quantize", "int8"] if quantized else []
            self.arts[key] = compile_model(self.onnx, self.tmp / f"art_{target}_{quantized}",
                                           target, *extra)
        return self.arts[key]

    def inputs(self, batch, seq):
        return {k: v for k, v in make_inputs(self.cfg, batch, seq).items() if k in self.names}


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request, tmp_path_factory):
    return Model(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module", params=sorted(MODELS))
def uneven(request, tmp_path_factory):
    return Model(request.param, tmp_path_factory.mktemp(request.param + "_uneven"), uneven=True)


@pytest.mark.parametrize("threads", [1, 2])
def test_host_int8_close_to_fp32(model, threads):
    for batch, seq in [(1, 1), (2, 13), (1, model.cfg.max_position_embeddings)]:
        inputs = model.inputs(batch, seq)
        want = run_model(model.artifact("native", False), inputs, model.tmp / "run32",
                         threads=threads)
        got = run_model(model.artifact("native", True), inputs, model.tmp / "run8",
                        threads=threads)
        assert sorted(got) == sorted(model.outputs)
        for name in model.outputs:
            c = cosine(got[name], want[name])
            print(f"host threads={threads} batch={batch} seq={seq} {name}: cosine {c:.6f}, "
                  f"max|diff| {max_abs_diff(got[name], want[name]):.2e}")
            assert c >= MIN_COSINE, f"{name}: cosine {c}"


def test_artifact_metadata_params_and_inspect(model):
    art = model.artifact("native", True)
    meta = json.loads((art / "model.json").read_text())
    q = meta["quantization"]
    assert q["mode"] == "int8-dynamic"
    assert q["weights"] == "per-channel symmetric int8"
    assert "per-row" in q["activations"] and q["excluded"] == []
    dense = [n for n in meta["nodes"] if n["op"] == "Dense"]
    assert dense and all(n["attrs"].get("quantize") == "int8" for n in dense)
    # The embedding tables: inside the fused EmbeddingLayerNorm (word, token type, position); the
    # last two stay FP32: every input shares their rows (compiler/quantize/quantize.h).
    embed = [n for n in meta["nodes"] if n["op"] == "EmbeddingLayerNorm"]
    assert len(embed) == 1 and embed[0]["attrs"].get("quantize") == "int8", embed
    assert embed[0]["attrs"]["quantize_tables"] == [1, 0, 0], embed
    layers = {entry["name"]: entry for entry in q["layers"]}
    assert len(layers) == len(dense) + 3, q["layers"]
    tables = [entry for name, entry in layers.items() if name.startswith(embed[0]["name"] + " (")]
    assert [t["precision"] for t in tables] == ["int8", "fp32", "fp32"], tables
    assert all(t.get("note") == "rows shared by every input" for t in tables[1:]), tables
    assert all(layers[n["name"]]["precision"] == "int8" for n in dense), q["layers"]
    assert "min_cosine" not in q
    assert not [n for n in meta["nodes"] if n["op"] == "LayerNormalization"]
    blobs = [t for t in meta["tensors"] if t["name"].endswith((".s8packed", ".s8rows"))]
    assert blobs and all(t["dtype"] == "uint8" and t["storage"] == "param" for t in blobs)
    assert not [t for t in meta["tensors"] if t["name"].endswith(".packed16")]
    out = subprocess.run([str(KILN), "inspect", str(art)], capture_output=True, text=True,
                         check=True).stdout
    assert "quantization int8-dynamic: weights per-channel symmetric int8" in out, out
    assert "\n  layer precision:" in out, out
    assert f"\n    int8  {dense[0]['name']}" in out, out
    assert f"\n    fp32  {tables[2]['name']} (rows shared by every input)" in out, out
    assert re.search(r"kernels .*gemm s8: \w+", out), out
    fp32 = json.loads((model.artifact("native", False) / "model.json").read_text())
    assert "quantization" not in fp32


@pytest.mark.parametrize("threads", [1, 2])
def test_host_int8_weight_groups(uneven, threads):
    """--int8-weight-group 8 on weights whose rows differ 50x: every Dense (K 60, 64, 100 or 128,
    so also partial last groups) gets weight scales per group of 8 along K (model.json node attr
    and quantization layer), and the artifact stays within MIN_COSINE of FP32."""
    art = uneven.tmp / "art_native_g8"
    if not art.exists():
        compile_model(uneven.onnx, art, "native", "--quantize", "int8", "--int8-weight-group", "8")
    meta = json.loads((art / "model.json").read_text())
    dense = [n for n in meta["nodes"] if n["op"] == "Dense"]
    layers = {entry["name"]: entry for entry in meta["quantization"]["layers"]}
    assert dense and all(n["attrs"].get("weight_group") == 8 for n in dense), dense
    assert all(layers[n["name"]].get("weight_group") == 8 for n in dense), layers
    assert "group of 8 input channels" in meta["quantization"]["weights"], meta["quantization"]
    for batch, seq in [(1, 1), (2, 13), (1, uneven.cfg.max_position_embeddings)]:
        inputs = uneven.inputs(batch, seq)
        want = run_model(uneven.artifact("native", False), inputs, uneven.tmp / "run32",
                         threads=threads)
        got = run_model(art, inputs, uneven.tmp / "run8g", threads=threads)
        for name in uneven.outputs:
            c = cosine(got[name], want[name])
            print(f"groups of 8, threads={threads} batch={batch} seq={seq} {name}: cosine {c:.6f}")
            assert c >= MIN_COSINE, f"{name}: cosine {c}"


@pytest.mark.parametrize("target", ["rpi4", "rpi5"])
def test_aarch64_int8_weight_groups_under_qemu(uneven, target):
    """Weight groups on the NEON (Pi 4) and SDOT (Pi 5) kernels: what the host's grouped artifact
    gives (up to float summation order), and close to FP32."""
    host = uneven.tmp / "art_native_g8"
    if not host.exists():
        compile_model(uneven.onnx, host, "native", "--quantize", "int8", "--int8-weight-group", "8")
    art = compile_model(uneven.onnx, uneven.tmp / f"art_{target}_g8", target, "--quantize", "int8",
                        "--int8-weight-group", "8")
    meta = json.loads((art / "model.json").read_text())
    assert all(n["attrs"].get("weight_group") == 8 for n in meta["nodes"] if n["op"] == "Dense")
    inputs = uneven.inputs(2, 13)
    want = run_model(uneven.artifact("native", False), inputs, uneven.tmp / "run32")
    grouped = run_model(host, inputs, uneven.tmp / "run8g")
    got = run_model(art, inputs, uneven.tmp / f"run8g_{target}", QEMU_CPUS[target], threads=2)
    for name in uneven.outputs:
        assert cosine(got[name], grouped[name]) >= 0.99999, name
        assert cosine(got[name], want[name]) >= MIN_COSINE, name


@pytest.mark.parametrize("target", ["rpi4", "rpi5"])
def test_aarch64_int8_under_qemu(model, target):
    kernel = {"rpi4": "gemm s8: neon 6x16 (gemm_s8_6x16c4_neon)",
              "rpi5": "gemm s8: neondot 6x16 (gemm_s8_6x16c4_neondot)"}[target]
    art = model.artifact(target, True)
    for batch, seq in [(1, 1), (2, 13)]:
        inputs = model.inputs(batch, seq)
        want = run_model(model.artifact("native", False), inputs, model.tmp / "run32")
        log = []
        got = run_model(art, inputs, model.tmp / "runq", QEMU_CPUS[target], threads=2, log=log)
        lines = [ln for ln in log[0].splitlines() if ln.startswith("kernels: ")]
        assert len(lines) == 1 and lines[0].endswith(kernel), log[0]
        for name in model.outputs:
            c = cosine(got[name], want[name])
            print(f"{target} ({QEMU_CPUS[target]}) batch={batch} seq={seq} {name}: cosine {c:.6f}")
            assert c >= MIN_COSINE, f"{name}: cosine {c}"


def test_pi4_int8_artifact_picks_sdot_on_pi5_class_cpu(model):
    # The SDOT kernel is built into every aarch64 model.so and chosen at run time from HWCAP.
    inputs = model.inputs(2, 13)
    want = run_model(model.artifact("native", False), inputs, model.tmp / "run32")
    log = []
    got = run_model(model.artifact("rpi4", True), inputs, model.tmp / "runq", "cortex-a76",
                    threads=2, log=log)
    assert "gemm s8: neondot 6x16" in log[0], log[0]
    for name in model.outputs:
        assert cosine(got[name], want[name]) >= MIN_COSINE, name


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64 host variants")
@pytest.mark.parametrize("variant,tile,needs", [
    ("avx512vnni", "14x32", {"avx512f", "avx512_vnni"}), ("avxvnni", "6x16", {"avx_vnni"}),
    ("avx2", "6x16", {"avx2", "fma"}), ("ref", "4x16", set())])
def test_host_int8_variants(model, variant, tile, needs):
    missing = needs - host_cpu_flags()
    if missing:
        pytest.skip(f"INT8 variant {variant}: this CPU lacks {', '.join(sorted(missing))}")
    inputs = model.inputs(2, 13)
    want = run_model(model.artifact("native", False), inputs, model.tmp / "run32")
    log = []
    got = run_model(model.artifact("native", True), inputs, model.tmp / "run8", threads=2,
                    env={"KILN_GEMM_S8_VARIANT": variant}, log=log)
    assert f"gemm s8: {variant} {tile}" in log[0], log[0]
    for name in model.outputs:
        c = cosine(got[name], want[name])
        print(f"KILN_GEMM_S8_VARIANT={variant} {name}: cosine {c:.6f}")
        assert c >= MIN_COSINE, f"{name}: cosine {c}"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("int8_small")
    m = Model("h64a4_pooler", tmp)
    return m


def test_exclude_pattern_keeps_layers_fp32(small):
    art = small.tmp / "art_excl"
    proc = compile_proc(small.onnx, "-o", art, "--quantize", "int8",
                        "--quantize-exclude", "/pooler/*",
                        "--quantize-exclude", "embeddings.word_embeddings.weight")
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr, proc.stderr
    meta = json.loads((art / "model.json").read_text())
    excluded = meta["quantization"]["excluded"]
    assert any(e.startswith("/pooler/") for e in excluded), excluded
    assert any("word_embeddings" in e for e in excluded), excluded
    for n in meta["nodes"]:
        if n["name"] in excluded:
            assert "quantize" not in n["attrs"], n
    inputs = small.inputs(2, 13)
    want = run_model(small.artifact("native", False), inputs, small.tmp / "r32")
    got = run_model(art, inputs, small.tmp / "rx")
    assert cosine(got["pooler_output"], want["pooler_output"]) >= MIN_COSINE


def test_exclude_pattern_matching_nothing_warns(small):
    proc = compile_proc(small.onnx, "-o", small.tmp / "art_nomatch", "--quantize", "int8",
                        "--quantize-exclude", "*decoder*")
    assert proc.returncode == 0, proc.stderr
    assert "kiln: warning: --quantize-exclude pattern '*decoder*' matches no" in proc.stderr


def test_unknown_quantize_value_is_an_error(small):
    proc = compile_proc(small.onnx, "-o", small.tmp / "art_bad", "--quantize", "int4")
    assert proc.returncode != 0
    assert "unknown --quantize value 'int4'" in proc.stderr, proc.stderr


def test_model_without_quantizable_layer_warns_and_stays_fp32(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])
    graph = helper.make_graph([helper.make_node("Softmax", ["x"], ["y"], axis=-1)], "g", [x], [y])
    path = tmp_path / "softmax.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), path)
    proc = compile_proc(path, "-o", tmp_path / "art", "--quantize", "int8")
    assert proc.returncode == 0, proc.stderr
    assert "kiln: warning: --quantize int8: the model has no quantizable layer" in proc.stderr
    assert "quantization" not in json.loads((tmp_path / "art" / "model.json").read_text())


def test_python_api(small, tmp_path):
    with pytest.warns(CompileWarning, match="'nothing' matches no"):
        art = kiln.compile(str(small.onnx), output_dir=tmp_path / "py", quantize="int8",
                           quantize_exclude=["nothing"])
    assert json.loads((art / "model.json").read_text())["quantization"]["mode"] == "int8-dynamic"
    with pytest.raises(kiln.compiler.CompileError, match="'int4'"):
        kiln.compile(str(small.onnx), output_dir=tmp_path / "py4", quantize="int4")


def test_quant_report(small):
    proc = subprocess.run([str(KILN), "quant-report", "--compiled", str(small.onnx), "--seq", "16",
                           "--quantize-exclude", "/pooler/*"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout)
    out = proc.stdout
    assert "input_ids" in out and "token ids in [0, 1000)" in out
    rows = re.findall(r"^\s+\d+\s+(\S+)\s+(yes|no)\s+\[[\d,]+\]\s+([\d.]+)\s+(\S+)$", out, re.M)
    # 2 layers x (QKV, attention output, FFN up, FFN down) + pooler
    assert len(rows) == 9, out
    assert [r[1] for r in rows].count("no") == 1 and rows[-1][0].startswith("/pooler/")
    assert all(float(r[2]) >= MIN_COSINE for r in rows), out
    m = re.search(r"last_hidden_state\s+cosine ([\d.]+)", out)
    assert m and float(m.group(1)) >= MIN_COSINE, out
    assert re.search(r"pooler_output\s+cosine", out)


@pytest.mark.skipif(os.environ.get("KILN_SKIP_BERT_BASE") == "1", reason="KILN_SKIP_BERT_BASE=1")
def test_bert_base_int8(tmp_path):
    cfg = CONFIGS["base"]
    onnx_path = tmp_path / "base.onnx"
    names, outputs = export_onnx(build_model(cfg, seed=0), onnx_path, opset=14)
    fp32 = compile_model(onnx_path, tmp_path / "fp32", "native", "--max-seq", "128")
    int8 = compile_model(onnx_path, tmp_path / "int8", "native", "--max-seq", "128",
                         "--quantize", "int8")
    inputs = make_inputs(cfg, 1, 128)
    want = run_model(fp32, inputs, tmp_path / "r32")
    got = run_model(int8, inputs, tmp_path / "r8")
    c = cosine(got["last_hidden_state"], want["last_hidden_state"])
    cp = cosine(got["pooler_output"], want["pooler_output"])
    size = {a: sum((a / f).stat().st_size for f in ("model.params", "model.so"))
            for a in (fp32, int8)}
    ratio = size[int8] / size[fp32]
    print(f"BERT-base INT8 vs FP32 (seq 128): last_hidden_state cosine {c:.6f}, "
          f"pooler_output cosine {cp:.6f}; size (model.params + model.so) "
          f"{size[int8] / 1e6:.1f} MB vs {size[fp32] / 1e6:.1f} MB = {100 * ratio:.1f}%")
    assert c >= 0.9995
    # a sanitized model.so (scripts/test.sh --sanitize) is several times its real size
    if "-fsanitize" not in os.environ.get("KILN_EXTRA_CXXFLAGS", ""):
        assert ratio <= 0.26


@pytest.fixture(scope="module")
def smoothed(tmp_path_factory):
    """h64a4 with one outlier channel (x60) out of the embedding LayerNorm, layer 0's Q / K / V
    reading it at 1/60: `--quantize int8` smooths at least that QKV projection."""
    tmp = tmp_path_factory.mktemp("smoothed")
    cfg = MODELS["h64a4_pooler"]
    m = build_model(cfg, seed=0, init="random")
    with torch.no_grad():
        m.embeddings.LayerNorm.weight[7] *= 60.0
        m.embeddings.LayerNorm.bias[7] = 60.0
        s = m.encoder.layer[0].attention.self
        for lin in (s.query, s.key, s.value):
            lin.weight[:, 7] /= 60.0
    path = tmp / "smoothed.onnx"
    names, outputs = export_onnx(m, path, opset=14)
    arts = {}
    for target, quantized in [("native", False), ("native", True), ("rpi4", True), ("rpi5", True)]:
        out = tmp / f"{target}_{quantized}"
        proc = compile_proc(path, "-o", out, "--target", target,
                            *(["--quantize", "int8"] if quantized else []))
        assert proc.returncode == 0, proc.stderr
        if quantized:
            n = re.search(r"smoothing: (\d+) of", proc.stdout)
            assert n and int(n.group(1)) >= 1, proc.stdout
        arts[target, quantized] = out
    inputs = {k: v for k, v in make_inputs(cfg, 2, 13).items() if k in names}
    return tmp, arts, inputs, outputs


@pytest.mark.parametrize("target", ["rpi4", "rpi5"])
def test_smoothed_int8_under_qemu(smoothed, target):
    """The smoothed quantizer of the aarch64 kernels gives what the host's does (same bytes up to
    float summation order), and stays close to FP32."""
    tmp, arts, inputs, outputs = smoothed
    want = run_model(arts["native", False], inputs, tmp / "run32")
    host = run_model(arts["native", True], inputs, tmp / "run8")
    got = run_model(arts[target, True], inputs, tmp / f"run_{target}", QEMU_CPUS[target],
                    threads=2)
    for name in outputs:
        assert cosine(got[name], host[name]) >= 0.99999, name
        assert cosine(got[name], want[name]) >= MIN_COSINE, name


def mean_vector_cosine(got, want, outputs):
    """--min-cosine's measure: per row of each output's last axis, the mean cosine; the worst
    output counts."""
    means = []
    for name in outputs:
        a = got[name].astype(np.float64).reshape(-1, got[name].shape[-1])
        b = want[name].astype(np.float64).reshape(a.shape)
        means.append(float(((a * b).sum(1) / np.linalg.norm(a, axis=1)
                            / np.linalg.norm(b, axis=1)).mean()))
    return min(means)


def test_min_cosine_keeps_fewest_layers_fp32_and_the_artifact_reaches_it(small):
    """--min-cosine on the user's calibration inputs: the compiled artifact (not only the emulation
    it was chosen on) reaches the target there, with some but not all layers in FP32, each listed
    in model.json and by inspect; the mixed artifact runs the same under qemu (Pi 5)."""
    inputs = small.inputs(2, 24)
    calib = small.tmp / "calib.npz"
    np.savez(calib, **inputs)
    probe = compile_proc(small.onnx, "-o", small.tmp / "art_probe", "--quantize", "int8",
                         "--calibrate", calib, "--min-cosine", "0.5")
    assert probe.returncode == 0, probe.stderr
    everywhere = json.loads((small.tmp / "art_probe" / "model.json").read_text())[
        "quantization"]["min_cosine"]["int8_everywhere"]
    target = 1 - (1 - everywhere) / 4
    art = small.tmp / "art_mixed"
    proc = compile_proc(small.onnx, "-o", art, "--quantize", "int8", "--calibrate", calib,
                        "--min-cosine", repr(target))
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"mixed precision: mean cosine ([\d.]+) .* (\d+) of (\d+) layers kept in FP32",
                  proc.stdout)
    assert m, proc.stdout
    emulated, kept, total = float(m.group(1)), int(m.group(2)), int(m.group(3))
    assert emulated >= target and 1 <= kept < total, proc.stdout
    q = json.loads((art / "model.json").read_text())["quantization"]
    chosen = [entry["name"] for entry in q["layers"] if entry.get("note") == "--min-cosine"]
    assert len(chosen) == kept and q["min_cosine"]["target"] == pytest.approx(target), q
    out = subprocess.run([str(KILN), "inspect", str(art)], capture_output=True, text=True,
                         check=True).stdout
    fp32_lines = [ln for ln in out.splitlines() if ln.startswith("    fp32  ")]
    for name in chosen:
        assert any(ln.startswith(f"    fp32  {name}") and ln.endswith(" (--min-cosine)")
                   for ln in fp32_lines), out

    want = run_model(small.artifact("native", False), inputs, small.tmp / "mc32")
    got = run_model(art, inputs, small.tmp / "mc8")
    # INT8 everywhere, smoothed on the same calibration inputs as the emulation that measured it
    everywhere_art = compile_model(small.onnx, small.tmp / "art_int8_calib", "native", "--quantize",
                                   "int8", "--calibrate", calib)
    plain = run_model(everywhere_art, inputs, small.tmp / "mc8all")
    real, real_plain = (mean_vector_cosine(x, want, small.outputs) for x in (got, plain))
    print(f"--min-cosine {target:.7f}: emulated {emulated:.7f}, artifact {real:.7f} "
          f"(INT8 everywhere: emulated {everywhere:.7f}, artifact {real_plain:.7f}); "
          f"{kept} of {total} layers FP32")
    assert real >= target - 0.1 * (1 - target), (real, target)
    assert abs(real_plain - everywhere) <= 0.1 * (1 - everywhere), (real_plain, everywhere)
    pi5 = compile_model(small.onnx, small.tmp / "art_mixed_rpi5", "rpi5", "--quantize", "int8",
                        "--calibrate", calib, "--min-cosine", repr(target))
    got5 = run_model(pi5, inputs, small.tmp / "mc_rpi5", QEMU_CPUS["rpi5"], threads=2)
    for name in small.outputs:
        assert cosine(got5[name], got[name]) >= 0.99999, name


def test_emulation_follows_weight_groups(uneven):
    """The host emulation --min-cosine measures on uses the compile's weight groups: per channel
    and with groups of 8 along K (every Dense, as model.json says), its INT8-everywhere cosine is
    the artifact's."""
    inputs = uneven.inputs(2, 24)
    calib = uneven.tmp / "calib_groups.npz"
    np.savez(calib, **inputs)
    want = run_model(uneven.artifact("native", False), inputs, uneven.tmp / "eg32")
    for group in (0, 8):
        art = uneven.tmp / f"art_emulated_g{group}"
        proc = compile_proc(uneven.onnx, "-o", art, "--quantize", "int8", "--calibrate", calib,
                            "--min-cosine", "0.5", "--int8-weight-group", group)
        assert proc.returncode == 0, proc.stderr
        meta = json.loads((art / "model.json").read_text())
        assert all(n["attrs"].get("weight_group", 0) == group
                   for n in meta["nodes"] if n["op"] == "Dense"), meta["nodes"]
        emulated = meta["quantization"]["min_cosine"]["int8_everywhere"]
        real = mean_vector_cosine(run_model(art, inputs, uneven.tmp / f"eg8_{group}"), want,
                                  uneven.outputs)
        print(f"--int8-weight-group {group}: emulated {emulated:.9f}, artifact {real:.9f}")
        # Measured equal to 1e-9 (h64: the two schemes differ by 1e-6).
        assert abs(real - emulated) <= 0.01 * (1 - emulated), (group, real, emulated)


def test_min_cosine_errors(small):
    for flags, message in [(["--min-cosine", "0.999"], "--min-cosine needs --quantize int8"),
                           (["--quantize", "int8", "--min-cosine", "1.5"], "--min-cosine"),
                           (["--quantize", "int8", "--min-cosine", "x"], "--min-cosine")]:
        proc = compile_proc(small.onnx, "-o", small.tmp / "art_mc_bad", *flags)
        assert proc.returncode != 0 and message in proc.stderr, (flags, proc.stderr)
    with pytest.raises(kiln.compiler.CompileError, match="min_cosine need"):
        kiln.compile(str(small.onnx), output_dir=small.tmp / "py_mc", min_cosine=0.999)
