// Shape inference: fills dtype, symbolic shape and sym_value of every value from the graph inputs,
// constants and node semantics (ONNX, plus kiln's LayerNormalization/Gelu/SymbolicTensor/Dense).
//
// sym_value is propagated through the exporter's shape arithmetic (Shape, Gather, Concat, Slice,
// Unsqueeze, Mul, Div, ...) so that Reshape/Expand targets resolve at compile time. A Slice of a
// constant of size P along a dim whose end is a bare symbol (position_ids[:, :seq]) clamps that
// symbol's max to P: that is how the model's maximum sequence length is found.
#pragma once

#include <cstdint>
#include <optional>

#include "compiler/ir/graph.h"

namespace kiln::ir {

// Whether shape inference has a hook for `op` (the registry test checks every op).
bool has_shape_inference(Op op);

// Recomputes every node output (in topological order; reorders the graph's nodes).
Status infer_shapes(Graph& g);

// ONNX TensorProto.DataType numbers, used by Cast.to and tensor attributes.
std::optional<DType> dtype_from_onnx(int64_t onnx_type);
int64_t onnx_dtype(DType t);

// Product of dims (a monomial); nullopt on overflow of the symbol powers is not a concern here.
Dim shape_numel(const Shape& s);
bool shape_is_constant(const Shape& s);
std::vector<int64_t> constant_dims(const Shape& s);  // requires shape_is_constant

}  // namespace kiln::ir
