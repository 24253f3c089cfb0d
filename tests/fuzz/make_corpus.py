"""Writes the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/) from the test models.

usage: make_corpus.py BUILD_DIR TOKENIZERS_DIR OUT_DIR [ARTIFACT_DIR]
  BUILD_DIR       a host build (scripts/build.sh: build/) whose tests made their models:
                  tests/compiler/frontend/models/*.onnx and tests/runtime/cli_artifact/
  TOKENIZERS_DIR  a pytest base temp of tests/tokenizers (pytest --basetemp=DIR), for the
                  tokenizer.json files that the `tokenizers` package wrote
  ARTIFACT_DIR    optional: a model compiled by `kiln compile`, for a real model.json and
                  model.params (the committed ones: corpus/onnx_import/tiny_bert_op14.onnx
                  compiled with --max-seq 8)
The corpus is committed (a few hundred KB); run this again when the formats change.
"""
import json
import os
import shutil
import sys
import zlib

import numpy as np

BUILD, TOKENIZERS, OUT = sys.argv[1:4]
COMPILED = sys.argv[4] if len(sys.argv) > 4 else None
SEP = b"\n\x00KILN-FUZZ-PART\x00\n"  # tests/fuzz/fuzz_util.h kPartSeparator
TEXTS = [b"Hello, WORLD! caf\xc3\xa9 na\xc3\xafve \xe4\xbd\xa0\xe5\xa5\xbd 12,345",
         b"unaffable [MASK] <mask> \xf0\x9f\x98\x80 \xff\xfe tab\there", b""]
VOCAB = b"\n".join([b"[PAD]", b"[UNK]", b"[CLS]", b"[SEP]", b"[MASK]", b"hello", b",", b"world",
                    b"!", b"un", b"##aff", b"##able", b"caf", b"##e", b"\xe4\xbd\xa0", b"12",
                    b"##3", b".", b"the"]) + b"\n"


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


models = os.path.join(BUILD, "tests/compiler/frontend/models")
for name in ["typed.onnx", "opset18.onnx", "gelu_none.onnx", "gelu_tanh.onnx", "unknown_dims.onnx",
             "subgraph.onnx"]:
    put("onnx_import", os.path.basename(name), open(os.path.join(models, name), "rb").read())

# The frontend tests' BERT exports (make_models.py) at the smallest size that keeps every pattern
# (embeddings, attention with mask, GELU, LayerNorm, pooler): a few KB of weights, so the fuzzer
# spends its time in the importer and passes, not in copying initializers.
import torch  # noqa: E402
from kiln.models import bert  # noqa: E402
TINY = bert.BertConfig(vocab_size=8, hidden_size=4, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=8, max_position_embeddings=8, type_vocab_size=2)
NAMES = ["input_ids", "attention_mask", "token_type_ids"]
tiny = bert.build_model(TINY, seed=0, init="random")
for opset, names, fold in [(11, NAMES, True), (14, NAMES, True), (17, NAMES, True),
                           (13, NAMES[:2], False)]:
    path = os.path.join(OUT, "onnx_import", f"tiny_bert_op{opset}{'' if fold else '_nofold'}.onnx")
    inputs = bert.make_inputs(TINY, 2, 4)
    with torch.no_grad():
        torch.onnx.export(tiny, tuple(torch.from_numpy(inputs[n]) for n in names), path,
                          opset_version=opset, input_names=names,
                          output_names=["last_hidden_state", "pooler_output"],
                          dynamic_axes={n: {0: "batch_size", 1: "sequence"} for n in names},
                          do_constant_folding=fold, keep_initializers_as_inputs=not fold)

art = os.path.join(BUILD, "tests/runtime/cli_artifact")
for name in ["input_ids.npy", "fortran.npy", "token_type_ids.npy"]:
    put("npy", name, open(os.path.join(art, name), "rb").read())
for name, a in [("f32_2d.npy", np.arange(6, dtype=np.float32).reshape(2, 3)),
                ("i8.npy", np.array([-1, 2], dtype=np.int8)), ("bool.npy", np.array([True])),
                ("scalar.npy", np.float32(1.5)), ("empty.npy", np.zeros((0, 3), np.int32)),
                ("u1_3d.npy", np.zeros((1, 2, 2), np.uint8))]:
    path = os.path.join(OUT, "npy", name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, a)
v2 = open(os.path.join(OUT, "npy", "f32_2d.npy"), "rb").read()
header_len = v2[8] | v2[9] << 8
put("npy", "v2.npy", b"\x93NUMPY\x02\x00" + header_len.to_bytes(4, "little") + v2[10:])

model_json = open(os.path.join(art, "model.json"), "rb").read()
params = open(os.path.join(art, "model.params"), "rb").read()
put("model_json", "fixture.json", model_json)
put("params", "fixture.params", params)

# The artifact target dlopens its own copy of the fixture library: no checksum of another build.
m = json.loads(model_json)
m.pop("library_bytes", None)
m.pop("library_crc32", None)
put("artifact", "fixture", json.dumps(m).encode() + SEP + params)
wp = dict(m, tokenizer={"type": "bert_wordpiece", "vocab": "vocab.txt",
                        "vocab_size": VOCAB.count(b"\n"), "vocab_crc32": zlib.crc32(VOCAB),
                        "lower_case": True})
put("artifact", "wordpiece", json.dumps(wp).encode() + SEP + params + SEP + VOCAB)
put("model_json", "wordpiece.json", json.dumps(wp, indent=1).encode())

put("vocab", "vocab", VOCAB + SEP + SEP.join(TEXTS))
put("vocab", "vocab_crlf", VOCAB.replace(b"\n", b"\r\n") + SEP + TEXTS[0])

for sub in sorted(os.listdir(TOKENIZERS)):
    path = os.path.join(TOKENIZERS, sub, "tokenizer.json")
    if not sub.endswith("0") or not os.path.exists(path) or os.path.getsize(path) > 20 << 10:
        continue
    tj = open(path, "rb").read()
    put("tokenizer_json", sub[:-1], tj + SEP + SEP.join(TEXTS))
    if sub.startswith("bert_lower"):
        spec = json.loads(tj)
        vocab_size = max(spec["model"]["vocab"].values()) + 1
        t = dict(m, tokenizer={"type": "tokenizer_json", "file": "tokenizer.json",
                               "model": "WordPiece", "vocab_size": vocab_size,
                               "crc32": zlib.crc32(tj)})
        put("artifact", "tokenizer_json", json.dumps(t).encode() + SEP + params + SEP + tj)

if COMPILED:
    put("model_json", "compiled.json", open(os.path.join(COMPILED, "model.json"), "rb").read())
    put("params", "compiled.params", open(os.path.join(COMPILED, "model.params"), "rb").read())
