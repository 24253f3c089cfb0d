"""Writes nmt_nfkc.charsmap.gz: SentencePiece's precompiled charsmap for its `nmt_nfkc` rule (NFKC
plus SentencePiece's whitespace / control rules; the one XLM-R's and multilingual-e5's
tokenizer.json carry as a Precompiled normalizer). Not run by the suite: it needs the
`sentencepiece` package, which the project venv does not have.

    pip install --target /tmp/sp sentencepiece==0.2.2
    PYTHONPATH=/tmp/sp python3 tests/tokenizers/data/make_charsmap.py
"""
import gzip
import tempfile
from pathlib import Path

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

with tempfile.TemporaryDirectory() as tmp:
    lines = ["hello world café ﬁ ① ｆｕｌｌ", "the quick brown fox"] * 200
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=f"{tmp}/m",
                                   vocab_size=26, normalization_rule_name="nmt_nfkc",
                                   model_type="unigram", minloglevel=3)
    proto = pb.ModelProto()
    proto.ParseFromString(Path(f"{tmp}/m.model").read_bytes())
out = Path(__file__).with_name("nmt_nfkc.charsmap.gz")
out.write_bytes(gzip.compress(proto.normalizer_spec.precompiled_charsmap, 9, mtime=0))
