// Small graph-rewriting helpers shared by the passes: pattern matching on producers and
// constants, and bypassing/replacing a node while graph outputs keep their ONNX names.
#pragma once

#include <optional>
#include <string>

#include "compiler/ir/graph.h"

namespace kiln::passes {

// The producer of v if it is an `op` node, else nullptr.
ir::Node* producer_op(const ir::Value* v, ir::Op op);
// The scalar value of a constant whose elements are all equal (a broadcast scalar), else nullopt.
std::optional<double> constant_scalar(const ir::Value* v);
// v comes from a MatMul through Div / Mul by constant scalars and Adds (a few levels deep): the
// attention scores that fuse_attention takes and unfused_warnings looks for.
bool scores_from_matmul(const ir::Value* v);
// For a two-input node: the input that is not `v` (nullptr if `v` is not an input).
ir::Value* other_input(const ir::Node* n, const ir::Value* v);

// Makes v a constant holding t (shape, sym_value and dtype follow); v keeps its name.
void set_constant(ir::Value* v, ir::Tensor t);

// Redirects every use of `from` to `to`. If `from` is a graph output, `to` takes its name so the
// ONNX output name survives; returns false (and changes nothing) when that is impossible
// (`to` is a graph input or already another graph output).
bool replace_value(ir::Graph& g, ir::Value* from, ir::Value* to);

// Detaches output i of `old` (giving `old` a fresh dangling value) and returns it, so a new node
// can produce it. The old node becomes dead unless its other outputs are used.
ir::Value* take_output(ir::Graph& g, ir::Node* old, size_t i);

// A readable unique node name for a fused op: the exporter's scope of `anchor` plus `op`
// ("/encoder/layer.0/intermediate/Erf" -> "/encoder/layer.0/intermediate/Gelu").
std::string fused_node_name(ir::Graph& g, const std::string& anchor, const std::string& op);

ir::Tensor scalar_tensor(ir::DType t, double v);
ir::Tensor int64_vector(const std::vector<int64_t>& v);

}  // namespace kiln::passes
