"""Session fixtures for tests/python (paths and helpers: kiln_testenv.py)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kiln_testenv import TINY  # noqa: E402  (also sets KILN_BIN, KILN_RUNTIME_LIB, ...)
from kiln.models.bert import build_model, export_onnx  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model():
    return build_model(TINY, seed=0, init="random")


@pytest.fixture(scope="session")
def tiny_onnx(tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(tiny_model, path, opset=14)
    return path
