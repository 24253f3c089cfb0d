"""tokenizer.json in the runtime (runtime/tokenizer_json.cpp) against the pinned `tokenizers`
package, token for token, through the C API (kiln_model_encode via kiln.runtime): BERT WordPiece
lower-case and cased, RoBERTa and GPT-2 byte-level BPE, XLM-R-style Unigram with Metaspace (one
with byte fallback, one with XLM-R's Precompiled nmt_nfkc normalizer from data/). The tokenizer files are trained here on a generated corpus (no model hub) and
packed into the runtime tests' toy artifact (tests/runtime/make_test_artifact.cpp), whose `seq`
symbol is raised so that only the truncation cases truncate.

Runs in the project venv (scripts/test.sh stage 3); KILN_BUILD_DIR names the build tree.
"""
import gzip
import json
import os
import random
import subprocess
import warnings
import zlib
from pathlib import Path

import pytest

tokenizers = pytest.importorskip("tokenizers")
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers  # noqa: E402
from tokenizers import processors, trainers  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("KILN_BUILD_DIR", ROOT / "build"))
os.environ.setdefault("KILN_RUNTIME_LIB", str(BUILD / "runtime" / "libkiln_runtime.so"))

import kiln.runtime  # noqa: E402
from kiln.runtime import KilnError, KilnWarning  # noqa: E402

SEQ_MAX = 4096  # the toy artifact's compiled maximum, raised from 16
SHORT_MAX = 16  # the truncation cases

WORDS = ("the quick brown fox jumps over lazy dog hello world tokenizer embedding search model "
         "running runner unbelievable believe able token tokens kiln board raspberry python "
         "numbers value values print return function class import data café naïve façade "
         "über straße ångström résumé déjà jalapeño piñata İstanbul Dvořák Łódź Tiếng Việt "
         "Ελληνικά Привет мир йод 中文 字符 测试 日本語 テキスト ガギグ 한국어 텍스트 "
         "emoji 😀 🚀 👍🏽 ❤️ 1 2 3 42 2024 3.14 1,000 50% $100 #tag @user http https www com "
         "org example path index html def if else for while x y z foo bar baz").split()
PUNCT = list(".,;:!?()[]{}<>'\"-_/\\@#$%^&*+=|~`")


def corpus(seed=0, lines=3000):
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        n = rng.randint(3, 16)
        words = [rng.choice(WORDS) for _ in range(n)]
        text = " ".join(words)
        if rng.random() < 0.3:
            text += rng.choice(PUNCT)
        out.append(text if rng.random() < 0.5 else text.capitalize())
    return out


def rand_word(rng, n, alphabet="abcdefghijklmnopqrstuvwxyzäöüéèßçñ"):
    return "".join(rng.choice(alphabet) for _ in range(n))


