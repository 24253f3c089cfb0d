"""End to end against PyTorch: small BERT-style encoders that the test builds and exports itself,
compiled by kiln for the host and for the Pi 4 / Pi 5 targets (run under qemu-aarch64).
Awkward on purpose: hidden sizes that are not multiples of 16, odd head counts, no pooler,
token types from the model's buffer, padded masks, opsets 13, 14 and 17."""
import json
import subprocess

import pytest

from harness import KILN, QEMU_CPUS, compile_model, max_abs_diff, run_model
from kiln.models.bert import BertConfig, build_model, export_onnx, make_inputs, run_torch

TOL = 1e-4

MODELS = {
    # name: (config, opset, with token_type_ids input)
    "h64a4_op14_pooler": (BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=128,
                                     max_position_embeddings=64), 14, True),
    "h60a5_op17_nopooler": (BertConfig(vocab_size=500, hidden_size=60, num_hidden_layers=2,
                                       num_attention_heads=5, intermediate_size=100,
                                       max_position_embeddings=48, add_pooler=False,
                                       mask_value="-10000"), 17, False),
    "h36a3_op13_pooler": (BertConfig(vocab_size=300, hidden_size=36, num_hidden_layers=1,
                                     num_attention_heads=3, intermediate_size=72,
                                     max_position_embeddings=40), 13, True),
}


class Model:
    def __init__(self, name, tmp):
        cfg, opset, with_tt = MODELS[name]
        self.cfg = cfg
        self.torch_model = build_model(cfg, seed=0, init="random")
        self.onnx = tmp / f"{name}.onnx"
        self.names, self.outputs = export_onnx(self.torch_model, self.onnx, opset=opset,
                                               with_token_types=with_tt)
        self.tmp = tmp
        self.artifacts = {}

    def artifact(self, target):
        if target not in self.artifacts:
            self.artifacts[target] = compile_model(self.onnx, self.tmp / f"art_{target}", target)
        return self.artifacts[target]

    def check(self, target, batch, seq, qemu_cpu=None, threads=None):
        inputs = {k: v for k, v in make_inputs(self.cfg, batch, seq).items() if k in self.names}
        expected = run_torch(self.torch_model, inputs, self.names)
        got = run_model(self.artifact(target), inputs, self.tmp / "run", qemu_cpu, threads)
        assert sorted(got) == sorted(self.outputs)
        for name, want in zip(self.outputs, expected):
            assert got[name].shape == want.shape, name
            d = max_abs_diff(got[name], want)
            print(f"{target} {qemu_cpu or 'host'} batch={batch} seq={seq} {name}: max|diff| {d:.2e}")
            assert d <= TOL, f"{name}: max abs diff {d:.3e} > {TOL}"


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request, tmp_path_factory):
    return Model(request.param, tmp_path_factory.mktemp(request.param))


def shapes(cfg):
    max_seq = cfg.max_position_embeddings
    return [(1, 1), (1, 7), (3, 7), (1, max_seq), (2, max_seq)]


@pytest.mark.parametrize("threads", [1, 2])
def test_host_matches_pytorch(model, threads):
    for batch, seq in shapes(model.cfg):
        model.check("native", batch, seq, threads=threads)


@pytest.mark.parametrize("target", ["rpi4", "rpi5"])
def test_aarch64_under_qemu_matches_pytorch(model, target):
    max_seq = model.cfg.max_position_embeddings
    for batch, seq in [(1, 1), (3, 7), (1, max_seq)]:
        model.check(target, batch, seq, qemu_cpu=QEMU_CPUS[target], threads=2)


def test_pi4_artifact_runs_on_pi5_class_cpu(model):
    model.check("rpi4", 2, 5, qemu_cpu="cortex-a76")


def test_layer_norms_are_fused(model):
    """Every LayerNorm is fused: the embedding one into EmbeddingLayerNorm (token types from the
    input or the model's buffer), the post-LN sublayer ones into their Dense (ln_epsilon)."""
    art = model.artifact("native")
    nodes = json.loads((art / "model.json").read_text())["nodes"]
    ops = [n["op"] for n in nodes]
    assert "LayerNormalization" not in ops and "Add" not in ops, ops
    assert ops.count("EmbeddingLayerNorm") == 1, ops
    assert not [n for n in nodes if n["op"] == "Gather" and "embeddings" in n["name"]], ops
    with_ln = [n for n in nodes if n["op"] == "Dense" and "ln_epsilon" in n["attrs"]]
    assert len(with_ln) == 2 * model.cfg.num_hidden_layers, ops
    embed = nodes[ops.index("EmbeddingLayerNorm")]
    assert embed["attrs"]["row_step"] == [0, 0, 1], embed  # positions: the buffer slice
    out = subprocess.run([str(KILN), "inspect", str(art)], capture_output=True, text=True,
                         check=True).stdout
    assert "EmbeddingLayerNorm" in out and '"ln_epsilon"' in out and '"row_first"' in out, out
