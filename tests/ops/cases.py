"""The op harness's case list: small ONNX graphs, each exercising one op (or, for kiln's fused ops,
the pattern a pass turns into it), with symbolic batch / seq dims, broadcasting and attributes.

Each case is checked against `onnx.reference.ReferenceEvaluator` on the same graph, on every
configuration of test_op_harness.py (GEMM variants, targets, FP32 and INT8).

How to add an op (after its registry entry in compiler/ir/ops.cpp and, for an elementwise op, its
functor in kernels/kiln/kernels/elementwise.h):
  1. add a case below that uses it: `unary("Softplus", lo=-4, hi=4)` for a plain unary op, or a
     `Case(...)` with its nodes, inputs and outputs;
  2. run `pytest tests/ops` (the harness fails while the registry holds an op no case covers).

Conventions: symbolic dims are only "batch" and "seq" (the harness feeds several (batch, seq)
pairs, with seq >= MIN_SEQ); names are local to a case (the harness prefixes them when it merges
cases into one model); outputs are float or int64 (bools are cast), so the comparison is numeric.
"""
from dataclasses import dataclass, field

import numpy as np
from onnx import TensorProto, helper, numpy_helper

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
MIN_SEQ = 3


@dataclass
class In:
    """A graph input: float inputs are uniform in [lo, hi), int64 inputs integers in [lo, hi)."""
    name: str
    dtype: int
    shape: list
    lo: float = -2.0
    hi: float = 2.0


@dataclass
class Case:
    name: str
    nodes: list
    inputs: list
    outputs: list  # [(name, dtype, shape)]
    inits: list = field(default_factory=list)
    opset: int = 13
    tol: float = 1e-5  # max |kiln - reference| in FP32 configurations
    # INT8 configurations: max |diff| / max |reference| for cases whose GEMMs or embedding
    # tables get quantized (None: the case is not quantized, `tol` holds).
    rel_tol_int8: float = None
    fused: tuple = ()  # kiln ops the compiled artifact must contain (the pattern fired)


def const(name, value, dtype=None):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


rng = np.random.RandomState(7)


def weight(name, *shape, scale=0.5):
    return const(name, (rng.standard_normal(shape) * scale).astype(np.float32))


def node(op, ins, outs, **attrs):
    return helper.make_node(op, ins, outs, **attrs)


BS = ["batch", "seq"]


def unary(op, lo=-3.0, hi=3.0, opset=13, tol=1e-5, **attrs):
    return Case(f"{op}", [node(op, ["x"], ["y"], **attrs)], [In("x", F, BS + [5], lo, hi)],
                [("y", F, BS + [5])], opset=opset, tol=tol)


def binary(op, a_shape, b_shape, out_shape, lo=-2.0, hi=2.0, name=None, tol=1e-5):
    return Case(name or op, [node(op, ["a", "b"], ["y"])],
                [In("a", F, a_shape, lo, hi), In("b", F, b_shape, lo, hi)], [("y", F, out_shape)],
                tol=tol)


def compare(op):
    return Case(op, [node(op, ["a", "b"], ["m"]), node("Cast", ["m"], ["y"], to=F)],
                [In("a", F, BS + [4], -1, 1), In("b", F, [4], -1, 1)], [("y", F, BS + [4])])


def int_arith(op):
    # int64 arithmetic at run time (position ids, mask sizes): exact.
    return Case(f"{op}_int64", [node(op, ["a", "b"], ["y"])],
                [In("a", I64, BS, 1, 9), In("b", I64, ["seq"], 1, 5)], [("y", I64, BS)])


def softmax(axis, opset=13):
    return Case(f"Softmax_axis{axis}_opset{opset}", [node("Softmax", ["x"], ["y"], axis=axis)],
                [In("x", F, ["batch", 3, "seq", 4], -4, 4)], [("y", F, ["batch", 3, "seq", 4])],
                opset=opset)


def reduce_mean(axes, keepdims, opset=13):
    shape = ["batch", "seq", 6]
    picked = {a % 3 for a in axes}
    out = [1 if i in picked else d for i, d in enumerate(shape)] if keepdims else \
        [d for i, d in enumerate(shape) if i not in picked]
    if opset >= 18:
        n = node("ReduceMean", ["x", "axes"], ["y"], keepdims=keepdims)
        inits = [const("axes", np.array(axes, np.int64))]
    else:
        n = node("ReduceMean", ["x"], ["y"], axes=axes, keepdims=keepdims)
        inits = []
    return Case(f"ReduceMean_{'_'.join(map(str, axes))}_keep{keepdims}_opset{opset}", [n],
                [In("x", F, shape)], [("y", F, out)], inits, opset=opset)


def gemm_case(trans_a, trans_b):
    a_shape, b_shape = ([7, 5] if trans_a else [5, 7]), ([3, 7] if trans_b else [7, 3])
    return Case(f"Gemm_tA{trans_a}_tB{trans_b}",
                [node("Gemm", ["a", "b", "c"], ["y"], alpha=0.5, beta=2.0, transA=trans_a,
                      transB=trans_b)],
                [In("a", F, a_shape), In("b", F, b_shape)], [("y", F, [5, 3])],
                [weight("c", 3)], tol=2e-5)


