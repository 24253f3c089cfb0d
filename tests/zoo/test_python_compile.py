"""kiln.compile on Hugging Face models as users have them: a transformers PreTrainedModel or a
SentenceTransformer goes in without example inputs or wrappers, the artifact takes input_ids /
attention_mask (/ token_type_ids) and matches torch. Runs in the zoo venv only; elsewhere it skips.

    PY=$(scripts/setup_venv.sh | tail -1)
    KILN_BUILD_DIR=build $PY -m pytest -q tests/zoo/test_python_compile.py
"""

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
if int(torch.__version__.split(".")[0]) < 2:
    pytest.skip("the zoo needs torch 2.x (scripts/setup_venv.sh)", allow_module_level=True)
transformers = pytest.importorskip("transformers", minversion="5")
pytest.importorskip("sentence_transformers")
pytest.importorskip("onnxscript")
np = pytest.importorskip("numpy")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
import kiln  # noqa: E402
import zoo  # noqa: E402  (pytest puts tests/zoo on sys.path)

SHAPES = [(3, 7), (1, 1), (2, zoo.MAX_POS)]  # padding in rows 1.. (zoo.example_inputs)


def check_matches_torch(m, case):
    assert m.input_names == list(case.input_names)
    assert m.output_names == list(case.output_names)
    assert json.loads(m.describe())["symbols"][1] == {"name": "seq", "max": zoo.MAX_POS}
    for batch, seq in SHAPES:
        feeds = zoo.example_inputs(case, batch=batch, seq=seq, seed=seq)
        want = zoo.run_torch(case, feeds)
        got = m(**feeds)
        for name in case.output_names:
            assert got[name].shape == want[name].shape
            np.testing.assert_allclose(got[name], want[name], atol=1e-4, rtol=0,
                                       err_msg=f"{case.name} {name} at {batch}x{seq}")


# No example inputs; the max sequence comes from the config (RoBERTa: 130 positions less its pad
# offset 2; ModernBERT has no position table at all). The default exporter on this torch is dynamo;
# DistilBERT asks for the TorchScript one (opset 17). One compile per model keeps the file fast.
@pytest.mark.parametrize("name,exporter", [("bert", None), ("roberta", None),
                                           ("modernbert", None), ("distilbert", "torchscript")])
def test_transformers_model(name, exporter, tmp_path):
    case = zoo.build(name)
    m = kiln.load(kiln.compile(case.hf_model, output_dir=tmp_path / name, exporter=exporter))
    check_matches_torch(m, case)


def test_sentence_transformer_from_its_tokenizer_output(tmp_path):
    """output_names=["sentence_embedding"]: the whole encoder, mean pooling and normalisation
    included, is exported as a graph (by default the artifact outputs token_embeddings and the
    runtime pools: tests/embed); example_inputs is the encoder's own preprocessing output (it
    carries a "modality" string besides the tensors)."""
    case = zoo.build("sentence_bert")
    st = case.hf_model
    texts = ["the kiln runs bert on a pi", "small model", "a"]
    features = st.preprocess(texts)
    m = kiln.load(kiln.compile(st, example_inputs=features, output_dir=tmp_path / "st",
                               output_names=["sentence_embedding"]))
    check_matches_torch(m, case)
    got = m(**{k: v.numpy() for k, v in features.items() if k in m.input_names})
    want = st.encode(texts, convert_to_numpy=True)
    np.testing.assert_allclose(got["sentence_embedding"], want, atol=1e-4, rtol=0)


# --- errors: clear kiln.CompileError before anything is exported --------------------------------

def expect_error(model, *fragments, **kwargs):
    with pytest.raises(kiln.CompileError) as e:
        kiln.compile(model, output_dir="/nonexistent/never-written", **kwargs)
    for f in fragments:
        assert f in str(e.value), f"expected {f!r} in {str(e.value)!r}"


def test_model_without_token_inputs():
    vit = transformers.ViTModel(transformers.ViTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        image_size=8, patch_size=4))
    expect_error(vit, "ViTModel.forward takes no input_ids", "pixel_values", "example_inputs")


def test_wrong_inputs_or_outputs():
    distil = zoo.build("distilbert").hf_model
    expect_error(distil, "DistilBertModel takes no 'token_type_ids'",
                 "its text inputs are input_ids, attention_mask",
                 input_names=["input_ids", "token_type_ids"])
    expect_error(distil, "DistilBertModel takes no 'position_ids'",
                 example_inputs={"input_ids": np.ones((2, 5), np.int64),
                                 "position_ids": np.ones((2, 5), np.int64)})
    expect_error(distil, "needs input_ids", input_names=["attention_mask"])
    expect_error(distil, "input_ids has 1 token per row",
                 example_inputs={"input_ids": np.ones((2, 1), np.int64)})
    expect_error(zoo.build("bert").hf_model, "BertModel has no tensor output 'logits'",
                 "its outputs are last_hidden_state, pooler_output", output_names=["logits"])


def test_max_seq_beyond_the_position_table():
    expect_error(zoo.build("roberta").hf_model,
                 "max_seq 129 is larger than RobertaModel's maximum positions 128", max_seq=129)


def test_unknown_exporter():
    expect_error(zoo.build("distilbert").hf_model, "exporter 'onnxscript'",
                 "'dynamo' or 'torchscript'", exporter="onnxscript")