def strings(special):
    """Several hundred varied strings; `special` lists the tokenizer's special tokens."""
    fixed = [
        "", " ", "   ", "\t\n\r", "  leading and trailing  ", "multiple    spaces   here",
        "Hello, World!", "hello world", "HELLO WORLD", "café naïve Ångström", "CAFÉ NAÏVE",
        "cafe\u0301 nai\u0308ve", "El Niño façade déjà vu", "Straße Œuvre Ærø", "İstanbul ıi",
        "Łódź Dvořák Čapek Škoda", "Tiếng Việt có dấu", "Ελληνικά άέή", "Привет мир йод",
        "中文字符测试", "日本語のテキスト", "ガギグ", "한국어 텍스트", "混合mixed文本text",
        "!!!...???", "wait...what?!", "$100.00 #tag @user 50% a+b=c", "“quotes” — and ‘single’",
        "«guillemets» ¿qué? ¡sí!", "unbelievable believing", "un" + "believ" * 30, "a" * 100,
        "b" * 101 + " short", "x" * 600, "tab\tnew\nline\rreturn", "ctrl\x01\x07\x1b[0mchars\x7f",
        "zero\u200bwidth\ufeffbom\u00adsoft", "nbsp\u00a0em\u2003ideographic\u3000space",
        "line\u2028para\u2029sep", "emoji 😀 test 🚀 👍🏽 ❤️ 👨‍👩‍👧", "🚀🚀🚀", "3.14159 2,718 1e-10 0x1F",
        "2024-12-31T23:59:59Z", "https://example.com/path/index.html?q=kiln&lang=en#top",
        "mail me: someone@example.org", "def f(x): return x ** 2  # square",
        "for (int i = 0; i < n; ++i) { sum += a[i]; }", "if x != None and y >= 3:",
        "snake_case camelCase PascalCase kebab-case", "I'm you're we've they'll she'd it's",
        "'s 't 're 've 'm 'll 'd", "  \t  ", "a", "ab", "A.", "¹²³ ½ ⅔ Ⅻ", "١٢٣ ٤٥٦",
        "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ", "\u00e9\u0301", "x\u0300\u0301\u0302",
        # NFKC and grapheme clusters (the Precompiled normalizer)
        "ﬁ ﬂ ﬀ ①②③ ㍿ ㌔ ℌℍ ℕ № ™", "ｶﾞｷﾞ ﾊﾟ ｱｲｳ", "e\u0301 a\u0308 o\u0302\u0323 n\u0303",
        "\r\n crlf \r\nx\r", "Ⅷ ⅷ Å Ω K µ", "ﷺ ﷻ", "\u1100\u1161\u11a8 jamo",
        "👨\u200d👩\u200d👧 🇯🇵 👍🏽", "a\ufe0f 1\ufe0f\u20e3", "क्ष क्षि", "\u0301start",
        "\n\u0301 \t\u0308", "x\u200dy a\u200cb", "Ａ\u0301 ｅ\u0301", "\u3000\u3000wide",
        "a\U0002b820b a\U0002b920b a\U0002ceb0b",  # CJK Extension E, F edges
    ]
    rng = random.Random(1)
    out = list(fixed)
    for s in special:
        out += [s, f"before {s} after", f"x{s}y", f"  {s}  ", f"{s}{s}", f"{s}start", f"end{s}"]
    pool = WORDS + PUNCT + ["  ", "\t", "\n", "   "]
    for _ in range(320):
        n = rng.randint(1, 30)
        parts = []
        for _ in range(n):
            r = rng.random()
            if r < 0.6:
                parts.append(rng.choice(pool))
            elif r < 0.75:
                parts.append(rand_word(rng, rng.randint(1, 25)))
            elif r < 0.85:
                parts.append(str(rng.randint(0, 10 ** rng.randint(1, 12))))
            elif r < 0.9 and special:
                parts.append(rng.choice(special))
            else:
                parts.append(chr(rng.choice([rng.randint(0x20, 0x7E), rng.randint(0xA0, 0x24F),
                                             rng.randint(0x370, 0x4FF), rng.randint(0x4E00, 0x9FFF),
                                             rng.randint(0x1F300, 0x1F64F), rng.randint(0x3040, 0x30FF),
                                             rng.randint(0xAC00, 0xD7A3)])))
        sep = rng.choice([" ", "", " ", "  "])
        out.append(sep.join(parts))
    out.append(" ".join(rng.choice(WORDS) for _ in range(3000)))  # longer than SHORT_MAX and more
    out.append(rand_word(rng, 50000, "abcdefghij"))  # one 50,000-letter word (BPE: O(n log n))
    return out


# ---- the tokenizers under test ----

def wordpiece(lowercase):
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    t = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    t.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    t.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    t.train_from_iterator(corpus(), trainers.WordPieceTrainer(vocab_size=600,
                                                               special_tokens=specials))
    cls, sep = t.token_to_id("[CLS]"), t.token_to_id("[SEP]")
    t.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    t.decoder = decoders.WordPiece()
    return t, specials