def dense(gelu, residual, layer_norm):
    """MatMul(x, W) + b [-> Gelu] [+ r] [-> LayerNormalization]: one Dense (fuse_dense,
    fuse_dense_layer_norm). K = 20, N = 24: partial column tiles on every variant."""
    nodes = [node("MatMul", ["x", "w"], ["mm"]), node("Add", ["mm", "b"], ["y0"])]
    inputs, last = [In("x", F, BS + [20])], "y0"
    if gelu:
        nodes.append(node("Gelu", [last], ["y1"]))
        last = "y1"
    if residual:
        inputs.append(In("r", F, BS + [24]))
        nodes.append(node("Add", [last, "r"], ["y2"]))
        last = "y2"
    inits = [weight("w", 20, 24), weight("b", 24)]
    if layer_norm:
        nodes.append(node("LayerNormalization", [last, "g", "beta"], ["y3"], epsilon=1e-5))
        inits += [weight("g", 24), weight("beta", 24)]
        last = "y3"
    nodes.append(node("Identity", [last], ["y"]))
    name = "Dense" + "_gelu" * gelu + "_residual" * residual + "_layernorm" * layer_norm
    return Case(name, nodes, inputs, [("y", F, BS + [24])], inits, opset=20, tol=2e-5,
                rel_tol_int8=0.05, fused=("Dense",))


def attention(with_mask, heads=2, hd=8):
    """BERT's self-attention as torch exports it -> Attention (fuse_attention), then fuse_qkv and
    fuse_dense merge the projections into one Dense."""
    h = heads * hd
    nodes, inits = [], [const("split_shape", np.array([0, 0, heads, hd], np.int64)),
                        const("merge_shape", np.array([0, 0, h], np.int64)),
                        const("scale", np.float32(np.sqrt(hd)))]
    for p, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
        inits += [weight(f"w{p}", h, h), weight(f"b{p}", h)]
        nodes += [node("MatMul", ["x", f"w{p}"], [f"{p}m"]),
                  node("Add", [f"{p}m", f"b{p}"], [f"{p}0"]),
                  node("Reshape", [f"{p}0", "split_shape"], [f"{p}1"]),
                  node("Transpose", [f"{p}1"], [f"{p}h"], perm=perm)]
    nodes += [node("MatMul", ["qh", "kh"], ["s0"]), node("Div", ["s0", "scale"], ["s1"])]
    inputs, scores = [In("x", F, BS + [h])], "s1"
    if with_mask:  # the extended mask: (1 - mask[:, None, None, :]) * finfo.min
        inputs.append(In("mask", I64, BS, 0, 2))
        inits += [const("one", np.float32(1)), const("neg", np.float32(-3.4028234663852886e38)),
                  const("axes12", np.array([1, 2], np.int64))]
        nodes += [node("Unsqueeze", ["mask", "axes12"], ["m0"]),
                  node("Cast", ["m0"], ["m1"], to=F),
                  node("Sub", ["one", "m1"], ["m2"]),
                  node("Mul", ["m2", "neg"], ["m3"]),
                  node("Add", ["s1", "m3"], ["s2"])]
        scores = "s2"
    nodes += [node("Softmax", [scores], ["p"], axis=-1),
              node("MatMul", ["p", "vh"], ["c0"]),
              node("Transpose", ["c0"], ["c1"], perm=[0, 2, 1, 3]),
              node("Reshape", ["c1", "merge_shape"], ["y"])]
    return Case("Attention" + "_mask" * with_mask, nodes, inputs, [("y", F, BS + [h])], inits,
                tol=2e-5, rel_tol_int8=0.05, fused=("Attention", "Dense"))


def embeddings():
    """BERT's embeddings: word + position (sliced to seq) + token type, LayerNorm ->
    EmbeddingLayerNorm (fuse_embed_layer_norm)."""
    h, vocab, max_pos = 12, 30, 16
    nodes = [node("Gather", ["word", "ids"], ["we"]),
             node("Shape", ["ids"], ["shape"]),
             node("Gather", ["shape", "one"], ["seq_len"], axis=0),
             node("Unsqueeze", ["seq_len", "zero_axis"], ["end"]),
             node("Slice", ["pos_ids", "start", "end", "one_axis"], ["pids"]),
             node("Gather", ["pos", "pids"], ["pe"]),
             node("Gather", ["tt", "tt_ids"], ["te"]),
             node("Add", ["we", "pe"], ["e0"]),
             node("Add", ["e0", "te"], ["e1"]),
             node("LayerNormalization", ["e1", "g", "b"], ["y"], epsilon=1e-12)]
    inits = [weight("word", vocab, h), weight("pos", max_pos, h), weight("tt", 2, h),
             weight("g", h), weight("b", h),
             const("pos_ids", np.arange(max_pos, dtype=np.int64)[None]),
             const("one", np.int64(1)), const("zero_axis", np.array([0], np.int64)),
             const("start", np.array([0], np.int64)), const("one_axis", np.array([1], np.int64))]
    return Case("EmbeddingLayerNorm", nodes,
                [In("ids", I64, BS, 0, vocab), In("tt_ids", I64, BS, 0, 2)],
                [("y", F, BS + [h])], inits, opset=17, tol=2e-5, rel_tol_int8=0.05,
                fused=("EmbeddingLayerNorm",))


