"""kiln vs llama.cpp on the same BERT: embedding latency and accuracy (issues 12 and 13).

One BERT (transformers' BertModel built as tests/quant/test_int8_outliers.py builds it: random
weights, seed 0, no constant tensors; --outliers adds that test's outlier channels) with a
WordPiece tokenizer of its own (vocab.txt of special tokens + generated words, saved as
BertTokenizerFast) and a sentence-transformers mean-pooling config, saved as a Hugging Face
directory (--config base: BERT-base shape; minilm: all-MiniLM-L6-v2's). From it:
  - llama.cpp: GGUF F32 and Q8_0 by the sdist's own convert_hf_to_gguf.py (--outtype f32 / q8_0),
    run by the binaries bench/setup_llama.sh builds;
  - kiln: the dynamo ONNX export of the same weights, compiled FP32 and --quantize int8, with the
    tokenizer (--tokenizer tokenizer.json) and mean pooling + L2 normalisation in the artifact.

Latency: `kiln bench` vs `llama-bench -embd 1 -p SEQ -n 0`: one forward pass of SEQ random token
ids at batch 1, pooled embedding out, tokenization excluded on both sides, model load and warm-up
excluded; same threads. Interleaved: each round runs every (seq, threads, system) once in its own
process, the order rotated per round; medians over rounds of each process's median.
Accuracy: text in on both sides (the same vocabulary; token ids are checked equal), mean-pooled
normalised embeddings of kiln FP32/INT8 (m.embed) and llama.cpp F32/Q8_0 (llama-embedding
--pooling mean --embd-normalize 2) against torch FP32 on the HF tokenizer's ids: cosine mean/worst.

  PY=$(scripts/setup_venv.sh | tail -1); LLAMA=$(bench/setup_llama.sh | tail -1)
  $PY bench/llama_compare.py --config minilm --llama $LLAMA --kiln-build build
  $PY bench/llama_compare.py --config minilm --outliers --skip-latency
  $PY bench/llama_compare.py --config base --rounds 5 --json out/llama/base.json
The converter runs in the same Python (transformers 5 works with it) with the sdist's gguf-py.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "tests" / "quant"))  # the outlier recipe, the embedding metric
from embedding_metrics import agreement  # noqa: E402
LLAMA_VERSION = "0.3.36"  # bench/setup_llama.sh VERSION
CONFIGS = {  # BertConfig overrides; vocab 30522, 512 positions, 2 token types as bert-base
    "base": dict(hidden_size=768, num_hidden_layers=12, intermediate_size=3072),
    "minilm": dict(hidden_size=384, num_hidden_layers=6, intermediate_size=1536),  # MiniLM-L6
}
VOCAB = 30522
SYSTEMS = ("kiln-int8", "llama-q8_0", "kiln-fp32", "llama-f32")
PAIRS = (("kiln-int8", "llama-q8_0"), ("kiln-fp32", "llama-f32"))

# The converter hashes the tokenizer's output on a fixed text to recognise a known BPE
# pre-tokenizer; a vocabulary of our own has no known hash. For WordPiece ("bert" tokenizer model)
# llama.cpp ignores the pre-tokenizer name (only BPE vocabularies have one), so any name is right.
CONVERT_SHIM = """
import sys
src = sys.argv.pop(1)
sys.path[:0] = [src, src + "/gguf-py"]
from conversion import base
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "default"
import convert_hf_to_gguf
sys.argv[0] = "convert_hf_to_gguf.py"
convert_hf_to_gguf.main()
"""


def make_vocab(n, seed=0):
    """bert-base-uncased's layout of special ids ([PAD] 0, [unusedN] 1-99, [UNK] 100, [CLS] 101,
    [SEP] 102, [MASK] 103), the letters and digits with their ## continuations (so any lower-case
    ASCII word tokenizes), then made-up syllable words and ## pieces up to n entries."""
    specials = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]",
                                                                   "[MASK]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-")
    vocab = specials + chars + ["##" + c for c in chars]
    rng = np.random.default_rng(seed)
    cons, vowels = "bcdfghjklmnprstvwz", "aeiou"
    seen = set(vocab)
    while len(vocab) < n:
        word = "".join(rng.choice(list(cons)) + rng.choice(list(vowels))
                       for _ in range(rng.integers(1, 4)))
        if rng.random() < 0.25:
            word = "##" + word
        if word not in seen:
            seen.add(word)
            vocab.append(word)
    return vocab


