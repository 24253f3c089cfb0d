"""kiln.compile (torch.nn.Module -> artifact) and kiln.runtime (the TVM-style GraphModule
binding) against PyTorch, and the binding's input checks and error messages."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import kiln
import kiln.runtime
from kiln_testenv import INPUT_NAMES, ROOT, RUNTIME_LIB, TINY, clean_env, torch_outputs
from kiln.compiler import CompileError
from kiln.models.bert import make_inputs
from kiln.runtime import KilnError


@pytest.fixture(scope="module")
def art(tiny_model, tmp_path_factory):
    """Compiled straight from the torch module with kiln.compile (export + kiln compile)."""
    feed = make_inputs(TINY, 2, 8)
    example = {n: torch.from_numpy(feed[n]) for n in INPUT_NAMES}
    out = tmp_path_factory.mktemp("api") / "art"
    return kiln.compile(tiny_model, example_inputs=example, target="native", output_dir=out,
                        output_names=["last_hidden_state", "pooler_output"])


@pytest.fixture()
def m(art):
    return kiln.runtime.load(art)


# --- kiln.compile -----------------------------------------------------------------------------

@pytest.mark.parametrize("batch,seq", [(1, 1), (1, 5), (3, 11), (2, 24)])
def test_compiled_module_matches_pytorch_at_any_batch_and_seq(tiny_model, m, batch, seq):
    feed = make_inputs(TINY, batch, seq)
    got = m(**feed)
    want = torch_outputs(tiny_model, feed)
    assert list(got) == ["last_hidden_state", "pooler_output"]
    for g, w in zip(got.values(), want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, atol=1e-4, rtol=0)


class TwoLayerMlp(torch.nn.Module):
    """Not a BERT: a generic module with a float input of shape [batch, seq, 16]."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.up = torch.nn.Linear(16, 48)
        self.down = torch.nn.Linear(48, 16)
        self.norm = torch.nn.LayerNorm(16)

    def forward(self, x):
        return self.norm(self.down(torch.nn.functional.gelu(self.up(x))) + x)


