"""The zoo's exports themselves are right: every model x exporter exports and onnxruntime agrees
with torch. Runs in the zoo venv only (torch 2.x, transformers 5.x); elsewhere it skips.

    $(scripts/setup_venv.sh | tail -1) -m pytest -q tests/zoo
"""

import pytest

torch = pytest.importorskip("torch")
if int(torch.__version__.split(".")[0]) < 2:
    pytest.skip("the zoo needs torch 2.x (scripts/setup_venv.sh)", allow_module_level=True)
pytest.importorskip("transformers", minversion="5")
pytest.importorskip("sentence_transformers")
pytest.importorskip("onnxscript")
ort = pytest.importorskip("onnxruntime")
np = pytest.importorskip("numpy")

import zoo  # noqa: E402  (conftest.py puts tests/zoo on sys.path)


@pytest.mark.parametrize("exporter", zoo.EXPORTERS)
@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_export_matches_torch(name, exporter, zoo_exports):
    case = zoo_exports.case(name)
    path = zoo_exports.path(name, exporter)  # the session's export, shared with test_zoo_compile.py
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == list(case.input_names)
    for batch, seq in [(1, 1), (3, 7), (2, zoo.MAX_POS)]:
        feeds = zoo.example_inputs(case, batch=batch, seq=seq, seed=seq)
        ref = zoo.run_torch(case, feeds)
        got = sess.run(list(case.output_names), feeds)
        for out, name_ in zip(got, case.output_names):
            assert out.shape == ref[name_].shape
            np.testing.assert_allclose(out, ref[name_], atol=1e-4, rtol=0,
                                       err_msg=f"{name} {exporter} {name_} at {batch}x{seq}")
