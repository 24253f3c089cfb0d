"""Every ONNX op kiln imports, as a one-op (or few-op) model compiled and run by kiln, checked
against numpy: broadcasting, negative axes, symbolic dims. Inputs are graph inputs so nothing is
constant-folded away."""
import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from harness import compile_model, max_abs_diff, run_model

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
NP = {F: np.float32, I64: np.int64, B: np.bool_}
rng = np.random.RandomState(0)
erf = np.vectorize(math.erf)


def const(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def case(nodes, inputs, outputs, feed, expect, inits=(), opset=14):
    """inputs/outputs: [(name, elem_type, shape with ints or dim names)]."""
    return dict(nodes=nodes, inputs=inputs, outputs=outputs, feed=feed, expect=expect,
                inits=list(inits), opset=opset)


def f32(*shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def unary(op, fn, lo=-3.0, hi=3.0):
    x = f32(2, 7, 5, lo=lo, hi=hi)
    return case([helper.make_node(op, ["x"], ["y"])], [("x", F, ["batch", "seq", 5])],
                [("y", F, ["batch", "seq", 5])], {"x": x}, {"y": fn(x.astype(np.float64))})


def binary(op, fn, a_shape, b_shape, out_shape, lo=-2.0, hi=2.0):
    a, b = f32(*[d if isinstance(d, int) else 3 for d in a_shape], lo=lo, hi=hi), \
        f32(*[d if isinstance(d, int) else 3 for d in b_shape], lo=lo, hi=hi)
    return case([helper.make_node(op, ["a", "b"], ["y"])], [("a", F, a_shape), ("b", F, b_shape)],
                [("y", F, out_shape)], {"a": a, "b": b}, {"y": fn(a, b)})


def shape_chain_range():
    # Range(0, Shape(x)[1], 1): the exporter's position-id pattern, resolved symbolically.
    x = f32(2, 6)
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "one"], ["n"], axis=0),
             helper.make_node("Range", ["zero", "n", "one"], ["r"]),
             helper.make_node("Cast", ["r"], ["rf"], to=F),
             helper.make_node("Add", ["x", "rf"], ["y"])]
    return case(nodes, [("x", F, ["batch", "seq"])], [("y", F, ["batch", "seq"])], {"x": x},
                {"y": x + np.arange(6, dtype=np.float32)},
                [const("zero", np.int64(0)), const("one", np.int64(1))])


def constant_of_shape():
    x = f32(3, 4)
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("ConstantOfShape", ["s"], ["c"],
                              value=numpy_helper.from_array(np.array([2.5], np.float32))),
             helper.make_node("Mul", ["x", "c"], ["y"])]
    return case(nodes, [("x", F, ["batch", "seq"])], [("y", F, ["batch", "seq"])], {"x": x},
                {"y": x * 2.5})


def reshape_transpose():
    x = f32(2, 5, 12)
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]),
             helper.make_node("Transpose", ["r"], ["y"], perm=[0, 2, 1, 3])]
    return case(nodes, [("x", F, ["batch", "seq", 12])], [("y", F, ["batch", 3, "seq", 4])],
                {"x": x}, {"y": x.reshape(2, 5, 3, 4).transpose(0, 2, 1, 3)},
                [const("shape", np.array([0, 0, 3, -1], np.int64))])


def matmul_weight():
    x, w = f32(2, 5, 16), f32(16, 12)
    return case([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", F, ["batch", "seq", 16])],
                [("y", F, ["batch", "seq", 12])], {"x": x}, {"y": x @ w}, [const("w", w)])


def gemm(trans_a, trans_b):
    a, b, c = f32(*((7, 5) if trans_a else (5, 7))), f32(*((3, 7) if trans_b else (7, 3))), f32(3)
    want = 0.5 * ((a.T if trans_a else a) @ (b.T if trans_b else b)) + 2.0 * c
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], alpha=0.5, beta=2.0, transA=trans_a,
                            transB=trans_b)
    return case([node], [("a", F, list(a.shape))], [("y", F, [5, 3])], {"a": a}, {"y": want},
                [const("b", b), const("c", c)])


def softmax(axis, opset=13):
    x = f32(2, 3, 5, 4) * 3
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return case([helper.make_node("Softmax", ["x"], ["y"], axis=axis)],
                [("x", F, ["batch", 3, "seq", 4])], [("y", F, ["batch", 3, "seq", 4])], {"x": x},
                {"y": e / e.sum(axis=axis, keepdims=True)}, opset=opset)