def shape_chain():
    # Range(0, Shape(x)[1], 1) + a symbolic scalar used as data: Range and SymbolicTensor run.
    nodes = [node("Shape", ["x"], ["s"]),
             node("Gather", ["s", "one"], ["n"], axis=0),
             node("Range", ["zero", "n", "one"], ["r"]),
             node("Cast", ["r"], ["rf"], to=F),
             node("Mul", ["n", "two"], ["n2"]),
             node("Cast", ["n2"], ["nf"], to=F),
             node("Add", ["x", "rf"], ["x1"]),
             node("Add", ["x1", "nf"], ["y"])]
    return Case("Shape_Gather_Range_SymbolicTensor", nodes, [In("x", F, BS)], [("y", F, BS)],
                [const("zero", np.int64(0)), const("one", np.int64(1)), const("two", np.int64(2))],
                fused=("Range", "SymbolicTensor"))


def views():
    nodes = [node("Expand", ["x", "shape"], ["e"]),
             node("Unsqueeze", ["e", "axes"], ["u"]),
             node("Squeeze", ["u", "axes"], ["s"]),
             node("Flatten", ["s"], ["f"], axis=1),
             node("Relu", ["f"], ["y"])]
    return Case("Expand_Unsqueeze_Squeeze_Flatten", nodes, [In("x", F, [1, 5])],
                [("y", F, [3, 5])],
                [const("shape", np.array([3, 1], np.int64)), const("axes", np.array([-1], np.int64))])


def reshape_transpose():
    nodes = [node("Reshape", ["x", "shape"], ["r"]),
             node("Transpose", ["r"], ["y"], perm=[0, 2, 1, 3])]
    return Case("Reshape_Transpose", nodes, [In("x", F, BS + [12])],
                [("y", F, ["batch", 3, "seq", 4])], [const("shape", np.array([0, 0, 3, -1], np.int64))])


def gather_cases():
    data = weight("data", 10, 4)
    return [
        Case("Gather_embedding", [node("Gather", ["data", "ids"], ["y"], axis=0)],
             [In("ids", I64, BS, 0, 10)], [("y", F, BS + [4])], [data], rel_tol_int8=0.02),
        Case("Gather_negative_index", [node("Gather", ["x", "idx"], ["y"], axis=1)],
             [In("x", F, BS + [4])], [("y", F, ["batch", 4])], [const("idx", np.int64(-1))]),
        Case("Gather_runtime_indices_axis2", [node("Gather", ["x", "idx"], ["y"], axis=2)],
             [In("x", F, BS + [6]), In("idx", I64, [3], -6, 6)], [("y", F, BS + [3])]),
    ]


