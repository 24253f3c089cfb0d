"""Writes the ONNX models the frontend tests import (run at build time by CMake).

usage: make_models.py OUT_DIR   (PYTHONPATH must contain the repo's python/ folder)

- bert_op{11,14,17}.onnx: a tiny BERT (python/kiln/models/bert.py) exported by torch.onnx with
  dynamic axes named batch_size/sequence, plus bert_io/*: inputs and torch's outputs at a shape
  different from the traced one, so the tests can check numerics after binding the symbols.
- bert_long_positions.onnx: 600 position embeddings (seq max must be 512).
- ext/: bert_op14 with external data; ext_short/ (data file truncated), ext_missing/ (no file).
- typed.onnx: initializers in float_data/double_data/int32_data/int64_data, Constant value_*
  attributes, Gemm with transB/alpha/beta, Slice with negative and INT64_MAX bounds.
- opset18.onnx: ReduceMean/Squeeze/Unsqueeze axes as inputs, Split.
- module_paths.onnx: node names and "pkg.torch.onnx.name_scopes" metadata as the dynamo exporter
  writes them (NodeProto field 9, written as raw bytes: Debian's onnx 1.12 predates it).
- bad inputs: unsupported_op, custom_domain, subgraph, bad_dtype, truncated, garbage.
"""
import os
import shutil
import sys

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

from kiln.models import bert

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)

CFG = bert.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=64, type_vocab_size=2)
NAMES = ["input_ids", "attention_mask", "token_type_ids"]


def export(model, path, opset):
    inputs = bert.make_inputs(model.config, 2, 8)
    args = tuple(torch.from_numpy(inputs[n]) for n in NAMES)
    dyn = {n: {0: "batch_size", 1: "sequence"} for n in NAMES}
    dyn["last_hidden_state"] = {0: "batch_size", 1: "sequence"}
    dyn["pooler_output"] = {0: "batch_size"}
    with torch.no_grad():
        torch.onnx.export(model, args, path, opset_version=opset, input_names=NAMES,
                          output_names=["last_hidden_state", "pooler_output"], dynamic_axes=dyn,
                          do_constant_folding=True)


model = bert.build_model(CFG, seed=0, init="random")
for opset in (11, 14, 17):
    export(model, os.path.join(OUT, f"bert_op{opset}.onnx"), opset)

io = os.path.join(OUT, "bert_io")
os.makedirs(io, exist_ok=True)
inputs = bert.make_inputs(CFG, 2, 5)
outs = bert.run_torch(model, inputs, NAMES)
for n in NAMES:
    inputs[n].astype(np.int64).tofile(os.path.join(io, n + ".i64"))
outs[0].astype(np.float32).tofile(os.path.join(io, "last_hidden_state.f32"))
outs[1].astype(np.float32).tofile(os.path.join(io, "pooler_output.f32"))

# bert_nofold_op13.onnx: no exporter constant folding (Constant nodes, Shape chains for every
# Linear), initializers also listed as graph inputs, no token_type_ids (the buffer is sliced and
# expanded: Expand/Where/Equal on shapes).
NOTT = ["input_ids", "attention_mask"]
with torch.no_grad():
    torch.onnx.export(model, tuple(torch.from_numpy(bert.make_inputs(CFG, 2, 8)[n]) for n in NOTT),
                      os.path.join(OUT, "bert_nofold_op13.onnx"), opset_version=13,
                      input_names=NOTT, output_names=["last_hidden_state", "pooler_output"],
                      dynamic_axes={n: {0: "batch_size", 1: "sequence"} for n in NOTT},
                      do_constant_folding=False, keep_initializers_as_inputs=True)
io_nott = os.path.join(OUT, "bert_io_nott")
os.makedirs(io_nott, exist_ok=True)
outs = bert.run_torch(model, inputs, NOTT)
for n in NOTT:
    inputs[n].astype(np.int64).tofile(os.path.join(io_nott, n + ".i64"))
outs[0].astype(np.float32).tofile(os.path.join(io_nott, "last_hidden_state.f32"))
outs[1].astype(np.float32).tofile(os.path.join(io_nott, "pooler_output.f32"))