def reduce_mean(axes, keepdims):
    x = f32(2, 5, 6)
    want = x.mean(axis=tuple(axes), keepdims=bool(keepdims))
    out_shape = list(want.shape)
    return case([helper.make_node("ReduceMean", ["x"], ["y"], axes=axes, keepdims=keepdims)],
                [("x", F, [2, 5, 6])], [("y", F, out_shape)], {"x": x}, {"y": want})


def layer_norm():
    x, g, b = f32(2, 5, 8), f32(8), f32(8)
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return case([helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1,
                                  epsilon=1e-5)],
                [("x", F, ["batch", "seq", 8])], [("y", F, ["batch", "seq", 8])], {"x": x},
                {"y": (x - mu) / np.sqrt(var + 1e-5) * g + b}, [const("g", g), const("b", b)],
                opset=17)


def gather(axis):
    data = f32(10, 4)
    if axis == 0:  # embedding lookup with symbolic index shape
        ids = rng.randint(0, 10, size=(2, 5)).astype(np.int64)
        return case([helper.make_node("Gather", ["data", "ids"], ["y"], axis=0)],
                    [("ids", I64, ["batch", "seq"])], [("y", F, ["batch", "seq", 4])],
                    {"ids": ids}, {"y": data[ids]}, [const("data", data)])
    x = f32(3, 5, 4)  # the pooler's x[:, 0] with a negative index
    return case([helper.make_node("Gather", ["x", "idx"], ["y"], axis=1)],
                [("x", F, ["batch", "seq", 4])], [("y", F, ["batch", 4])], {"x": x},
                {"y": x[:, -1]}, [const("idx", np.int64(-1))])


