"""The WordPiece tokenizer packed into an artifact (`kiln compile --vocab [--cased]`), run by the
runtime on the board (m.encode, m(text=...), kiln-rt run --text), against the Python reference in
wordpiece_ref.py on tricky strings. Vocabularies are made here; no model hub."""
import json
import shutil
import subprocess
import warnings

import numpy as np
import pytest

import kiln
import kiln.runtime
import wordpiece_ref as ref
from kiln_testenv import INPUT_NAMES, KILN, KILN_RT, TINY, torch_outputs
from kiln.compiler import CompileError
from kiln.runtime import KilnError, KilnWarning

MAX_SEQ = TINY.max_position_embeddings  # the compiled maximum (24)

TEXTS = [
    "Hello, World!",
    "hello world",
    "café naïve Ångström",            # Latin-1 accents, A with ring
    "CAFÉ NAÏVE ÅNGSTRÖM",            # upper-case accents
    "\u212bngstr\u00f6m",             # ANGSTROM SIGN (U+212B), NFD -> A + ring
    "cafe\u0301 nai\u0308ve",         # already decomposed: combining marks
    "El Niño façade déjà vu",
    "Straße Œuvre Ærø",               # letters without a decomposition
    "İstanbul ıi",                    # dotted capital I lowers to i + U+0307
    "Łódź Dvořák Čapek Škoda",        # Latin Extended-A
    "Tiếng Việt",                     # Latin Extended Additional
    "Ελληνικά άέή",                   # Greek with tonos
    "Привет мир йод",                 # Cyrillic, й = и + breve
    "中文字符测试",                    # CJK: one token per character
    "日本語のテキスト",                  # CJK + kana (kana are not split)
    "ガギグ",                          # kana with voiced marks
    "한국어 텍스트",                    # Hangul: decomposed to jamo when lower-casing
    "!!!...???",                      # punctuation runs: one token each
    "wait...what?!",
    "$100.00 #tag @user 50% a+b=c",
    "“quotes” — and ‘single’ «guillemets»",
    "unbelievable believing",         # wordpieces: un ##believ ##able
    "un" + "believ" * 30,             # long word, pieces
    "a" * 100,                        # exactly max_chars_per_word
    "b" * 101 + " short",             # longer: [UNK]
    "",                               # empty text: [CLS] [SEP]
    "   \t\n  ",                      # whitespace only
    "tab\tnew\nline\rreturn",
    "ctrl\x00\x01\x07\x1b[0mchars\x7f",  # control characters are dropped
    "zero\u200bwidth\ufeffbom\u00adsoft",  # Cf: zero-width space, BOM, soft hyphen
    "nbsp\u00a0em\u2003ideographic\u3000space",  # Zs
    "line\u2028para\u2029sep",
    "emoji 😀 test 🚀",               # not in the vocab: [UNK]
    "mixed-CASE_words and snake_case",
]


def make_vocab():
    words = set()
    for text in TEXTS:
        for lower in (True, False):
            words.update(w for w in ref.basic_tokenize(text, lower)
                         if len(w) < 12 and "😀" not in w and "🚀" not in w)
    words -= {"unbelievable", "believing", "ctrl", "Hello"}  # force wordpieces / [UNK]
    pieces = {"un", "##believ", "##able", "##ing", "##s", "believ", "a", "##a", "##b", "c",
              "##t", "##r", "##l"}
    letters = "abcdefghijklmnopqrstuvwxyz"
    pieces |= set(letters) | {"##" + c for c in letters}
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words | pieces)
    assert len(vocab) <= TINY.vocab_size, len(vocab)
    return vocab


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(make_vocab()) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def vocab(vocab_file):
    return {t: i for i, t in enumerate(vocab_file.read_text(encoding="utf-8").split("\n")[:-1])}


@pytest.fixture(scope="module", params=["lower", "cased"])
def case(request):
    return request.param


