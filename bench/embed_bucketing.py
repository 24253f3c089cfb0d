"""kiln_model_embed's length bucketing vs naive pad-to-longest batching, on a realistic mix of
text lengths (issue 13 item 3).

A MiniLM-L6-H384-sized BERT (random weights, seed 0, no hub) with a WordPiece tokenizer trained
here by `tokenizers`, compiled with mean pooling + L2 normalisation (max_seq 256). The texts mix
what a semantic-search service embeds: 60 % queries / titles (4-16 words), 30 % sentences and
short passages (20-60 words), 10 % long passages (100-250 words, truncated at 256 tokens), in
random order. Both ways embed the same texts in runs of --batch texts through m.embed:
  bucketed  the runtime's default: sorted by token count, each run padded to its own longest;
  naive     keep_order=True: the given order, each run padded to its longest (what a caller
            that batches its input as it comes gets).
The vectors are checked equal, then the two are timed interleaved (--rounds rounds, each runs
both once, order alternated); the table gives the median seconds, texts/s, the positions run
(padded tokens) and the naive / bucketed time ratio. Runs in the project venv:

  PY=$(scripts/setup_venv.sh | tail -1)
  KILN_BUILD_DIR=build PYTHONPATH=python $PY bench/embed_bucketing.py --threads 2 --rounds 5
"""
import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import transformers

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "tests" / "tokenizers"))
BUILD = Path(os.environ.get("KILN_BUILD_DIR", ROOT / "build"))
os.environ.setdefault("KILN_RUNTIME_LIB", str(BUILD / "runtime" / "libkiln_runtime.so"))

import kiln  # noqa: E402
import kiln.runtime  # noqa: E402
import test_tokenizer_json as tj  # noqa: E402  (WordPiece trained on a generated corpus)


def texts_mix(n, seed=0):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        r = rng.random()
        words = (rng.randint(4, 16) if r < 0.6 else rng.randint(20, 60) if r < 0.9
                 else rng.randint(100, 250))
        out.append(" ".join(rng.choice(tj.WORDS) for _ in range(words)))
    return out


def build(art_dir, max_seq):
    tok, _ = tj.wordpiece(lowercase=True)
    config = transformers.BertConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=384, num_hidden_layers=6,
        num_attention_heads=12, intermediate_size=1536, max_position_embeddings=512)
    torch.manual_seed(0)
    model = transformers.BertModel(config, add_pooling_layer=False).eval()
    path = Path(art_dir).parent / "tokenizer.json"
    tok.save(str(path))
    return kiln.compile(model, output_dir=art_dir, tokenizer=path, max_seq=max_seq,
                        pooling="mean", normalize=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--texts", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16, help="texts per run, both ways")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-seq", type=int, default=256)
    ap.add_argument("--artifact", help="reuse this compiled artifact directory")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="kiln-embed-bench-") as tmp:
        art = args.artifact or build(Path(tmp) / "art", args.max_seq)
        m = kiln.runtime.load(str(art), num_threads=args.threads)
        texts = texts_mix(args.texts)
        ways = {"bucketed": dict(max_batch=args.batch),
                "naive": dict(max_batch=args.batch, keep_order=True)}
        stats = {w: {} for w in ways}
        warnings.simplefilter("ignore", kiln.runtime.KilnWarning)  # the long passages
        vectors = {w: m.embed(texts, stats=stats[w], **kw) for w, kw in ways.items()}
        diff = float(np.abs(vectors["bucketed"] - vectors["naive"]).max())
        times = {w: [] for w in ways}
        for r in range(args.rounds):
            order = list(ways) if r % 2 == 0 else list(reversed(ways))
            for w in order:
                t0 = time.perf_counter()
                m.embed(texts, **ways[w])
                times[w].append(time.perf_counter() - t0)
        tokens = stats["bucketed"]["tokens"]
        print(f"{args.texts} texts, {tokens} tokens (after truncation at {args.max_seq}), "
              f"runs of {args.batch}, {args.threads} thread(s), {args.rounds} rounds; "
              f"max |bucketed - naive| = {diff:.2g}")
        print(f"{'way':10} {'median s':>9} {'texts/s':>8} {'positions':>10} {'padding':>8}")
        med = {w: statistics.median(t) for w, t in times.items()}
        for w in ways:
            pos = stats[w]["padded_tokens"]
            print(f"{w:10} {med[w]:9.3f} {args.texts / med[w]:8.1f} {pos:10d} "
                  f"{(pos - tokens) / pos:8.1%}")
        print(f"naive / bucketed time: {med['naive'] / med['bucketed']:.2f}x")


if __name__ == "__main__":
    main()
