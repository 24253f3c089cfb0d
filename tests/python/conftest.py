"""Session fixtures for tests/python (paths and helpers: kiln_testenv.py)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kiln_testenv import SANITIZED, TINY, have_aarch64_runtime  # noqa: E402  (sets KILN_BIN, ...)
import kiln  # noqa: E402
from kiln.models.bert import build_model, export_onnx  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model():
    return build_model(TINY, seed=0, init="random")


@pytest.fixture(scope="session")
def tiny_onnx(tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(tiny_model, path, opset=14)
    return path


@pytest.fixture(scope="session")
def vocab_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("bvocab") / "vocab.txt"
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "from", "the", "board", "!", ",",
             "kiln", "runs", "bert", "on", "a", "raspberry", "pi", "."]
    path.write_text("\n".join(words) + "\n")
    return path


@pytest.fixture(scope="session")
def bundles(tiny_onnx, vocab_file, tmp_path_factory):
    """Deploy bundles of the tiny BERT with vocab_file (test_bundle*.py): target -> (archive,
    artifact dir); rpi4 / rpi5 only when the aarch64 runtime is built."""
    if SANITIZED:
        pytest.skip("no bundle of a sanitized runtime (its wheel would need libasan)")
    tmp = tmp_path_factory.mktemp("bundles")
    targets = ["native"] + (["rpi4", "rpi5"] if have_aarch64_runtime() else [])
    out = {}
    for t in targets:
        archive = tmp / f"kiln-{t}.tar.gz"
        art = kiln.compile(str(tiny_onnx), target=t, output_dir=tmp / t, vocab=vocab_file,
                           bundle=archive)
        out[t] = (archive, art)
    return out