# attn/: tiny BERTs whose every layer fuse_attention must turn into one Attention: hidden/heads
# 64/4, 60/5, 36/3 (head sizes 16, 12, 12), finfo.min and -10000 masks, opsets 13, 14, 17; each
# with inputs and torch's outputs at batch 2, seq 5 (row 1 padded) in attn/<tag>_io/.
for hidden, heads in ((64, 4), (60, 5), (36, 3)):
    for mask_value in ("finfo", "-10000"):
        cfg = bert.BertConfig(vocab_size=100, hidden_size=hidden, num_hidden_layers=2,
                              num_attention_heads=heads, intermediate_size=2 * hidden,
                              max_position_embeddings=64, mask_value=mask_value)
        m = bert.build_model(cfg, seed=1, init="random")
        tag = f"h{hidden}_{mask_value.lstrip('-')}"
        os.makedirs(os.path.join(OUT, "attn", tag + "_io"), exist_ok=True)
        for opset in (13, 14, 17):
            export(m, os.path.join(OUT, "attn", f"{tag}_op{opset}.onnx"), opset)
        attn_in = bert.make_inputs(cfg, 2, 5)
        attn_out = bert.run_torch(m, attn_in, NAMES)
        for n in NAMES:
            attn_in[n].astype(np.int64).tofile(os.path.join(OUT, "attn", tag + "_io", n + ".i64"))
        for n, o in zip(("last_hidden_state", "pooler_output"), attn_out):
            o.astype(np.float32).tofile(os.path.join(OUT, "attn", tag + "_io", n + ".f32"))

long_cfg = bert.BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=16, max_position_embeddings=600)
export(bert.build_model(long_cfg), os.path.join(OUT, "bert_long_positions.onnx"), 14)