def make_sentences(vocab, count, seed=1):
    """Lower-case sentences of 3-90 vocabulary words, some glued to a ## piece (split by
    WordPiece into two tokens) and some with punctuation."""
    rng = np.random.default_rng(seed)
    words = [w for w in vocab[104:] if not w.startswith("##") and len(w) > 1]
    pieces = [w[2:] for w in vocab[104:] if w.startswith("##") and len(w) > 3]
    out = []
    for i in range(count):
        n = int(rng.integers(3, 90 if i % 3 == 0 else 25))
        toks = []
        for _ in range(n):
            w = str(rng.choice(words))
            if rng.random() < 0.15:
                w += str(rng.choice(pieces))
            toks.append(w)
            if rng.random() < 0.08:
                toks.append(str(rng.choice([",", ".", "!", "?"])))
        out.append(" ".join(toks))
    return out


class LastHidden(torch.nn.Module):
    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                         token_type_ids=token_type_ids).last_hidden_state


def outlier_recipe(config):
    """tests/quant/test_int8_outliers.py's build(outliers): BertModel with HF init, seed 0, every
    constant tensor perturbed (real checkpoints have none), and with outliers=True its outlier
    channels and FFN neurons; its shape constants set to this config's."""
    import test_int8_outliers as recipe
    cfg = CONFIGS[config]
    recipe.HIDDEN, recipe.LAYERS, recipe.FFN = (cfg["hidden_size"], cfg["num_hidden_layers"],
                                                cfg["intermediate_size"])
    recipe.VOCAB, recipe.MAX_POS = VOCAB, 512
    return recipe


def prepare_hf(config, out, outliers):
    """out/hf: BertModel (safetensors), tokenizer files and sentence-transformers pooling config."""
    hf = out / "hf"
    if (hf / "tokenizer.json").exists():
        return hf
    import transformers as t
    hf.mkdir(parents=True, exist_ok=True)
    model = outlier_recipe(config).build(outliers)
    model.save_pretrained(hf)
    (hf / "vocab.txt").write_text("\n".join(make_vocab(VOCAB)) + "\n")
    # transformers 5 ignores vocab_file=: build the WordPiece tokenizer with `tokenizers`
    from tokenizers import BertWordPieceTokenizer
    wordpiece = BertWordPieceTokenizer(str(hf / "vocab.txt"), lowercase=True)
    t.BertTokenizerFast(tokenizer_object=wordpiece._tokenizer, do_lower_case=True,
                        unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                        cls_token="[CLS]", mask_token="[MASK]").save_pretrained(hf)
    (hf / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"}]))
    (hf / "1_Pooling").mkdir(exist_ok=True)
    (hf / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": CONFIGS[config]["hidden_size"],
         "pooling_mode_mean_tokens": True}))
    return hf


def load_torch(hf):
    import transformers as t
    model = t.BertModel.from_pretrained(hf, add_pooling_layer=False)
    model.eval()
    return model


def convert_gguf(hf, llama, out, outtype):
    path = out / f"model-{outtype}.gguf"
    if not path.exists():
        env = dict(os.environ, NO_LOCAL_GGUF="")
        proc = subprocess.run([sys.executable, "-c", CONVERT_SHIM, str(llama / "src"), str(hf),
                               "--outfile", str(path), "--outtype", outtype],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"convert_hf_to_gguf {outtype}: {proc.stderr.strip()[-2000:]}")
    return path