@pytest.fixture(scope="module")
def arts(tiny_model, tiny_onnx, vocab_file, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tok")
    return {c: kiln.compile(str(tiny_onnx), output_dir=tmp / c, vocab=vocab_file,
                            cased=(c == "cased"))
            for c in ("lower", "cased")}


@pytest.fixture(scope="module")
def models(arts):
    return {c: kiln.runtime.load(a) for c, a in arts.items()}


def test_artifact_records_the_tokenizer(arts, vocab):
    for c, art in arts.items():
        t = json.loads((art / "model.json").read_text())["tokenizer"]
        assert t["type"] == "bert_wordpiece" and t["vocab"] == "vocab.txt"
        assert t["vocab_size"] == len(vocab) and t["lower_case"] == (c == "lower")
        assert (art / "vocab.txt").exists()


def test_reference_sanity(vocab):
    """The test strings do exercise what they claim to, in the reference itself."""
    assert ref.tokenize("unbelievable", vocab, True) == ["un", "##believ", "##able"]
    assert ref.basic_tokenize("café naïve Ångström", True) == ["cafe", "naive", "angstrom"]
    assert ref.basic_tokenize("!!!...", True) == list("!!!...")
    assert ref.tokenize("b" * 101, vocab, True) == ["[UNK]"]
    assert ref.basic_tokenize("中文", True) == ["中", "文"]


@pytest.mark.parametrize("index", range(len(TEXTS)))
def test_encode_matches_reference(models, vocab, case, index):
    text = TEXTS[index]
    want, full = ref.encode(text, vocab, case == "lower", MAX_SEQ)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = models[case].encode([text])
    assert got["input_ids"][0].tolist() == want, \
        f"{text!r}: {ref.tokenize(text, vocab, case == 'lower')}"
    assert got["attention_mask"].tolist() == [[1] * len(want)]
    assert got["token_type_ids"].tolist() == [[0] * len(want)]
    truncated = [w for w in caught if issubclass(w.category, KilnWarning)]
    assert bool(truncated) == (full > MAX_SEQ)


def test_batch_is_padded_to_the_longest(models, vocab):
    texts = ["hello world", "", "café naïve Ångström !!!"]
    got = models["lower"].encode(texts)
    rows = [ref.encode(t, vocab, True, MAX_SEQ)[0] for t in texts]
    seq = max(map(len, rows))
    assert got["input_ids"].shape == (3, seq) and got["input_ids"].dtype == np.int64
    for r, row in enumerate(rows):
        pad = seq - len(row)
        assert got["input_ids"][r].tolist() == row + [vocab["[PAD]"]] * pad
        assert got["attention_mask"][r].tolist() == [1] * len(row) + [0] * pad


def test_too_long_text_is_truncated_with_a_warning(models, vocab):
    text = " ".join(["hello world"] * 20)  # 40 words + [CLS] [SEP]
    with pytest.warns(KilnWarning, match="text 1 has 42 tokens, truncated to the maximum "
                                         "sequence length 24"):
        got = models["lower"].encode(["hello", text])
    assert got["input_ids"].shape == (2, MAX_SEQ)
    assert got["input_ids"][1, -1] == vocab["[SEP]"]
    assert got["input_ids"][1].tolist() == ref.encode(text, vocab, True, MAX_SEQ)[0]
    with pytest.warns(KilnWarning, match="truncated to the maximum sequence length 8"):
        assert models["lower"].encode([text], max_length=8)["input_ids"].shape == (1, 8)
    with pytest.raises(KilnError, match="exceeds the compiled maximum sequence length 24"):
        models["lower"].encode([text], max_length=30)


def test_invalid_utf8_is_dropped(models, vocab):
    got = models["lower"].encode([b"hello \xff\xfe world \xc3"])
    assert got["input_ids"][0].tolist() == ref.encode("hello world", vocab, True, MAX_SEQ)[0]


def test_text_call_runs_the_model(tiny_model, models):
    texts = ["Hello, World!", "café naïve Ångström"]
    got = models["lower"](text=texts)
    feed = models["lower"].encode(texts)
    want = torch_outputs(tiny_model, feed)
    for g, w in zip(got.values(), want):
        np.testing.assert_allclose(g, w, atol=1e-4, rtol=0)


def test_kiln_rt_run_text(models, arts, tmp_path):
    texts = ["Hello, World!", "wait...what?!", " ".join(["hello"] * 30)]
    proc = subprocess.run([str(KILN_RT), "run", str(arts["lower"]), "--output-dir",
                           str(tmp_path), "--verbose"] + [a for t in texts for a in ("--text", t)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "kiln-rt: warning: text 2 has 32 tokens, truncated to the maximum sequence length 24" \
        in proc.stderr
    with pytest.warns(KilnWarning):
        want = models["lower"](text=texts)
    ids = models["lower"].encode(texts[:2])["input_ids"]
    assert "text 0: input_ids " + " ".join(map(str, ids[0])) in proc.stdout
    for name, w in want.items():
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.npy"), w, atol=1e-6, rtol=0)


def test_text_needs_a_tokenizer(tiny_onnx, tmp_path):
    art = kiln.compile(str(tiny_onnx), output_dir=tmp_path / "plain")
    m = kiln.runtime.load(art)
    assert not m.has_tokenizer
    with pytest.raises(KilnError, match="has no tokenizer .*--vocab") as e:
        m.encode(["hello"])
    assert e.value.status == 6
    proc = subprocess.run([str(KILN_RT), "run", str(art), "--text", "hi"], capture_output=True,
                          text=True)
    assert proc.returncode == 1 and "this artifact has no tokenizer" in proc.stderr


def test_text_and_input_together_is_an_error(arts, tmp_path):
    np.save(tmp_path / "ids.npy", np.ones((1, 3), np.int64))
    proc = subprocess.run([str(KILN_RT), "run", str(arts["lower"]), "--text", "hi", "--input",
                           f"input_ids={tmp_path / 'ids.npy'}"], capture_output=True, text=True)
    assert proc.returncode == 1 and "'input_ids' is given by --input and --text" in proc.stderr


# --- a damaged tokenizer is refused at load -------------------------------------------------

def damaged(art, tmp_path, edit):
    bad = tmp_path / "bad"
    shutil.copytree(art, bad)
    edit(bad)
    with pytest.raises(KilnError) as e:
        kiln.runtime.load(bad)
    return e.value


def test_vocab_edited_after_compile(arts, tmp_path):
    e = damaged(arts["lower"], tmp_path, lambda d: (d / "vocab.txt").write_text("[PAD]\nhello\n"))
    assert e.status == 3 and "vocab.txt: checksum" in str(e) and "tokenizer.vocab_crc32" in str(e)


def test_vocab_missing(arts, tmp_path):
    e = damaged(arts["lower"], tmp_path, lambda d: (d / "vocab.txt").unlink())
    assert e.status == 2 and "vocab.txt" in str(e)


def test_unknown_tokenizer_type(arts, tmp_path):
    def edit(d):
        j = json.loads((d / "model.json").read_text())
        j["tokenizer"]["type"] = "sentencepiece"
        (d / "model.json").write_text(json.dumps(j))
    e = damaged(arts["lower"], tmp_path, edit)
    assert e.status == 4 and "'sentencepiece' is not supported" in str(e)


# --- kiln compile --vocab checks ------------------------------------------------------------

def compile_with_vocab(onnx, tmp_path, lines):
    v = tmp_path / "v.txt"
    v.write_text("\n".join(lines) + "\n")
    proc = subprocess.run([str(KILN), "compile", str(onnx), "-o", str(tmp_path / "o"), "--vocab",
                           str(v)], capture_output=True, text=True, timeout=300)
    return proc


def test_compile_rejects_vocab_without_special_tokens(tiny_onnx, tmp_path):
    proc = compile_with_vocab(tiny_onnx, tmp_path, ["[PAD]", "[UNK]", "[SEP]", "hello"])
    assert proc.returncode == 1 and "special token '[CLS]' is missing" in proc.stderr


def test_compile_rejects_vocab_larger_than_the_embedding(tiny_onnx, tmp_path):
    lines = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + [f"w{i}" for i in range(TINY.vocab_size)]
    proc = compile_with_vocab(tiny_onnx, tmp_path, lines)
    assert proc.returncode == 1
    assert f"{TINY.vocab_size + 4} tokens, but the model's word embedding has " \
           f"{TINY.vocab_size} rows" in proc.stderr


def test_compile_api_passes_vocab_errors(tiny_onnx, tmp_path):
    with pytest.raises(CompileError, match="cannot open"):
        kiln.compile(str(tiny_onnx), output_dir=tmp_path / "o", vocab=tmp_path / "none.txt")
