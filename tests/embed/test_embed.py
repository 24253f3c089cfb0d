"""Sentence embeddings end to end (issue 13 items 2-3): kiln.compile(SentenceTransformer) packs
its tokenizer and its Pooling / Normalize settings (model.json "pooling"); m.embed (ctypes, the C
ABI's kiln_model_embed) and `kiln-rt embed` give SentenceTransformer.encode's vectors. The model
is a small random BERT and the tokenizer a WordPiece trained here with `tokenizers` (as
tests/tokenizers), wrapped as a SentenceTransformer; the aarch64 kiln-rt runs under qemu as a
Cortex-A72 (rpi4) and a Cortex-A76 (rpi5).

Runs in the project venv (scripts/test.sh stage 3):
    KILN_BUILD_DIR=build KILN_AARCH64_BUILD_DIR=build-aarch64 PYTHONPATH=python \\
        $(scripts/setup_venv.sh | tail -1) -m pytest -q tests/embed
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
pytest.importorskip("sentence_transformers")
from sentence_transformers import SentenceTransformer  # noqa: E402
from sentence_transformers.sentence_transformer.modules import (  # noqa: E402
    Dense, Normalize, Pooling, Transformer)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tokenizers"))
import test_tokenizer_json as tj  # noqa: E402  (the WordPiece tokenizer and its corpus)

import kiln  # noqa: E402
import kiln.runtime  # noqa: E402
from kiln.runtime import KilnError, KilnWarning  # noqa: E402

MAX_SEQ = 32
KILN_RT = tj.BUILD / "tools" / "kiln-rt" / "kiln-rt"
AARCH64_BUILD = Path(os.environ.get("KILN_AARCH64_BUILD_DIR", ROOT / "build-aarch64"))
AARCH64_KILN_RT = AARCH64_BUILD / "tools" / "kiln-rt" / "kiln-rt"
AARCH64_SYSROOT = "/usr/aarch64-linux-gnu"
QEMU_CPUS = {"rpi4": "cortex-a72", "rpi5": "cortex-a76"}
# Lengths from 2 tokens ("") to past MAX_SEQ (truncated), so every batch has padding.
TEXTS = ["hello world", "", "The quick brown fox jumps over the lazy dog.",
         "café naïve façade über straße 中文 测试 😀 🚀",
         "data " * 60,
         "a", "kiln runs the model on the board: print return function class import",
         "numbers 1 2 3 42 2024 3.14 1,000 50% $100 #tag @user https www example com"]
MODES = {"cls": "cls", "mean": "mean", "max": "max", "last": "lasttoken"}  # kiln -> ST


@pytest.fixture(scope="module")
def transformer(tmp_path_factory):
    """The Transformer module: a random 2-layer BERT and a fast tokenizer over tj.wordpiece."""
    tmp = tmp_path_factory.mktemp("st")
    tok, _ = tj.wordpiece(lowercase=True)
    config = transformers.BertConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    bert = transformers.BertModel(config, add_pooling_layer=False).eval()
    with torch.no_grad():  # transformers starts biases at 0 and norms at 1; real ones are not
        for p in bert.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    bert.save_pretrained(tmp / "bert")
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=MAX_SEQ)
    fast.save_pretrained(tmp / "bert")
    return Transformer(str(tmp / "bert"), max_seq_length=MAX_SEQ)


def sentence_transformer(transformer, mode, *extra):
    pool = Pooling(transformer.get_embedding_dimension(), pooling_mode=mode)
    return SentenceTransformer(modules=[transformer, pool, *extra], device="cpu").eval()


@pytest.fixture(scope="module")
def mean_st(transformer):
    return sentence_transformer(transformer, "mean", Normalize())


@pytest.fixture(scope="module")
def fp32(mean_st, tmp_path_factory):
    return Path(kiln.compile(mean_st, output_dir=tmp_path_factory.mktemp("fp32") / "art"))


def embed(art, texts=TEXTS, **kw):
    m = kiln.runtime.load(str(art))
    with pytest.warns(KilnWarning, match="text 4 has .* truncated to the maximum sequence "
                                         f"length {MAX_SEQ}"):
        return m.embed(texts, **kw)


def test_model_json_pooling_from_the_sentence_transformer(fp32):
    d = json.loads((fp32 / "model.json").read_text())
    assert d["pooling"] == {"mode": "mean", "normalize": True, "output": "token_embeddings"}
    assert [o["name"] for o in d["outputs"]] == ["token_embeddings"]
    assert d["tokenizer"]["type"] == "tokenizer_json"


def test_fp32_equals_sentence_transformers_encode(fp32, mean_st):
    got = embed(fp32)
    want = mean_st.encode(TEXTS, normalize_embeddings=True)
    assert got.dtype == np.float32 and got.shape == want.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, atol=1e-6)


def test_batching_does_not_change_the_vectors(fp32):
    """Sorted buckets of 3, one text per run, and the given order padded per run: the same
    vectors (pooling reads no padding), and bucketing runs fewer padded positions."""
    m = kiln.runtime.load(str(fp32))
    runs = {}
    for name, kw in {"sorted3": dict(max_batch=3), "single": dict(max_batch=1),
                     "naive": dict(max_batch=len(TEXTS), keep_order=True)}.items():
        stats = {}
        with pytest.warns(KilnWarning):
            runs[name] = (m.embed(TEXTS, stats=stats, **kw), stats)
    base, single = runs["sorted3"], runs["single"]
    for name, (vectors, stats) in runs.items():
        np.testing.assert_allclose(vectors, base[0], atol=2e-6, rtol=0, err_msg=name)
        assert stats["tokens"] == single[1]["tokens"] and stats["truncated"] == 1
    assert single[1]["padded_tokens"] == single[1]["tokens"]  # one text per run: no padding
    assert base[1]["runs"] == 3 and runs["naive"][1]["runs"] == 1
    assert base[1]["padded_tokens"] < runs["naive"][1]["padded_tokens"] == len(TEXTS) * MAX_SEQ


def pooled_reference(hidden, mask, mode):
    """numpy pooling over the mask of a padded batch, as sentence-transformers defines it."""
    m = mask.astype(bool)[:, :, None]
    if mode == "cls":
        return hidden[:, 0]
    if mode == "last":
        return hidden[np.arange(len(hidden)), mask.sum(1) - 1]
    if mode == "mean":
        return (hidden * m).sum(1) / m.sum(1)
    return np.where(m, hidden, -np.inf).max(1)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("normalize", [False, True])
def test_each_pooling_mode(fp32, transformer, mode, normalize, tmp_path):
    """The artifact's pooling section set to each mode: m.embed (bucketed) against numpy over
    one padded batch of the artifact's token_embeddings, and against sentence-transformers'
    Pooling with that mode."""
    art = tmp_path / mode
    shutil.copytree(fp32, art)
    d = json.loads((art / "model.json").read_text())
    d["pooling"] = {"mode": mode, "normalize": normalize, "output": "token_embeddings"}
    (art / "model.json").write_text(json.dumps(d))
    got = embed(art, max_batch=3)
    m = kiln.runtime.load(str(art))
    with pytest.warns(KilnWarning):
        enc = m.encode(TEXTS)
    assert (enc["attention_mask"] == 0).any()  # padding present
    hidden = m(**{k: v for k, v in enc.items() if k in m.input_names})["token_embeddings"]
    want = pooled_reference(hidden, enc["attention_mask"], mode)
    if normalize:
        want = want / np.maximum(np.linalg.norm(want, axis=1, keepdims=True), 1e-12)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    st = sentence_transformer(transformer, MODES[mode], *([Normalize()] if normalize else []))
    np.testing.assert_allclose(got, st.encode(TEXTS), atol=1e-5, rtol=0)


def test_int8_cosine(mean_st, tmp_path):
    art = kiln.compile(mean_st, output_dir=tmp_path / "int8", quantize="int8")
    got = embed(art)
    want = mean_st.encode(TEXTS, normalize_embeddings=True)
    cosine = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cosine.min() >= 0.999, cosine


def test_pooling_argument_replaces_the_models_own(mean_st, transformer, tmp_path):
    art = Path(kiln.compile(mean_st, output_dir=tmp_path / "art", pooling="max",
                            normalize=False))
    d = json.loads((art / "model.json").read_text())
    assert d["pooling"] == {"mode": "max", "normalize": False, "output": "token_embeddings"}
    want = sentence_transformer(transformer, "max").encode(TEXTS)
    np.testing.assert_allclose(embed(art), want, atol=1e-5, rtol=0)


def test_from_a_saved_directory(transformer, tmp_path):
    """A directory with modules.json and 1_Pooling/config.json: CLS pooling, no Normalize."""
    st = sentence_transformer(transformer, "cls")
    st.save(str(tmp_path / "saved"))
    assert (tmp_path / "saved" / "1_Pooling" / "config.json").is_file()
    art = Path(kiln.compile(tmp_path / "saved", output_dir=tmp_path / "art"))
    d = json.loads((art / "model.json").read_text())
    assert d["pooling"] == {"mode": "cls", "normalize": False, "output": "token_embeddings"}
    np.testing.assert_allclose(embed(art), st.encode(TEXTS), atol=1e-5, rtol=0)


def test_a_graph_that_ends_in_an_embedding_is_served_as_it_is(transformer, tmp_path):
    """A Dense module after pooling: the whole stack is exported (output sentence_embedding
    [batch, 16]), model.json has no pooling section, and m.embed returns that output."""
    torch.manual_seed(1)
    st = sentence_transformer(transformer, "mean", Dense(32, 16), Normalize())
    art = Path(kiln.compile(st, output_dir=tmp_path / "art"))
    d = json.loads((art / "model.json").read_text())
    assert "pooling" not in d and [o["name"] for o in d["outputs"]] == ["sentence_embedding"]
    np.testing.assert_allclose(embed(art), st.encode(TEXTS), atol=1e-5, rtol=0)


def test_kiln_rt_embed(fp32, mean_st, tmp_path):
    """--text and --file (CRLF, an empty line), --json and the plain form, in input order."""
    lines = tmp_path / "lines.txt"
    lines.write_bytes("\r\n".join(TEXTS[2:]).encode() + b"\n")
    cmd = [str(KILN_RT), "embed", str(fp32), "--text", TEXTS[0], "--text", TEXTS[1],
           "--file", str(lines), "--threads", "2"]
    want = mean_st.encode(TEXTS, normalize_embeddings=True)
    out = subprocess.run(cmd + ["--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "text 4 has" in out.stderr and "truncated" in out.stderr
    d = json.loads(out.stdout)
    assert d["dim"] == 32 and d["truncated"] == 1 and d["threads"] == 2
    np.testing.assert_allclose(np.array(d["embeddings"]), want, atol=1e-5, rtol=0)
    plain = subprocess.run(cmd + ["--max-batch", "1"], capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr
    got = np.array([[float(x) for x in line.split()] for line in plain.stdout.splitlines()])
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert f"{len(TEXTS)} runs" in plain.stderr


# --- bad input: clear errors --------------------------------------------------------------------

def edited(fp32, tmp_path, drop):
    art = tmp_path / f"no_{drop}"
    shutil.copytree(fp32, art)
    d = json.loads((art / "model.json").read_text())
    del d[drop]
    (art / "model.json").write_text(json.dumps(d))
    return kiln.runtime.load(str(art))


def test_no_tokenizer(fp32, tmp_path):
    m = edited(fp32, tmp_path, "tokenizer")
    with pytest.raises(KilnError, match="the artifact has no tokenizer"):
        m.embed(["hello"])
    out = subprocess.run([str(KILN_RT), "embed", str(tmp_path / "no_tokenizer"), "--text", "x"],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "this artifact has no tokenizer" in out.stderr


def test_no_pooling(fp32, tmp_path):
    m = edited(fp32, tmp_path, "pooling")
    for call in (lambda: m.embed(["hello"]), lambda: m.embedding_dim):
        with pytest.raises(KilnError, match="the artifact has no pooling .*--pooling"):
            call()


def test_count_tokens_before_truncation(fp32, mean_st):
    """Token counts with special tokens and before truncation: the model's own tokenizer's."""
    m = kiln.runtime.load(str(fp32))
    want = [len(mean_st.tokenizer(t)["input_ids"]) for t in TEXTS]
    assert m.count_tokens(TEXTS) == want
    assert max(want) > MAX_SEQ  # text 4: what embed truncates is counted in full
    assert m.count_tokens("one") == [len(mean_st.tokenizer("one")["input_ids"])]
    with pytest.raises(TypeError, match="count_tokens: text 1 is a int"):
        m.count_tokens(["a", 3])


def test_bad_texts(fp32):
    m = kiln.runtime.load(str(fp32))
    with pytest.raises(ValueError, match="no texts"):
        m.embed([])
    with pytest.raises(TypeError, match="text 1 is a int, not a str"):
        m.embed(["a", 3])
    with pytest.raises(TypeError, match="text 0 is a NoneType"):
        m.embed([None])
    assert m.embed("one text").shape == (1, 32)
    out = subprocess.run([str(KILN_RT), "embed", str(fp32)], capture_output=True, text=True)
    assert out.returncode == 1 and "embed: no texts" in out.stderr


def test_compile_flags(tmp_path, fp32):
    """kiln compile --pooling on an ONNX file: a bad mode, and --pooling none without a
    [batch, dim] output, are errors naming the outputs."""
    bert = transformers.BertModel(transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16), add_pooling_layer=False).eval()
    with pytest.raises(kiln.CompileError, match="unknown mode 'avg'"):
        kiln.compile(bert, output_dir=tmp_path / "a", pooling="avg")
    with pytest.raises(kiln.CompileError, match="no float32 \\[batch, dim\\] output .*"
                                                "last_hidden_state float32"):
        kiln.compile(bert, output_dir=tmp_path / "b", normalize=True)


# --- aarch64 under qemu: the C ABI path (kiln-rt embed) on a Pi 4 and a Pi 5 CPU --------------

def have_qemu():
    return (shutil.which("qemu-aarch64") is not None and Path(AARCH64_SYSROOT).is_dir()
            and AARCH64_KILN_RT.exists())


@pytest.mark.skipif(not have_qemu(), reason="needs qemu-aarch64, the aarch64 sysroot and "
                                            "build-aarch64's kiln-rt")
@pytest.mark.parametrize("target", list(QEMU_CPUS))
def test_aarch64_under_qemu(mean_st, target, tmp_path):
    art = kiln.compile(mean_st, output_dir=tmp_path / target, target=target)
    env = dict(os.environ, LD_LIBRARY_PATH=str(AARCH64_BUILD / "runtime"))
    cmd = ["qemu-aarch64", "-L", AARCH64_SYSROOT, "-cpu", QEMU_CPUS[target],
           str(AARCH64_KILN_RT), "embed", str(art), "--json", "--threads", "2", "--max-batch", "3"]
    for t in TEXTS:
        cmd += ["--text", t]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["runs"] == 3 and d["truncated"] == 1
    want = mean_st.encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(np.array(d["embeddings"]), want, atol=1e-5, rtol=0)
