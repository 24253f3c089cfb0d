"""`kiln compile --tokenizer tokenizer.json` (tools/kiln/pack_vocab.cpp) end to end: a tiny random
RoBERTa whose vocabulary is a byte-level BPE trained here, compiled with its tokenizer.json; then
the Python binding (m.encode, m(text=...)) and `kiln-rt run --text` tokenize through the packed
file, token for token as `tokenizers`, and the outputs equal PyTorch's on the same ids. A
SentenceTransformer's own tokenizer is packed without being asked.

Runs in the project venv (scripts/test.sh stage 3); KILN_BUILD_DIR names the build tree.
"""
import json
import os
import re
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import test_tokenizer_json as tj  # noqa: E402  (same directory: the tokenizers and strings)

import kiln  # noqa: E402
import kiln.runtime  # noqa: E402
from kiln.compiler import CompileError  # noqa: E402

MAX_SEQ = 32
KILN_RT = tj.BUILD / "tools" / "kiln-rt" / "kiln-rt"
TEXTS = ["hello world", "", "I'm naïve: 3.14 🚀 <mask> https://example.com/x?y=1",
         "the quick brown fox " * 20]  # the last one is longer than MAX_SEQ
# Under scripts/test.sh --sanitize the runtime needs libasan, and a bundle's runtime wheel refuses
# any library beyond glibc's and libstdc++ (python/kiln/_runtime_wheel.py): no bundle there.
SANITIZED = "-fsanitize" in os.environ.get("KILN_EXTRA_CXXFLAGS", "")


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pack")
    tok, _ = tj.roberta_bpe()
    path = tmp / "tokenizer.json"
    tok.save(str(path))
    vocab = tok.get_vocab_size(with_added_tokens=True)
    config = transformers.RobertaConfig(
        vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=MAX_SEQ + 2, type_vocab_size=1,
        pad_token_id=tok.token_to_id("<pad>"))
    torch.manual_seed(0)
    model = transformers.RobertaModel(config, add_pooling_layer=False).eval()
    out = kiln.compile(model, output_dir=tmp / "art", tokenizer=path, max_seq=MAX_SEQ,
                       bundle=None if SANITIZED else tmp / "bundle.tar.gz")
    return tok, model, path, Path(out)


def test_model_json_records_the_tokenizer(packed):
    tok, _, path, art = packed
    section = json.loads((art / "model.json").read_text())["tokenizer"]
    data = path.read_bytes()
    assert section == {"type": "tokenizer_json", "file": "tokenizer.json", "model": "BPE",
                       "vocab_size": tok.get_vocab_size(with_added_tokens=True),
                       "crc32": zlib.crc32(data)}
    assert (art / "tokenizer.json").read_bytes() == data


@pytest.mark.skipif(SANITIZED, reason="no bundle of a sanitized runtime (libasan)")
def test_bundle_carries_the_tokenizer(packed):
    _, _, path, art = packed
    with tarfile.open(art.parent / "bundle.tar.gz") as tar:
        names = tar.getnames()
        readme = tar.extractfile("bundle/README.md").read().decode()
    assert "bundle/tokenizer.json" in names
    assert "tokenizer.json" in readme and '--text "a sentence"' in readme


def test_python_binding_tokenizes_and_runs(packed):
    tok, model, _, art = packed
    tok.enable_truncation(MAX_SEQ)
    tok.enable_padding(pad_id=tok.token_to_id("<pad>"))
    want = tok.encode_batch(TEXTS)
    m = kiln.runtime.load(str(art))
    assert m.has_tokenizer
    with pytest.warns(kiln.runtime.KilnWarning, match=f"text 3 has .* tokens, truncated to the "
                                                      f"maximum sequence length {MAX_SEQ}"):
        enc = m.encode(TEXTS)
    ids = np.array([e.ids for e in want])
    mask = np.array([e.attention_mask for e in want])
    np.testing.assert_array_equal(enc["input_ids"], ids)
    np.testing.assert_array_equal(enc["attention_mask"], mask)
    with pytest.warns(kiln.runtime.KilnWarning):
        got = m(text=TEXTS)["last_hidden_state"]
    with torch.no_grad():
        ref = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    real = mask.astype(bool)  # padded rows are not compared
    np.testing.assert_allclose(got[real], ref.last_hidden_state.numpy()[real], atol=1e-4)