def slice_case():
    x = f32(4, 9, 6)
    nodes = [helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"])]
    return case(nodes, [("x", F, [4, 9, 6])], [("y", F, [4, 3, 3])], {"x": x},
                {"y": x[:, -1:-7:-2, 1:100:2]},
                [const("starts", np.array([-1, 1], np.int64)),
                 const("ends", np.array([-7, 100], np.int64)),
                 const("axes", np.array([1, -1], np.int64)),
                 const("steps", np.array([-2, 2], np.int64))])


def concat():
    a, b = f32(2, 5, 3), f32(2, 5, 4)
    return case([helper.make_node("Concat", ["a", "b"], ["y"], axis=-1)],
                [("a", F, ["batch", "seq", 3]), ("b", F, ["batch", "seq", 4])],
                [("y", F, ["batch", "seq", 7])], {"a": a, "b": b},
                {"y": np.concatenate([a, b], -1)})


def where_equal():
    ids = rng.randint(0, 3, size=(2, 6)).astype(np.int64)
    x, y = f32(2, 6), f32(6)
    nodes = [helper.make_node("Equal", ["ids", "zero"], ["m"]),
             helper.make_node("Where", ["m", "x", "y"], ["out"])]
    return case(nodes, [("ids", I64, ["batch", "seq"]), ("x", F, ["batch", "seq"]),
                        ("y", F, ["seq"])], [("out", F, ["batch", "seq"])],
                {"ids": ids, "x": x, "y": y}, {"out": np.where(ids == 0, x, y)},
                [const("zero", np.int64(0))])


def compare(op, fn):
    a, b = f32(3, 4), f32(4)
    return case([helper.make_node(op, ["a", "b"], ["m"]), helper.make_node("Cast", ["m"], ["y"], to=F)],
                [("a", F, [3, 4]), ("b", F, [4])], [("y", F, [3, 4])], {"a": a, "b": b},
                {"y": fn(a, b).astype(np.float32)})


def not_case():
    a = f32(3, 4)
    nodes = [helper.make_node("Greater", ["a", "zero"], ["m"]), helper.make_node("Not", ["m"], ["n"]),
             helper.make_node("Cast", ["n"], ["y"], to=I64)]
    return case(nodes, [("a", F, [3, 4])], [("y", I64, [3, 4])], {"a": a},
                {"y": (~(a > 0)).astype(np.int64)}, [const("zero", np.float32(0))])


def cast_int():
    ids = rng.randint(-5, 5, size=(2, 3)).astype(np.int64)
    return case([helper.make_node("Cast", ["ids"], ["y"], to=F)], [("ids", I64, ["batch", "seq"])],
                [("y", F, ["batch", "seq"])], {"ids": ids}, {"y": ids.astype(np.float32)})


def expand_unsqueeze():
    x = f32(1, 5)
    nodes = [helper.make_node("Expand", ["x", "shape"], ["e"]),
             helper.make_node("Unsqueeze", ["e", "axes"], ["u"]),
             helper.make_node("Squeeze", ["u", "axes"], ["s"]),
             helper.make_node("Flatten", ["s"], ["y"], axis=1)]
    return case(nodes, [("x", F, [1, 5])], [("y", F, [3, 5])], {"x": x},
                {"y": np.broadcast_to(x, (3, 5)).copy()},
                [const("shape", np.array([3, 1], np.int64)), const("axes", np.array([-1], np.int64))])


def batched_matmul():
    a, b = f32(2, 3, 5, 7), f32(3, 7, 4)
    return case([helper.make_node("MatMul", ["a", "b"], ["y"])],
                [("a", F, ["batch", 3, "seq", 7]), ("b", F, [3, 7, 4])],
                [("y", F, ["batch", 3, "seq", 4])], {"a": a, "b": b}, {"y": a @ b})


CASES = {
    "Add_broadcast": lambda: binary("Add", np.add, ["batch", "seq", 5], [5], ["batch", "seq", 5]),
    "Sub_broadcast": lambda: binary("Sub", np.subtract, [2, 1, 5], [3, 1], [2, 3, 5]),
    "Mul_scalar": lambda: binary("Mul", np.multiply, [4, 5], [], [4, 5]),
    "Div": lambda: binary("Div", np.divide, [4, 5], [4, 5], [4, 5], lo=0.5, hi=2.0),
    "Pow": lambda: binary("Pow", np.power, [4, 5], [1], [4, 5], lo=0.5, hi=2.0),
    "Sqrt": lambda: unary("Sqrt", np.sqrt, lo=0.0),
    "Erf": lambda: unary("Erf", erf),
    "Tanh": lambda: unary("Tanh", np.tanh),
    "Exp": lambda: unary("Exp", np.exp),
    "Neg": lambda: unary("Neg", np.negative),
    "Relu": lambda: unary("Relu", lambda x: np.maximum(x, 0)),
    "Sigmoid": lambda: unary("Sigmoid", lambda x: 1 / (1 + np.exp(-x))),
    "MatMul_weight": matmul_weight,
    "MatMul_batched_broadcast": batched_matmul,
    "Gemm": lambda: gemm(0, 0),
    "Gemm_transA_transB": lambda: gemm(1, 1),
    "Reshape_Transpose": reshape_transpose,
    "Softmax_last": lambda: softmax(-1),
    "Softmax_axis1": lambda: softmax(1),
    "ReduceMean_keep": lambda: reduce_mean([-1], 1),
    "ReduceMean_drop": lambda: reduce_mean([1], 0),
    "LayerNormalization": layer_norm,
    "Gather_embedding": lambda: gather(0),
    "Gather_negative_axis1": lambda: gather(1),
    "Slice_negative_steps": slice_case,
    "Concat_negative_axis": concat,
    "Equal_Where": where_equal,
    "Less": lambda: compare("Less", np.less),
    "Greater": lambda: compare("Greater", np.greater),
    "Not": not_case,
    "Cast": cast_int,
    "Expand_Unsqueeze_Squeeze_Flatten": expand_unsqueeze,
    "Shape_Gather_Range": shape_chain_range,
    "ConstantOfShape": constant_of_shape,
}


def build(name, c, path):
    def vi(n, t, shape):
        return helper.make_tensor_value_info(n, t, shape)
    graph = helper.make_graph(c["nodes"], name, [vi(*i) for i in c["inputs"]],
                              [vi(*o) for o in c["outputs"]], initializer=c["inits"])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", c["opset"])])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_matches_numpy(name, tmp_path):
    c = CASES[name]()
    build(name, c, tmp_path / "m.onnx")
    art = compile_model(tmp_path / "m.onnx", tmp_path / "art")
    got = run_model(art, c["feed"], tmp_path)
    for out, want in c["expect"].items():
        assert got[out].shape == want.shape, f"{out}: shape {got[out].shape} != {want.shape}"
        assert max_abs_diff(got[out], want) <= 1e-5, f"{out}: {got[out]} != {want}"