def slice_case():
    return Case("Slice_negative_steps",
                [node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"])],
                [In("x", F, [4, 9, 6])], [("y", F, [4, 3, 3])], [
                    const("starts", np.array([-1, 1], np.int64)),
                    const("ends", np.array([-7, 100], np.int64)),
                    const("axes", np.array([1, -1], np.int64)),
                    const("steps", np.array([-2, 2], np.int64))])


def where_case():
    nodes = [node("Equal", ["ids", "zero"], ["m"]), node("Where", ["m", "x", "y"], ["out"])]
    return Case("Equal_Where", nodes,
                [In("ids", I64, BS, 0, 3), In("x", F, BS), In("y", F, ["seq"])],
                [("out", F, BS)], [const("zero", np.int64(0))])


def not_case():
    nodes = [node("Greater", ["a", "zero"], ["m"]), node("Not", ["m"], ["n"]),
             node("Cast", ["n"], ["y"], to=I64)]
    return Case("Not", nodes, [In("a", F, BS + [4])], [("y", I64, BS + [4])],
                [const("zero", np.float32(0))])


def constant_of_shape():
    nodes = [node("Shape", ["x"], ["s"]),
             node("ConstantOfShape", ["s"], ["c"],
                  value=numpy_helper.from_array(np.array([2.5], np.float32))),
             node("Mul", ["x", "c"], ["y"])]
    return Case("ConstantOfShape", nodes, [In("x", F, BS)], [("y", F, BS)])


def split_case():
    # Split with sizes (opset 13 input): simplify turns it into Slices.
    nodes = [node("Split", ["x", "sizes"], ["a", "b"], axis=-1),
             node("Sub", ["a", "b"], ["y"])]
    return Case("Split", nodes, [In("x", F, BS + [8])], [("y", F, BS + [4])],
                [const("sizes", np.array([4, 4], np.int64))])


def pass_through():
    nodes = [node("Identity", ["x"], ["i"]), node("Dropout", ["i"], ["d"]),
             node("Constant", [], ["c"], value=numpy_helper.from_array(np.float32(3), "c")),
             node("Mul", ["d", "c"], ["y"])]
    return Case("Identity_Dropout_Constant", nodes, [In("x", F, BS)], [("y", F, BS)])


def matmul_batched():
    return Case("MatMul_batched_broadcast", [node("MatMul", ["a", "b"], ["y"])],
                [In("a", F, ["batch", 3, "seq", 7]), In("b", F, [3, 7, 4])],
                [("y", F, ["batch", 3, "seq", 4])], tol=2e-5)


def cast_case():
    return Case("Cast_int64_to_float", [node("Cast", ["ids"], ["y"], to=F)],
                [In("ids", I64, BS, -5, 5)], [("y", F, BS)])


def concat_case():
    return Case("Concat_negative_axis", [node("Concat", ["a", "b"], ["y"], axis=-1)],
                [In("a", F, BS + [3]), In("b", F, BS + [4])], [("y", F, BS + [7])])


def layer_norm_standalone():
    return Case("LayerNormalization", [node("LayerNormalization", ["x", "g", "b"], ["y"],
                                             axis=-1, epsilon=1e-5)],
                [In("x", F, BS + [8])], [("y", F, BS + [8])], [weight("g", 8), weight("b", 8)],
                opset=17)


def int_unary(op):
    return Case(f"{op}_int64", [node(op, ["x"], ["y"])], [In("x", I64, BS + [5], -9, 9)],
                [("y", I64, BS + [5])])


def logic(op):
    # bool x bool -> bool, from comparisons of the inputs; broadcast [4] against [batch, seq, 4].
    nodes = [node("Greater", ["a", "zero"], ["p"]), node("Less", ["b", "zero"], ["q"]),
             node(op, ["p", "q"], ["m"]), node("Cast", ["m"], ["y"], to=I64)]
    return Case(op, nodes, [In("a", F, BS + [4]), In("b", F, [4])], [("y", I64, BS + [4])],
                [const("zero", np.float32(0))])


def predicates():
    # Log of negatives is NaN, Exp(100 x) overflows to +inf for x > 0.9: both predicates see
    # true and false elements. Softmax's masked-row NaN is what IsNaN guards in SDPA exports.
    nodes = [node("Log", ["x"], ["l"]), node("IsNaN", ["l"], ["n"]),
             node("Mul", ["x", "hundred"], ["h"]), node("Exp", ["h"], ["e"]),
             node("IsInf", ["e"], ["i"]), node("Cast", ["n"], ["nf"], to=F),
             node("Cast", ["i"], ["inf"], to=F), node("Add", ["nf", "inf"], ["y"])]
    return Case("IsNaN_IsInf", nodes, [In("x", F, BS + [6])], [("y", F, BS + [6])],
                [const("hundred", np.float32(100))], opset=13)


def min_max(op):
    # Variadic (three inputs, broadcast): imported as a chain of two-input nodes.
    return Case(f"{op}_variadic", [node(op, ["a", "b", "c"], ["y"])],
                [In("a", F, BS + [4]), In("b", F, [4]), In("c", F, ["seq", 1])],
                [("y", F, BS + [4])])


def min_max_int(op):
    # Max(seq - 5, 1)-style size arithmetic on int64 at run time.
    return Case(f"{op}_int64", [node(op, ["a", "b"], ["y"])],
                [In("a", I64, BS, -5, 5), In("b", I64, ["seq"], -5, 5)], [("y", I64, BS)])


def mod_cases():
    return [
        Case("Mod_int64", [node("Mod", ["a", "b"], ["y"])],
             [In("a", I64, BS, -20, 20), In("b", I64, ["seq"], 1, 6)], [("y", I64, BS)]),
        Case("Mod_int64_negative_divisor", [node("Mod", ["a", "b"], ["y"])],
             [In("a", I64, BS, -20, 20)], [("y", I64, BS)], [const("b", np.int64(-3))]),
        Case("FMod_float", [node("Mod", ["a", "b"], ["y"], fmod=1)],
             [In("a", F, BS + [4], -9, 9), In("b", F, [4], 1, 3)], [("y", F, BS + [4])],
             fused=("FMod",)),
    ]


def clip_cases():
    return [
        Case("Clip_min_max_inputs", [node("Clip", ["x", "lo", "hi"], ["y"])],
             [In("x", F, BS + [5])], [("y", F, BS + [5])],
             [const("lo", np.float32(-0.5)), const("hi", np.float32(1.0))]),
        Case("Clip_max_only_runtime", [node("Clip", ["x", "", "hi"], ["y"])],
             [In("x", F, BS + [5]), In("hi", F, [], 0, 1)], [("y", F, BS + [5])]),
        Case("Clip_int64_min_only", [node("Clip", ["x", "lo"], ["y"])],
             [In("x", I64, BS, -9, 9)], [("y", I64, BS)], [const("lo", np.int64(0))]),
        Case("Clip_opset6_attributes", [node("Clip", ["x"], ["y"], min=-1.0, max=0.5)],
             [In("x", F, BS + [5])], [("y", F, BS + [5])], opset=6),
    ]


def reduce_case(op, axes, keepdims, opset, axes_input, lo=-2.0, hi=2.0, dtype=F, tol=1e-5):
    shape = ["batch", "seq", 6]
    picked = {a % 3 for a in axes} if axes else {0, 1, 2}
    out = [1 if i in picked else d for i, d in enumerate(shape)] if keepdims else \
        [d for i, d in enumerate(shape) if i not in picked]
    inits = []
    if axes_input and axes:
        n = node(op, ["x", "axes"], ["y"], keepdims=keepdims)
        inits = [const("axes", np.array(axes, np.int64))]
    elif axes:
        n = node(op, ["x"], ["y"], axes=axes, keepdims=keepdims)
    else:
        n = node(op, ["x"], ["y"], keepdims=keepdims)
    kind = "int64" if dtype == I64 else "axes_input" if axes_input else "axes_attr"
    return Case(f"{op}_{'_'.join(map(str, axes)) or 'all'}_keep{keepdims}_{kind}_opset{opset}",
                [n], [In("x", dtype, shape, lo, hi)], [("y", dtype, out)], inits, opset=opset,
                tol=tol)


def mean_pooling():
    # sentence-transformers' mean pooling: sum(x * mask) / clamp(sum(mask), 1e-9) over seq.
    nodes = [node("Unsqueeze", ["mask", "axes_last"], ["m0"]), node("Cast", ["m0"], ["m1"], to=F),
             node("Mul", ["x", "m1"], ["xm"]),
             node("ReduceSum", ["xm", "axes_seq"], ["s"], keepdims=0),
             node("ReduceSum", ["m1", "axes_seq"], ["c0"], keepdims=0),
             node("Clip", ["c0", "tiny"], ["c"]), node("Div", ["s", "c"], ["y"])]
    return Case("ReduceSum_mean_pooling", nodes,
                [In("x", F, BS + [6]), In("mask", I64, BS, 0, 2)], [("y", F, ["batch", 6])],
                [const("axes_last", np.array([-1], np.int64)),
                 const("axes_seq", np.array([1], np.int64)), const("tiny", np.float32(1e-9))])


def position_ids():
    # RoBERTa / XLM-R / MPNet: ids -> (ids != pad) -> cumsum over seq * mask + pad (CumSum on
    # int64 at run time).
    nodes = [node("Equal", ["ids", "pad"], ["eq"]), node("Not", ["eq"], ["ne"]),
             node("Cast", ["ne"], ["m"], to=I64), node("CumSum", ["m", "one"], ["c"]),
             node("Mul", ["c", "m"], ["cm"]), node("Add", ["cm", "pad"], ["y"])]
    return Case("CumSum_position_ids", nodes, [In("ids", I64, BS, 0, 4)], [("y", I64, BS)],
                [const("pad", np.int64(1)), const("one", np.int64(1))])


def cumsum_float():
    return Case("CumSum_float_exclusive_reverse",
                [node("CumSum", ["x", "axis"], ["y"], exclusive=1, reverse=1)],
                [In("x", F, BS + [5])], [("y", F, BS + [5])], [const("axis", np.int64(-2))])


def gather_elements():
    # torch.gather(x, 1, idx) (RoBERTa's position ids, pooling): idx [batch, 2, 3] into [batch, seq, 3].
    return Case("GatherElements_axis1", [node("GatherElements", ["x", "idx"], ["y"], axis=1)],
                [In("x", F, BS + [3]), In("idx", I64, ["batch", 2, 3], -MIN_SEQ, MIN_SEQ)],
                [("y", F, ["batch", 2, 3])])


def gather_nd():
    # dynamo's x[arange(b), last_index] (batch_dims=1), and a batch_dims=0 row pick.
    return [
        Case("GatherND_batch_dims1", [node("GatherND", ["x", "idx"], ["y"], batch_dims=1)],
             [In("x", F, BS + [4]), In("idx", I64, ["batch", 1], 0, MIN_SEQ)],
             [("y", F, ["batch", 4])]),
        Case("GatherND_batch_dims0", [node("GatherND", ["x", "idx"], ["y"])],
             [In("x", F, [5, 3, 4]), In("idx", I64, ["seq", 2], -3, 3)],
             [("y", F, ["seq", 4])]),
    ]


def pad_cases():
    return [
        # MobileBERT's trigram: pad seq by (0, 1) and (1, 0) with zeros.
        Case("Pad_constant_seq", [node("Pad", ["x", "pads", "v"], ["y"])],
             [In("x", F, BS + [4])], [("y", F, ["batch", "seq", 6])],
             [const("pads", np.array([0, 0, 1, 0, 0, 1], np.int64)), const("v", np.float32(0.5))]),
        Case("Pad_edge_axes", [node("Pad", ["x", "pads", "", "axes"], ["y"], mode="edge")],
             [In("x", F, BS + [4])], [("y", F, ["batch", "seq", 7])],
             [const("pads", np.array([2, 1], np.int64)), const("axes", np.array([-1], np.int64))],
             opset=18),
        Case("Pad_reflect", [node("Pad", ["x", "pads"], ["y"], mode="reflect")],
             [In("x", F, BS + [4])], [("y", F, ["batch", "seq", 9])],
             [const("pads", np.array([0, 0, 3, 0, 0, 2], np.int64))]),
        Case("Pad_opset10_attributes", [node("Pad", ["x"], ["y"], pads=[0, 0, 2, 0, 0, 1],
                                              value=-1.0)],
             [In("x", F, BS + [4])], [("y", F, ["batch", "seq", 7])], opset=10),
    ]


def trilu_cases():
    # opset 17 (Trilu is 14+): merged with the other opset-17 cases.
    return [
        Case("Trilu_upper", [node("Trilu", ["x"], ["y"])], [In("x", F, BS + [5])],
             [("y", F, BS + [5])], opset=17),
        Case("Trilu_lower_negative_k", [node("Trilu", ["x", "k"], ["y"], upper=0)],
             [In("x", F, ["batch", 4, "seq"])], [("y", F, ["batch", 4, "seq"])],
             [const("k", np.int64(-1))], opset=17),
        # k read at run time, beyond the matrix for some draws (|k| up to 4 with seq 3).
        Case("Trilu_int64_runtime_k", [node("Trilu", ["x", "k"], ["y"])],
             [In("x", I64, ["seq", "seq"], -9, 9), In("k", I64, [], -4, 5)],
             [("y", I64, ["seq", "seq"])], opset=17),
        Case("Trilu_bool", [node("Trilu", ["x", "k"], ["t"], upper=0),
                            node("Cast", ["t"], ["y"], to=I64)],
             [In("x", B, BS + ["seq"])], [("y", I64, BS + ["seq"])], [const("k", np.int64(1))],
             opset=17),
        # transformers' causal mask from the run-time seq: ones(seq, seq, bool).triu(1) ->
        # Where(mask, min, scores); ConstantOfShape and Trilu run once per call.
        Case("Trilu_causal_mask_runtime_seq",
             [node("Shape", ["x"], ["s"]), node("Gather", ["s", "one"], ["n"], axis=0),
              node("Unsqueeze", ["n", "axes0"], ["n1"]), node("Concat", ["n1", "n1"], ["nn"], axis=0),
              node("ConstantOfShape", ["nn"], ["ones"],
                   value=numpy_helper.from_array(np.array([True]))),
              node("Trilu", ["ones", "one"], ["m"]), node("Where", ["m", "neg", "x"], ["y"])],
             [In("x", F, BS + ["seq"])], [("y", F, BS + ["seq"])],
             [const("one", np.int64(1)), const("axes0", np.array([0], np.int64)),
              const("neg", np.float32(-1e4))], opset=17),
        # A mask of constants only: constant folding evaluates the Trilu.
        Case("Trilu_folded", [node("Trilu", ["c", "k"], ["t"], upper=0),
                              node("Add", ["x", "t"], ["y"])],
             [In("x", F, ["batch", 4, 6])], [("y", F, ["batch", 4, 6])],
             [weight("c", 4, 6), const("k", np.int64(2))], opset=17),
    ]


def scatter_nd_cases():
    return [
        # x[b, s] = row, with negative indices, (b, s) pairs distinct for every fed shape.
        Case("ScatterND_rows_negative_indices", [node("ScatterND", ["x", "idx", "u"], ["y"])],
             [In("x", F, BS + [4]), In("u", F, [2, 4])], [("y", F, BS + [4])],
             [const("idx", np.array([[0, -1], [-1, 1]], np.int64))]),
        # Indices read at run time (duplicates: the last one wins, in index order, as in the
        # reference).
        Case("ScatterND_runtime_indices", [node("ScatterND", ["x", "idx", "u"], ["y"])],
             [In("x", F, ["seq", 4]), In("idx", I64, [3, 1], -MIN_SEQ, MIN_SEQ),
              In("u", F, [3, 4])], [("y", F, ["seq", 4])]),
        Case("ScatterND_bool", [node("Greater", ["x", "zero"], ["m"]),
                                node("ScatterND", ["m", "idx", "t"], ["s"]),
                                node("Cast", ["s"], ["y"], to=I64)],
             [In("x", F, BS)], [("y", I64, BS)],
             [const("zero", np.float32(0)), const("idx", np.array([[0, 0], [-1, -1]], np.int64)),
              const("t", np.array([True, False]))]),
        # reduction (opset 16+): add with a duplicate index, element updates (k = rank).
        Case("ScatterND_add_duplicates",
             [node("ScatterND", ["x", "idx", "u"], ["y"], reduction="add")],
             [In("x", F, ["batch", 5]), In("u", F, [3])], [("y", F, ["batch", 5])],
             [const("idx", np.array([[0, 1], [0, 1], [-1, -1]], np.int64))], opset=18),
        Case("ScatterND_mul_int64", [node("ScatterND", ["x", "idx", "u"], ["y"], reduction="mul")],
             [In("x", I64, BS, -5, 5), In("u", I64, [2], -3, 3)], [("y", I64, BS)],
             [const("idx", np.array([[0, 2], [0, -1]], np.int64))], opset=18),
        Case("ScatterND_max", [node("ScatterND", ["x", "idx", "u"], ["y"], reduction="max")],
             [In("x", F, ["seq", 3]), In("u", F, [2, 3])], [("y", F, ["seq", 3])],
             [const("idx", np.array([[1], [-1]], np.int64))], opset=18),
        Case("ScatterND_min", [node("ScatterND", ["x", "idx", "u"], ["y"], reduction="min")],
             [In("x", F, ["seq", 3]), In("u", F, [2, 3])], [("y", F, ["seq", 3])],
             [const("idx", np.array([[0], [0]], np.int64))], opset=18),
    ]


def einsum(name, equation, operands, out_shape, inits=(), **kw):
    """Einsum over operands [(name, shape)]; those named in inits are constants."""
    consts = {t.name for t in inits}
    return Case(f"Einsum_{name}", [node("Einsum", [n for n, _ in operands], ["y"],
                                        equation=equation)],
                [In(n, F, shape) for n, shape in operands if n not in consts],
                [("y", F, out_shape)], list(inits), tol=kw.pop("tol", 2e-5), **kw)


def einsum_cases():
    h = ["batch", 2]
    return [
        einsum("bhqd_bhkd", "bhqd,bhkd->bhqk", [("q", h + ["seq", 4]), ("k", h + ["seq", 4])],
               h + ["seq", "seq"]),
        einsum("bhqk_bhkd", "bhqk,bhkd->bhqd", [("p", h + ["seq", "seq"]), ("v", h + ["seq", 4])],
               h + ["seq", 4]),
        einsum("bqhd_bkhd", "bqhd,bkhd->bhqk",
               [("q", BS + [2, 4]), ("k", BS + [2, 4])], h + ["seq", "seq"]),
        einsum("ellipsis_broadcast", "...ij,...jk->...ik", [("a", BS + [3, 5]), ("b", ["seq", 5, 2])],
               BS + [3, 2]),
        einsum("bij_bjk", "bij,bjk->bik", [("a", BS + [5]), ("b", ["batch", 5, 3])],
               BS + [3]),
        einsum("implicit_output", "ij,kj", [("a", ["seq", 5]), ("b", [3, 5])], ["seq", 3]),
        einsum("outer", "i,j->ij", [("a", ["seq"]), ("b", [5])], ["seq", 5]),
        einsum("transpose", "ij->ji", [("x", ["seq", 5])], [5, "seq"]),
        einsum("batched_transpose", "bij->bji", [("x", BS + [5])], ["batch", 5, "seq"]),
        einsum("sum", "bij->bi", [("x", BS + [5])], BS),
        # two contracted labels (one summed after the MatMul), no M, no N
        einsum("two_contracted", "bhd,bhd->b", [("a", h + [4]), ("b", h + [4])], ["batch"]),
        # d only in a and not in the output: summed first; then a broadcast product
        einsum("sum_then_outer", "bsd,be->bse", [("a", BS + [3]), ("b", ["batch", 4])],
               BS + [4]),
        # labels of b alone in front of the MatMul's batch (b unsqueezed into a's)
        einsum("both_sides_extra", "xyi,zwi->xzyw", [("a", ["batch", 3, 4]), ("b", [2, 5, 4])],
               ["batch", 2, 3, 5]),
        einsum("right_extra", "ij,bjk->bik", [("a", ["seq", 5]), ("b", ["batch", 5, 3])],
               BS + [3]),
        # projections by a constant weight reach the Dense fast path
        einsum("dense", "bsh,hd->bsd", [("x", BS + [6]), ("w", [6, 8])], BS + [8],
               [weight("w", 6, 8)], rel_tol_int8=0.05, fused=("Dense",)),
        einsum("dense_weight_transposed", "bsh,dh->bsd", [("x", BS + [6]), ("w", [8, 6])],
               BS + [8], [weight("w", 8, 6)], rel_tol_int8=0.05, fused=("Dense",)),
        # a rotary table: outer(arange(seq), inv_freq) -> cos, from the run-time seq
        Case("Einsum_rotary_table",
             [node("Shape", ["x"], ["s"]), node("Gather", ["s", "one"], ["n"], axis=0),
              node("Range", ["zero", "n", "one"], ["r"]), node("Cast", ["r"], ["t"], to=F),
              node("Einsum", ["t", "inv_freq"], ["f"], equation="i,j->ij"),
              node("Cos", ["f"], ["y"])],
             [In("x", I64, BS, 0, 5)], [("y", F, ["seq", 4])],
             [const("zero", np.int64(0)), const("one", np.int64(1)),
              const("inv_freq", 1.0 / (10000 ** (np.arange(0, 8, 2, dtype=np.float32) / 8)))],
             opset=12, tol=2e-5),
    ]


def cases():
    return [
        unary("Sqrt", lo=0.0),
        unary("Erf"),
        unary("Tanh"),
        unary("Exp"),
        unary("Neg"),
        unary("Relu"),
        unary("Sigmoid", lo=-8, hi=8),
        unary("Gelu", lo=-5, hi=5, opset=20),
        Case("GeluTanh", [node("Gelu", ["x"], ["y"], approximate="tanh")],
             [In("x", F, BS + [5], -5, 5)], [("y", F, BS + [5])], opset=20,
             fused=("GeluTanh",)),
        binary("Add", BS + [5], [5], BS + [5], name="Add_broadcast"),
        binary("Sub", [2, 1, 5], [3, 1], [2, 3, 5], name="Sub_broadcast_both"),
        binary("Mul", BS + [5], [], BS + [5], name="Mul_scalar"),
        binary("Div", BS + [5], BS + [5], BS + [5], lo=0.5, hi=2.0),
        binary("Pow", BS + [5], [1], BS + [5], lo=0.5, hi=2.0, name="Pow_runtime_exponent"),
        Case("Pow_square", [node("Pow", ["x", "two"], ["y"])], [In("x", F, BS + [5])],
             [("y", F, BS + [5])], [const("two", np.float32(2))]),
        int_arith("Add"),
        int_arith("Mul"),
        compare("Equal"),
        compare("Less"),
        compare("Greater"),
        not_case(),
        where_case(),
        cast_case(),
        concat_case(),
        slice_case(),
        split_case(),
        reshape_transpose(),
        views(),
        pass_through(),
        constant_of_shape(),
        shape_chain(),
        *gather_cases(),
        softmax(-1),
        softmax(1),
        softmax(-1, opset=11),  # legacy Softmax (kiln takes it over the last axis only)
        reduce_mean([-1], 1),
        reduce_mean([1], 0),
        reduce_mean([1, 2], 1, opset=18),
        layer_norm_standalone(),
        matmul_batched(),
        gemm_case(0, 0),
        gemm_case(1, 1),
        dense(False, False, False),
        dense(True, True, False),
        dense(True, True, True),
        attention(False),
        attention(True),
        embeddings(),
        unary("Abs"),
        int_unary("Abs"),
        unary("Log", lo=0.01, hi=5.0),
        unary("Sin", lo=-7, hi=7),
        unary("Cos", lo=-7, hi=7),
        compare("GreaterOrEqual"),
        compare("LessOrEqual"),
        logic("And"),
        logic("Or"),
        logic("Xor"),
        predicates(),
        unary("Softplus", lo=-25, hi=25),
        unary("Sign"),
        int_unary("Sign"),
        unary("Floor", lo=-5, hi=5),
        unary("Ceil", lo=-5, hi=5),
        min_max("Min"),
        min_max("Max"),
        min_max_int("Max"),
        *mod_cases(),
        *clip_cases(),
        reduce_case("ReduceSum", [1], 0, 13, True),
        reduce_case("ReduceSum", [], 1, 13, False),
        reduce_case("ReduceSum", [-1], 1, 13, True, lo=0, hi=5, dtype=I64),
        reduce_case("ReduceMax", [1], 1, 18, True),
        reduce_case("ReduceMax", [-1], 0, 13, False, lo=-9, hi=9, dtype=I64),
        reduce_case("ReduceMin", [0, 2], 1, 13, False),
        reduce_case("ReduceProd", [-1], 0, 18, True, lo=0.5, hi=1.5),
        reduce_case("ReduceL2", [-1], 1, 13, False),
        reduce_case("ReduceL2", [2], 0, 18, True),
        reduce_case("ReduceSumSquare", [1, 2], 0, 18, True),
        mean_pooling(),
        position_ids(),
        cumsum_float(),
        gather_elements(),
        *gather_nd(),
        *pad_cases(),
        Case("Tile", [node("Tile", ["x", "reps"], ["y"])], [In("x", F, BS + [3])],
             [("y", F, ["batch", "seq", 6])], [const("reps", np.array([1, 1, 2], np.int64))]),
        Case("Tile_int64_leading", [node("Tile", ["x", "reps"], ["y"])], [In("x", I64, [2, 3], -5, 5)],
             [("y", I64, [4, 9])], [const("reps", np.array([2, 3], np.int64))]),
        *trilu_cases(),
        *scatter_nd_cases(),
        *einsum_cases(),
    ]