def roberta_bpe():
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    t.train_from_iterator(corpus(), trainers.BpeTrainer(
        vocab_size=800, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    t.add_special_tokens([tokenizers.AddedToken("<mask>", lstrip=True, special=True)])
    t.post_processor = processors.RobertaProcessing(("</s>", t.token_to_id("</s>")),
                                                    ("<s>", t.token_to_id("<s>")))
    return t, specials + ["<mask>"]


def gpt2_bpe():
    """GPT-2 style: add_prefix_space, merges only (no special tokens around the text)."""
    t = Tokenizer(models.BPE(unk_token=None))
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    t.train_from_iterator(corpus(seed=2), trainers.BpeTrainer(
        vocab_size=500, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    t.post_processor = processors.ByteLevel(trim_offsets=True)
    return t, ["<|endoftext|>"]


def unigram(byte_fallback):
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    t = Tokenizer(models.Unigram())
    t.normalizer = normalizers.Sequence([normalizers.Replace(Regex(" {2,}"), " ")])
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    t.decoder = decoders.Metaspace()
    extra = [f"<0x{b:02X}>" for b in range(256)] if byte_fallback else []
    t.train_from_iterator(corpus(seed=3), trainers.UnigramTrainer(
        vocab_size=700, special_tokens=specials + extra, unk_token="<unk>"))
    if byte_fallback:  # the trainer does not set it on the model
        d = json.loads(t.to_str())
        d["model"]["byte_fallback"] = True
        t = Tokenizer.from_str(json.dumps(d))
    t.add_special_tokens([tokenizers.AddedToken("<mask>", lstrip=True, special=True)])
    t.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", t.token_to_id("<s>")), ("</s>", t.token_to_id("</s>"))])
    return t, specials + ["<mask>"]


def xlmr_precompiled():
    """XLM-R's normalizer: SentencePiece's nmt_nfkc charsmap, then runs of spaces to one."""
    charsmap = gzip.decompress((Path(__file__).parent / "data" / "nmt_nfkc.charsmap.gz")
                               .read_bytes())
    t, specials = unigram(False)
    t.normalizer = normalizers.Sequence([normalizers.Precompiled(charsmap),
                                         normalizers.Replace(Regex(" {2,}"), " ")])
    return t, specials


KINDS = {
    "bert_lower": lambda: wordpiece(True),
    "bert_cased": lambda: wordpiece(False),
    "roberta_bpe": roberta_bpe,
    "gpt2_bpe": gpt2_bpe,
    "xlmr_unigram": lambda: unigram(False),
    "unigram_byte_fallback": lambda: unigram(True),
    "xlmr_precompiled": xlmr_precompiled,
}


# ---- the toy artifact with a tokenizer.json ----

def toy_artifact(dest):
    maker = BUILD / "tests" / "runtime" / "kiln_make_test_artifact"
    model_so = BUILD / "tests" / "runtime" / "kiln_test_model.so"
    if not maker.exists():
        pytest.skip(f"{maker} is not built (build the runtime tests first)")
    subprocess.run([str(maker), str(dest), str(model_so)], check=True, capture_output=True)
    model = json.loads((dest / "model.json").read_text())
    for s in model["symbols"]:
        if s["name"] == "seq":
            s["max"] = SEQ_MAX
    # its two [batch, seq, 8] float arena tensors, planned per batch row for the larger seq
    row = SEQ_MAX * 8 * 4
    model["arena"]["bytes"] = 2 * row
    for t in model["tensors"]:
        if t.get("storage") == "arena":
            t["offset"] = row * (t["offset"] // 512)
    (dest / "model.json").write_text(json.dumps(model))
    return dest


def pack(dest, tok):
    """tokenizer.json + the model.json section, as `kiln compile --tokenizer` writes them."""
    text = tok.to_str()
    (dest / "tokenizer.json").write_text(text, encoding="utf-8")
    data = (dest / "tokenizer.json").read_bytes()
    ids = list(tok.get_vocab().values())
    model = json.loads((dest / "model.json").read_text())
    model["tokenizer"] = {"type": "tokenizer_json", "file": "tokenizer.json",
                          "model": json.loads(text)["model"]["type"],
                          "vocab_size": max(ids) + 1, "crc32": zlib.crc32(data)}
    (dest / "model.json").write_text(json.dumps(model))


@pytest.fixture(scope="module", params=sorted(KINDS))
def case(request, tmp_path_factory):
    tok, specials = KINDS[request.param]()
    dest = toy_artifact(tmp_path_factory.mktemp(request.param))
    pack(dest, tok)
    return request.param, tok, specials, kiln.runtime.load(str(dest))


def kiln_ids(m, text, max_length=0):
    enc = m.encode([text], max_length=max_length)
    return enc["input_ids"][0].tolist()


def test_token_for_token(case):
    name, tok, specials, m = case
    ref = Tokenizer.from_str(tok.to_str())
    ref.enable_truncation(SEQ_MAX)  # what kiln does at the compiled maximum
    texts = strings(specials)
    assert len(texts) > 300
    mismatches = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KilnWarning)
        for text in texts:
            want = ref.encode(text).ids
            got = kiln_ids(m, text)
            if got != want:
                mismatches.append((text, want, got))
    report = "\n".join(f"{t[:200]!r}:\n  tokenizers {w[:60]}\n  kiln       {g[:60]}"
                       for t, w, g in mismatches[:8])
    assert not mismatches, f"{name}: {len(mismatches)} of {len(texts)} texts differ\n{report}"


def test_truncation_warns_and_keeps_specials(case):
    name, tok, specials, m = case
    short = Tokenizer.from_str(tok.to_str())
    short.enable_truncation(SHORT_MAX)
    long_texts = [t for t in strings(specials) if len(tok.encode(t).ids) > SHORT_MAX]
    assert len(long_texts) >= 20
    for text in long_texts:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = kiln_ids(m, text, max_length=SHORT_MAX)
        assert got == short.encode(text).ids, text
        assert [str(w.message) for w in caught if issubclass(w.category, KilnWarning)] == [
            f"text 0 has {len(tok.encode(text).ids)} tokens, truncated to the maximum sequence "
            f"length {SHORT_MAX}"], text


def test_compiled_maximum(case):
    """max_length 0 truncates to the compiled maximum of input_ids' seq symbol."""
    name, tok, specials, m = case
    text = " ".join(WORDS) * 60
    short = Tokenizer.from_str(tok.to_str())
    short.enable_truncation(SEQ_MAX)
    assert len(tok.encode(text).ids) > SEQ_MAX
    with pytest.warns(KilnWarning, match=f"truncated to the maximum sequence length {SEQ_MAX}"):
        assert kiln_ids(m, text) == short.encode(text).ids


def test_padding_and_mask(case):
    name, tok, specials, m = case
    texts = ["hello world", "", "a much longer text with quite a few more words in it", "中文"]
    enc = m.encode(texts)
    want = [tok.encode(t).ids for t in texts]
    longest = max(map(len, want))
    assert enc["input_ids"].shape == (4, longest)
    pad = json.loads(tok.to_str())
    pad_id = next((a["id"] for a in pad["added_tokens"] if a["content"] in ("[PAD]", "<pad>")), 0)
    for row, ids, mask in zip(enc["input_ids"].tolist(), want, enc["attention_mask"].tolist()):
        assert row == ids + [pad_id] * (longest - len(ids))
        assert mask == [1] * len(ids) + [0] * (longest - len(ids))
    assert not enc["token_type_ids"].any()


def test_unsupported_component_is_named(tmp_path):
    tok, _ = wordpiece(True)
    d = json.loads(tok.to_str())
    d["normalizer"] = {"type": "NFKC"}
    bad = Tokenizer.from_str(json.dumps(d))
    dest = toy_artifact(tmp_path / "a")
    pack(dest, bad)
    with pytest.raises(KilnError, match=r"tokenizer\.json: normalizer: normalizer type 'NFKC' is "
                                        r"not supported"):
        kiln.runtime.load(str(dest))