def test_kiln_rt_text(packed):
    tok, _, _, art = packed
    text = TEXTS[2]
    proc = subprocess.run([str(KILN_RT), "run", str(art), "--text", text, "--verbose",
                           "--output-dir", str(art / "out")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    line = re.search(r"text 0: input_ids ([0-9 ]+)", proc.stdout).group(1)
    assert [int(x) for x in line.split()] == tok.encode(text).ids


def test_compile_rejects_a_tokenizer_larger_than_the_embedding(packed, tmp_path):
    tok, model, _, _ = packed
    d = json.loads(tok.to_str())
    rows = tok.get_vocab_size(with_added_tokens=True)
    d["added_tokens"].append({"id": rows + 5, "content": "<extra>", "single_word": False,
                              "lstrip": False, "rstrip": False, "normalized": False,
                              "special": True})
    big = tmp_path / "big.json"
    big.write_text(json.dumps(d))
    with pytest.raises(CompileError, match=rf"big.json: {rows + 6} ids \(largest \+ 1\), but the "
                                           rf"model's word embedding has {rows} rows"):
        kiln.compile(model, output_dir=tmp_path / "o", tokenizer=big, max_seq=MAX_SEQ)


def test_compile_rejects_vocab_with_tokenizer(packed, tmp_path):
    _, model, path, _ = packed
    with pytest.raises(CompileError, match="--vocab and --tokenizer both give the tokenizer"):
        kiln.compile(model, output_dir=tmp_path / "o", tokenizer=path, vocab=path,
                     max_seq=MAX_SEQ)


def test_compile_rejects_an_unknown_model_type(packed, tmp_path):
    tok, model, _, _ = packed
    d = json.loads(tok.to_str())
    d["model"]["type"] = "WordLevel"
    bad = tmp_path / "wordlevel.json"
    bad.write_text(json.dumps(d))
    with pytest.raises(CompileError, match="wordlevel.json: model type 'WordLevel' is not "
                                           "supported"):
        kiln.compile(model, output_dir=tmp_path / "o", tokenizer=bad, max_seq=MAX_SEQ)


def test_sentence_transformer_packs_its_own_tokenizer(tmp_path):
    """kiln.compile(SentenceTransformer) packs the model's fast tokenizer: text in, the same
    embeddings as SentenceTransformer.encode out."""
    pytest.importorskip("sentence_transformers")
    sys.path.insert(0, str(tj.ROOT / "tests" / "zoo"))
    import zoo

    st = zoo.build_sentence_transformer(str(tmp_path / "st"))
    art = Path(kiln.compile(st, output_dir=tmp_path / "art"))
    section = json.loads((art / "model.json").read_text())["tokenizer"]
    assert (section["type"], section["model"]) == ("tokenizer_json", "WordPiece")
    texts = ["Hello, World!", "café naïve 中文", "", "w1 w2 w3 unknownword " * 40]
    m = kiln.runtime.load(str(art))
    with pytest.warns(kiln.runtime.KilnWarning, match="text 3 has"):
        enc = m.encode(texts)
    want = st.tokenize(texts)
    np.testing.assert_array_equal(enc["input_ids"], want["input_ids"].numpy())
    np.testing.assert_array_equal(enc["attention_mask"], want["attention_mask"].numpy())
    with pytest.warns(kiln.runtime.KilnWarning):
        got = m.embed(texts)  # the artifact pools and normalises (tests/embed)
    np.testing.assert_allclose(got, st.encode(texts), atol=1e-5)