def test_compile_generic_module_with_tuple_inputs(tmp_path):
    mod = TwoLayerMlp().eval()
    art = kiln.compile(mod, example_inputs=(torch.randn(2, 5, 16),), output_dir=tmp_path / "mlp")
    m = kiln.runtime.load(art)
    assert m.input_names == ["input_0"] and m.output_names == ["output_0"]
    assert m.input_info()[0]["shape"] == (-1, -1, 16)
    for shape in [(1, 3, 16), (4, 9, 16)]:
        x = np.random.RandomState(1).randn(*shape).astype(np.float32)
        with torch.no_grad():
            want = mod(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(m(input_0=x)["output_0"], want, atol=1e-5, rtol=0)


def test_compile_an_onnx_file(tiny_onnx, tmp_path):
    art = kiln.compile(str(tiny_onnx), output_dir=tmp_path / "from_onnx")
    assert (art / "model.json").exists() and (art / "model.so").exists()


def test_compile_errors_are_the_compilers(tiny_model, tiny_onnx, tmp_path):
    with pytest.raises(CompileError, match="pdp11"):
        kiln.compile(str(tiny_onnx), target="pdp11", output_dir=tmp_path / "x")
    with pytest.raises(CompileError, match="example_inputs"):
        kiln.compile(tiny_model, output_dir=tmp_path / "y")
    with pytest.raises(CompileError, match="quantize"):
        kiln.compile(str(tiny_onnx), output_dir=tmp_path / "z", quantize="int4")


# --- kiln.runtime: the GraphModule API --------------------------------------------------------

def test_introspection(m):
    assert m.get_num_inputs() == 3 and m.get_num_outputs() == 2
    assert [m.get_input_index(n) for n in INPUT_NAMES] == [0, 1, 2]
    assert m.get_output_index("pooler_output") == 1
    info = m.input_info()
    assert [i["dtype"] for i in info] == [np.int64] * 3
    assert info[0]["shape"] == (-1, -1)
    assert m.output_info()[0]["shape"] == (-1, -1, TINY.hidden_size)
    desc = json.loads(m.describe())
    assert desc["symbols"][1] == {"name": "seq", "max": 24}


def test_set_input_by_name_and_index_then_run(tiny_model, m):
    feed = make_inputs(TINY, 2, 7)
    m.set_input("input_ids", feed["input_ids"])
    m.set_input(1, feed["attention_mask"])
    m.set_input(m.get_input_index("token_type_ids"), torch.from_numpy(feed["token_type_ids"]))
    m.run()
    want = torch_outputs(tiny_model, feed)
    np.testing.assert_allclose(m.get_output(0), want[0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(m.get_output("pooler_output"), want[1], atol=1e-4, rtol=0)
    out = np.empty_like(want[1])
    assert m.get_output(1, out=out) is out
    np.testing.assert_allclose(out, want[1], atol=1e-4, rtol=0)
    # TVM's keyword forms
    m.set_input(**feed)
    m.run(**feed)
    np.testing.assert_allclose(m.get_output(0), want[0], atol=1e-4, rtol=0)


def test_outputs_are_copies_and_runs_are_repeatable(m):
    feed = make_inputs(TINY, 1, 6)
    first = m(**feed)["last_hidden_state"]
    m(**make_inputs(TINY, 2, 9, seed=7))
    np.testing.assert_array_equal(m(**feed)["last_hidden_state"], first)


def test_int32_ids_are_accepted(tiny_model, m):
    feed = make_inputs(TINY, 2, 5)
    got = m(**{k: v.astype(np.int32) for k, v in feed.items()})
    np.testing.assert_allclose(got["pooler_output"], torch_outputs(tiny_model, feed)[1],
                               atol=1e-4, rtol=0)


def test_threads(m):
    m.num_threads = 1
    assert m.num_threads == 1
    with pytest.raises(KilnError, match="num_threads"):
        m.num_threads = -3


# --- input checks -----------------------------------------------------------------------------

def expect(fn, *fragments, status=None):
    with pytest.raises(KilnError) as e:
        fn()
    for f in fragments:
        assert f in str(e.value), f"expected {f!r} in {str(e.value)!r}"
    if status is not None:
        assert e.value.status == status
    return str(e.value)


def test_wrong_dtype(m):
    ids = make_inputs(TINY, 1, 4)["input_ids"]
    expect(lambda: m.set_input("input_ids", ids.astype(np.float32)),
           "input 'input_ids'", "dtype float32", "expected int64", status=1)
    expect(lambda: m.set_input("input_ids", ids.astype(np.float64)), "dtype float64")
    expect(lambda: m.set_input("input_ids", ids.astype(np.uint16)), "dtype uint16")


def test_wrong_shape(m):
    expect(lambda: m.set_input("input_ids", np.ones(4, np.int64)), "input 'input_ids'",
           "rank 1, expected 2", status=1)
    feed = make_inputs(TINY, 1, 30)
    expect(lambda: m(**feed), "seq = 30 exceeds the compiled maximum 24", status=1)
    feed = make_inputs(TINY, 2, 5)
    feed["attention_mask"] = feed["attention_mask"][:1]
    expect(lambda: m(**feed), "disagree on batch: 2 vs 1", status=1)
    feed = make_inputs(TINY, 1, 5)
    feed["input_ids"][0, 2] = TINY.vocab_size + 5
    expect(lambda: m(**feed), "405", status=5)


def test_wrong_name_or_index(m):
    msg = expect(lambda: m.set_input("ids", np.ones((1, 4), np.int64)), "no input named 'ids'")
    assert "'input_ids', 'attention_mask', 'token_type_ids'" in msg
    expect(lambda: m.set_input(7, np.ones((1, 4), np.int64)), "input index 7 is out of range")
    expect(lambda: m.get_output("logits"), "no output named 'logits'")
    expect(lambda: m(input_ids=np.ones((1, 4), np.int64), mask=np.ones((1, 4), np.int64)),
           "no input named 'mask'")


def test_run_before_inputs_are_set(art):
    m = kiln.runtime.load(art)
    expect(m.run, "input 'input_ids' is not set", status=6)
    expect(lambda: m.get_output(0), "kiln_model_run has not succeeded", status=6)
    m.set_input("input_ids", np.ones((1, 4), np.int64))
    expect(m.run, "input 'attention_mask' is not set", status=6)


def test_load_errors(art, tmp_path):
    expect(lambda: kiln.runtime.load(tmp_path / "nope"), "nope", status=2)
    bad = tmp_path / "v2"
    shutil.copytree(art, bad)
    j = json.loads((bad / "model.json").read_text())
    j["format_version"] = 2
    (bad / "model.json").write_text(json.dumps(j))
    expect(lambda: kiln.runtime.load(bad), "format version 2, this runtime reads 1", status=4)


def test_artifact_for_another_architecture(tiny_onnx, tmp_path):
    art = kiln.compile(str(tiny_onnx), target="rpi5", output_dir=tmp_path / "pi")
    expect(lambda: kiln.runtime.load(art), "artifact is built for aarch64 (target rpi5)",
           "this runtime is x86_64", status=4)


def run_python(code, cwd, env):
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_missing_runtime_library(art, tmp_path):
    """The binding alone, without libkiln_runtime.so anywhere it looks."""
    pkg = tmp_path / "kiln"
    pkg.mkdir()
    for f in ("__init__.py", "runtime.py"):
        shutil.copy(ROOT / "python" / "kiln" / f, pkg / f)
    code = (f"import kiln.runtime\ntry:\n    kiln.runtime.load({str(art)!r})\n"
            "except kiln.runtime.KilnError as e:\n    print('ERROR', e.status, e)\n")
    proc = run_python(code, tmp_path, clean_env(PYTHONPATH=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ERROR 2 libkiln_runtime.so not found"), proc.stdout
    assert "KILN_RUNTIME_LIB" in proc.stdout
    # an explicit KILN_RUNTIME_LIB that is wrong is named in the message
    proc = run_python(code, tmp_path, clean_env(PYTHONPATH=str(tmp_path),
                                                KILN_RUNTIME_LIB=str(tmp_path / "libnope.so")))
    assert "libnope.so (missing)" in proc.stdout, proc.stdout
    # and with the library next to the package, it loads
    shutil.copy(RUNTIME_LIB, tmp_path / "libkiln_runtime.so")
    proc = run_python(code + "else:\n    print('LOADED')\n", tmp_path,
                      clean_env(PYTHONPATH=str(tmp_path)))
    assert "LOADED" in proc.stdout, proc.stdout + proc.stderr