# External data: every initializer in one file next to the model.
m = onnx.load(os.path.join(OUT, "bert_op14.onnx"))
for d in ("ext", "ext_short", "ext_missing"):
    shutil.rmtree(os.path.join(OUT, d), ignore_errors=True)
    os.makedirs(os.path.join(OUT, d))
    onnx.save_model(onnx.load(os.path.join(OUT, "bert_op14.onnx")), os.path.join(OUT, d, "model.onnx"),
                    save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.data", size_threshold=0)
data = os.path.join(OUT, "ext_short", "weights.data")
size = os.path.getsize(data)
with open(data, "r+b") as f:
    f.truncate(size // 2)
os.remove(os.path.join(OUT, "ext_missing", "weights.data"))


def save(graph, name, opset=14):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="kiln-tests")
    onnx.save_model(model, os.path.join(OUT, name))


def with_metadata(node, key, value):
    """Appends a metadata_props entry (field 9, length-delimited) as an unknown field."""
    entry = onnx.StringStringEntryProto(key=key, value=value).SerializeToString()
    def varint(n):
        out = b""
        while True:
            out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
            n >>= 7
            if not n:
                return out
    node.MergeFromString(bytes([9 << 3 | 2]) + varint(len(entry)) + entry)
    return node


def tensor_typed(name, dtype, dims, values):
    t = TensorProto()
    t.name = name
    t.data_type = dtype
    t.dims.extend(dims)
    field = {TensorProto.FLOAT: t.float_data, TensorProto.DOUBLE: t.double_data,
             TensorProto.INT32: t.int32_data, TensorProto.INT64: t.int64_data}[dtype]
    field.extend(values)
    return t


# typed.onnx: y = Gemm(x, w^T, bias; alpha=2, beta=0.5) * scale (double -> Cast float)
#   z = Slice(y, starts=[-2], ends=[INT64_MAX], axes=[1]) + Cast(i32 offsets)
w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10.0     # [N=4, K=3], used transposed
bias = np.array([1.0, -1.0, 0.5, 0.25], dtype=np.float32)
nodes = [
    helper.make_node("Gemm", ["x", "w", "bias"], ["g"], transB=1, alpha=2.0, beta=0.5, name="gemm"),
    helper.make_node("Cast", ["scale"], ["scale_f"], to=TensorProto.FLOAT, name="cast_scale"),
    helper.make_node("Mul", ["g", "scale_f"], ["y"], name="mul"),
    helper.make_node("Constant", [], ["starts"], value_ints=[-2], name="c_starts"),
    helper.make_node("Constant", [], ["ends"], value_ints=[2**63 - 1], name="c_ends"),
    helper.make_node("Constant", [], ["one"], value_int=1, name="c_one"),
    helper.make_node("Unsqueeze", ["one", "axes0"], ["axes"], name="unsq"),
    helper.make_node("Slice", ["y", "starts", "ends", "axes"], ["ys"], name="slice"),
    helper.make_node("Cast", ["offs"], ["offs_f"], to=TensorProto.FLOAT, name="cast_offs"),
    helper.make_node("Add", ["ys", "offs_f"], ["z0"], name="add"),
    helper.make_node("Constant", [], ["half"], value_float=0.5, name="c_half"),
    helper.make_node("Mul", ["z0", "half"], ["z1"], name="mul_half"),
    helper.make_node("Identity", ["z1"], ["z"], name="identity"),
]
graph = helper.make_graph(
    nodes, "typed",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", 3])],
    [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
    [tensor_typed("w", TensorProto.FLOAT, [4, 3], w.flatten().tolist()),
     tensor_typed("bias", TensorProto.FLOAT, [4], bias.tolist()),
     tensor_typed("scale", TensorProto.DOUBLE, [], [3.0]),
     tensor_typed("offs", TensorProto.INT32, [2], [10, -20]),
     tensor_typed("axes0", TensorProto.INT64, [1], [0])])
save(graph, "typed.onnx", 13)
x = np.array([[1, 2, 3], [-1, 0.5, 2]], dtype=np.float32)
z = ((2.0 * x @ w.T + 0.5 * bias) * 3.0)[:, -2:] + np.array([10, -20], np.float32)
x.tofile(os.path.join(OUT, "typed_x.f32"))
(z * 0.5).astype(np.float32).tofile(os.path.join(OUT, "typed_z.f32"))

# opset18.onnx: axes as inputs everywhere, Split into two halves of the last dim.
nodes = [
    helper.make_node("Unsqueeze", ["x", "ax0"], ["u"], name="unsqueeze"),          # [1, b, s, 4]
    helper.make_node("Squeeze", ["u", "ax0"], ["sq"], name="squeeze"),             # [b, s, 4]
    helper.make_node("ReduceMean", ["sq", "axm1"], ["m"], keepdims=1, name="mean"),  # [b, s, 1]
    helper.make_node("Sub", ["sq", "m"], ["d"], name="sub"),
    helper.make_node("Split", ["d", "split"], ["s0", "s1"], axis=-1, name="split"),
    helper.make_node("Mul", ["s0", "s1"], ["y"], name="mul"),
]
graph = helper.make_graph(
    nodes, "opset18",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    [helper.make_tensor("ax0", TensorProto.INT64, [1], [0]),
     helper.make_tensor("axm1", TensorProto.INT64, [1], [-1]),
     helper.make_tensor("split", TensorProto.INT64, [2], [2, 2])])
save(graph, "opset18.onnx", 18)

# unknown_dims.onnx: a dim with neither dim_value nor dim_param becomes a fresh symbol.
unknown = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", None, 4])
unknown.type.tensor_type.shape.dim[1].Clear()
save(helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "unknown", [unknown],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]),
     "unknown_dims.onnx")

# gelu_op20.onnx: the ONNX-20 Gelu op, exact and tanh flavours.
for approx in ("none", "tanh"):
    save(helper.make_graph([helper.make_node("Gelu", ["x"], ["y"], name="gelu", approximate=approx)],
                           "gelu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 4])],
                           [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]),
         f"gelu_{approx}.onnx", 20)

