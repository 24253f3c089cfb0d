"""A straightforward BERT tokenizer in Python, after google-research/bert tokenization.py
(BasicTokenizer + WordpieceTokenizer), to check the runtime's C++ tokenizer against."""
import unicodedata

CJK_RANGES = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
              (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]


def is_whitespace(ch):
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def is_control(ch):
    if ch in "\t\n\r":
        return False
    # The original tests startswith("C"), which includes unassigned code points (Cn); kiln keeps
    # those (documented in runtime/tokenizer.h), so the tests use assigned characters only.
    return unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs")


def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(cp):
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def basic_tokenize(text, lower_case):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = "".join(" " if is_whitespace(c) else c for c in text
                   if not (ord(c) == 0 or ord(c) == 0xFFFD or is_control(c)))
    text = "".join(f" {c} " if is_cjk(ord(c)) else c for c in text)
    out = []
    for token in text.split():
        if lower_case:
            token = token.lower()
            token = "".join(c for c in unicodedata.normalize("NFD", token)
                            if unicodedata.category(c) != "Mn")
        word = ""
        for c in token:
            if is_punctuation(c):
                if word:
                    out.append(word)
                out.append(c)
                word = ""
            else:
                word += c
        if word:
            out.append(word)
    return " ".join(out).split()


def wordpiece(word, vocab, unk="[UNK]", max_chars=100):
    if len(word) > max_chars:
        return [unk]
    pieces, start = [], 0
    while start < len(word):
        end, cur = len(word), None
        while start < end:
            sub = ("##" if start > 0 else "") + word[start:end]
            if sub in vocab:
                cur = sub
                break
            end -= 1
        if cur is None:
            return [unk]
        pieces.append(cur)
        start = end
    return pieces


def tokenize(text, vocab, lower_case):
    return [p for w in basic_tokenize(text, lower_case) for p in wordpiece(w, vocab)]


def encode(text, vocab, lower_case, max_len):
    """[CLS] pieces [SEP] ids, truncated to max_len keeping [SEP]; and the untruncated length."""
    ids = [vocab["[CLS]"]] + [vocab[p] for p in tokenize(text, vocab, lower_case)] + \
        [vocab["[SEP]"]]
    full = len(ids)
    if len(ids) > max_len:
        ids = ids[:max_len - 1] + [vocab["[SEP]"]]
    return ids, full