def export_onnx(hf, out):
    path = out / "model.onnx"
    if path.exists():
        return path
    module = LastHidden(load_torch(hf)).eval()
    ids = torch.randint(104, VOCAB, (2, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # padding in the example keeps the mask general
    b, s = torch.export.Dim("batch", min=1, max=1024), torch.export.Dim("seq", min=1, max=512)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with torch.no_grad():
        torch.onnx.export(module, (ids, mask, ids * 0), str(path), dynamo=True, input_names=names,
                          output_names=["last_hidden_state"],
                          dynamic_shapes={k: {0: b, 1: s} for k in names})
    return path


def compile_kiln(kiln, onnx, hf, art, *extra):
    if (art / "model.so").exists() and (art / "model.so").stat().st_mtime > max(
            onnx.stat().st_mtime, kiln.stat().st_mtime):
        return art
    subprocess.run([str(kiln), "compile", str(onnx), "-o", str(art), "--max-seq", "512",
                    "--tokenizer", str(hf / "tokenizer.json"), "--pooling", "mean", "--normalize",
                    *extra], check=True, capture_output=True, text=True)
    return art


# --- accuracy --------------------------------------------------------------------------------

def torch_embeddings(hf, texts):
    import transformers as t
    tok = t.BertTokenizerFast.from_pretrained(hf)
    model = load_torch(hf)
    ids, out = [], []
    with torch.no_grad():
        for text in texts:
            enc = tok(text, return_tensors="pt")
            hidden = model(**enc).last_hidden_state[0].double()
            e = hidden.mean(0)
            out.append((e / e.norm()).numpy())
            ids.append(enc["input_ids"][0].tolist())
    return np.stack(out), ids


def kiln_embeddings(art, texts, threads):
    import kiln.runtime
    m = kiln.runtime.load(str(art), num_threads=threads)
    enc = m.encode(texts)
    ids = [[int(i) for i, k in zip(r, mk) if k] for r, mk in zip(enc["input_ids"],
                                                                 enc["attention_mask"])]
    return np.asarray(m.embed(texts), dtype=np.float64), ids


def llama_embeddings(llama, gguf, texts, threads):
    """llama-embedding on all texts (one per line) with mean pooling and L2 normalisation."""
    proc = subprocess.run([str(llama / "build/bin/llama-embedding"), "-m", str(gguf), "-t",
                           str(threads), "--pooling", "mean", "--embd-normalize", "2",
                           "--embd-output-format", "json", "-c", "4096", "-b", "4096",
                           "-p", "\n".join(texts)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"llama-embedding: {proc.stderr.strip()[-1500:]}")
    # the JSON is printed through llama.cpp's log (so no --log-disable), maybe after other lines
    start = proc.stdout.rindex("{", 0, proc.stdout.index('"object": "list"'))
    data = json.JSONDecoder().raw_decode(proc.stdout[start:])[0]["data"]
    return np.asarray([d["embedding"] for d in sorted(data, key=lambda d: d["index"])])


def llama_token_ids(llama, gguf, text):
    proc = subprocess.run([str(llama / "build/bin/llama-tokenize"), "-m", str(gguf), "-p", text,
                           "--ids", "--log-disable"], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def accuracy(args, hf, arts, ggufs):
    # cosine mean / worst and nearest-neighbour agreement of L2-normalised rows, as in the test
    texts = make_sentences(make_vocab(VOCAB), args.sentences)
    ref, ref_ids = torch_embeddings(hf, texts)
    lengths = [len(i) for i in ref_ids]
    print(f"accuracy: {len(texts)} sentences, {min(lengths)}-{max(lengths)} tokens "
          f"(median {int(np.median(lengths))}), reference torch FP32 on the HF tokenizer's ids",
          flush=True)
    result = {"sentences": len(texts), "tokens": lengths}
    for name, art in arts.items():
        emb, ids = kiln_embeddings(art, texts, max(args.threads))
        same = sum(a == b for a, b in zip(ids, ref_ids))
        result[name] = dict(zip(("cos_mean", "cos_worst", "neighbours"), agreement(ref, emb)),
                            same_ids=same)
    for name, gguf in ggufs.items():
        ids = [llama_token_ids(args.llama, gguf, t) for t in texts]
        same = sum(a == b for a, b in zip(ids, ref_ids))
        emb = llama_embeddings(args.llama, gguf, texts, max(args.threads))
        result[name] = dict(zip(("cos_mean", "cos_worst", "neighbours"), agreement(ref, emb)),
                            same_ids=same)
    print(f"{'system':<12} {'cos mean':>10} {'cos worst':>10} {'neighbours':>10}  "
          "token ids = HF tokenizer's")
    for name in SYSTEMS:
        r = result[name]
        print(f"{name:<12} {r['cos_mean']:>10.6f} {r['cos_worst']:>10.6f} "
              f"{100 * r['neighbours']:>9.1f}%  {r['same_ids']}/{len(texts)}")
    return result


# --- latency ---------------------------------------------------------------------------------

def time_one(args, system, target, seq, threads):
    """One process: median ms of one pooled-embedding forward pass of `seq` tokens, batch 1."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), KILN_NUM_THREADS=str(threads))
    if system.startswith("kiln"):
        cmd = [str(args.kiln), "bench", str(target), "--batch", "1", "--seq", str(seq),
               "--threads", str(threads), "--runs", str(args.runs), "--warmup",
               str(args.warmup), "--json"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"{system}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
        return json.loads(lines[-1])["median_ms"]
    # llama-bench: one untimed warm-up, then -r runs of llama_decode on seq random ids (BOS
    # first) with the cache cleared between runs; with -embd 1 the context pools (mean, from the
    # GGUF) and outputs the sequence embedding
    cmd = [str(args.llama / "build/bin/llama-bench"), "-m", str(target), "-p", str(seq), "-n",
           "0", "-t", str(threads), "-embd", "1", "-r", str(args.runs), "-b", "512", "-ub", "512",
           "-o", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{system}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
    samples = json.loads(proc.stdout)[0]["samples_ns"]
    return statistics.median(samples) / 1e6


def latency(args, targets):
    seqs, threads = args.seq, args.threads
    times = {(s, t, k): [] for s in seqs for t in threads for k in SYSTEMS}
    load0 = os.getloadavg()
    for r in range(args.rounds):
        order = SYSTEMS[r % len(SYSTEMS):] + SYSTEMS[:r % len(SYSTEMS)]
        for s in seqs:
            for t in threads:
                for k in order:
                    times[s, t, k].append(time_one(args, k, targets[k], s, t))
        print(f"round {r + 1}/{args.rounds} done, load average {os.getloadavg()[0]:.1f}",
              flush=True)
    load1 = os.getloadavg()
    med = {key: statistics.median(v) for key, v in times.items()}
    print(f"\nlatency, batch 1, ms (median over {args.rounds} rounds of each process's median of "
          f"{args.runs} runs); load average {load0[0]:.1f} at start, {load1[0]:.1f} at end")
    print(f"{'seq':>4} {'thr':>3} " + " ".join(f"{k:>11}" for k in SYSTEMS)
          + "  int8/q8_0  fp32/f32")
    for s in seqs:
        for t in threads:
            cells = " ".join(f"{med[s, t, k]:>11.2f}" for k in SYSTEMS)
            ratios = "  ".join(f"{med[s, t, a] / med[s, t, b]:>9.2f}" for a, b in PAIRS)
            print(f"{s:>4} {t:>3} {cells}  {ratios}")
    return {"load_average": [load0[0], load1[0]],
            "runs": [{"seq": s, "threads": t, "system": k, "median_ms": med[s, t, k],
                      "round_medians_ms": times[s, t, k]}
                     for s in seqs for t in threads for k in SYSTEMS]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="base")
    ap.add_argument("--outliers", action="store_true",
                    help="the outlier channels of tests/quant/test_int8_outliers.py (issue 12)")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "llama")
    ap.add_argument("--kiln-build", type=Path, default=ROOT / "build")
    ap.add_argument("--llama", type=Path,
                    default=Path.home() / ".cache" / "kiln" / f"llama.cpp-{LLAMA_VERSION}",
                    help="bench/setup_llama.sh's directory (src/ and build/bin/)")
    ap.add_argument("--seq", type=lambda s: [int(x) for x in s.split(",")], default=[16, 128])
    ap.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--sentences", type=int, default=30)
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    args.kiln = (args.kiln_build / "tools" / "kiln" / "kiln").resolve()
    os.environ.setdefault("KILN_RUNTIME_LIB",
                          str((args.kiln_build / "runtime" / "libkiln_runtime.so").resolve()))
    for need in (args.kiln, args.llama / "build/bin/llama-bench",
                 args.llama / "build/bin/llama-embedding",
                 args.llama / "src/convert_hf_to_gguf.py"):
        if not need.exists():
            ap.error(f"{need} not found (kiln: --kiln-build; llama.cpp: bench/setup_llama.sh)")

    out = args.out / (args.config + ("-outliers" if args.outliers else ""))
    t0 = time.perf_counter()
    hf = prepare_hf(args.config, out, args.outliers)
    ggufs = {"llama-q8_0": convert_gguf(hf, args.llama, out, "q8_0"),
             "llama-f32": convert_gguf(hf, args.llama, out, "f32")}
    onnx = export_onnx(hf, out)
    arts = {"kiln-fp32": compile_kiln(args.kiln, onnx, hf, out / "kiln_fp32"),
            "kiln-int8": compile_kiln(args.kiln, onnx, hf, out / "kiln_int8", "--quantize",
                                      "int8")}
    print(f"{args.config}: HF dir, GGUF f32 + q8_0, ONNX, kiln FP32 + INT8 ready "
          f"({time.perf_counter() - t0:.0f} s) in {out}", flush=True)
    result = {"config": args.config, "outliers": args.outliers,
              "llama_cpp_python": LLAMA_VERSION, "kiln": str(args.kiln)}
    if not args.skip_accuracy:
        result["accuracy"] = accuracy(args, hf, arts, ggufs)
    if not args.skip_latency:
        result["latency"] = latency(args, {**arts, **ggufs})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