# einsum.onnx: equations the importer lowers (compiler/frontend/onnx/einsum.cpp): a projection by a
# constant weight, attention scores over [b, s, heads, d], a rotary-style outer product.
vi = helper.make_tensor_value_info
save(helper.make_graph(
    [helper.make_node("Einsum", ["x", "w"], ["proj"], equation="bsh,hd->bsd", name="proj"),
     helper.make_node("Einsum", ["q", "k"], ["scores"], equation="bqhd,bkhd->bhqk", name="scores"),
     helper.make_node("Einsum", ["t", "f"], ["outer"], equation="i,j->ij", name="outer")],
    "einsum",
    [vi("x", TensorProto.FLOAT, ["b", "s", 4]), vi("q", TensorProto.FLOAT, ["b", "s", 2, 3]),
     vi("k", TensorProto.FLOAT, ["b", "s", 2, 3]), vi("t", TensorProto.FLOAT, ["s"]),
     vi("f", TensorProto.FLOAT, [5])],
    [vi("proj", TensorProto.FLOAT, None), vi("scores", TensorProto.FLOAT, None),
     vi("outer", TensorProto.FLOAT, None)],
    [helper.make_tensor("w", TensorProto.FLOAT, [4, 6], np.ones(24, np.float32).tolist())]),
    "einsum.onnx", 13)
save(helper.make_graph([helper.make_node("Einsum", ["x"], ["y"], equation="ii->i", name="diag")],
                       "g", [vi("x", TensorProto.FLOAT, [4, 4])], [vi("y", TensorProto.FLOAT, None)]),
     "einsum_diagonal.onnx", 13)

# Bad inputs.
x_info = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 4])]
y_info = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
save(helper.make_graph([helper.make_node("Foo", ["x"], ["y"], name="foo_node")], "g", x_info, y_info),
     "unsupported_op.onnx")
custom = helper.make_model(
    helper.make_graph([helper.make_node("FusedThing", ["x"], ["y"], name="fused", domain="com.example")],
                      "g", x_info, y_info),
    opset_imports=[helper.make_opsetid("", 14), helper.make_opsetid("com.example", 3)])
onnx.save_model(custom, os.path.join(OUT, "custom_domain.onnx"))
branch = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "b", [],
                           [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
save(helper.make_graph(
    [helper.make_node("Constant", [], ["c"], value=helper.make_tensor("cv", TensorProto.BOOL, [], [1])),
     helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch, name="if_node")],
    "g", x_info, y_info), "subgraph.onnx")
save(helper.make_graph([helper.make_node("Add", ["x", "k"], ["y"], name="add")], "g", x_info, y_info,
                       [helper.make_tensor("k", TensorProto.COMPLEX64, [1], [1 + 2j])]),
     "bad_dtype.onnx")
with open(os.path.join(OUT, "bert_op14.onnx"), "rb") as f:
    blob = f.read()
with open(os.path.join(OUT, "truncated.onnx"), "wb") as f:
    f.write(blob[: len(blob) // 3])
with open(os.path.join(OUT, "garbage.onnx"), "wb") as f:
    f.write(b"\xff\xff\xff\xff this is not an onnx model \x00\x01")
with open(os.path.join(OUT, "stamp"), "w") as f:
    f.write("ok\n")

SCOPES = "['', 'encoder', 'encoder.layer.0', 'encoder.layer.0.output', " \
         "'encoder.layer.0.output.dense', 'linear']"
w = helper.make_tensor("val_7", TensorProto.FLOAT, [4, 4], np.eye(4, dtype=np.float32).ravel())
save(helper.make_graph(
    [with_metadata(helper.make_node("MatMul", ["x", "val_7"], ["h"], name="node_MatMul_1"),
                   "pkg.torch.onnx.name_scopes", SCOPES),
     with_metadata(helper.make_node("MatMul", ["h", "val_7"], ["h2"], name="node_MatMul_2"),
                   "pkg.torch.onnx.name_scopes", SCOPES),
     with_metadata(helper.make_node("Relu", ["h2"], ["r"], name="node_Relu_3"),
                   "namespace", "something else"),
     with_metadata(helper.make_node("Relu", ["r"], ["y"], name="node_Relu_4"),
                   "pkg.torch.onnx.name_scopes", "['', 'relu']")],
    "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], [w]),
    "module_paths.onnx")
