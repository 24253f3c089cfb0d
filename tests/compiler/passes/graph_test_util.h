// Test helpers: build small IR graphs and run a whole graph on concrete inputs by binding the
// symbols, turning inputs into constants and folding everything (passes/evaluate.cpp semantics).
#pragma once

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/ir/printer.h"
#include "compiler/ir/shape_inference.h"
#include "compiler/passes/evaluate.h"
#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

namespace kiln::test {

inline ir::Tensor f32(std::vector<int64_t> dims, std::vector<float> v) {
  ir::Tensor t;
  t.dtype = ir::DType::kFloat32;
  t.dims = std::move(dims);
  t.bytes.resize(v.size() * 4);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

// count values from N(0, scale^2), seeded.
inline std::vector<float> normal(size_t count, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(count);
  for (float& x : v) x = nd(rng);
  return v;
}

inline ir::Tensor i64(std::vector<int64_t> dims, std::vector<int64_t> v) {
  ir::Tensor t;
  t.dtype = ir::DType::kInt64;
  t.dims = std::move(dims);
  t.bytes.resize(v.size() * 8);
  std::copy(v.begin(), v.end(), t.data<int64_t>());
  return t;
}

inline ir::Tensor f32_scalar(float v) {
  return f32({}, {v});
}

inline int count_ops(const ir::Graph& g, const std::string& op) {
  int n = 0;
  for (const auto& node : g.nodes()) n += ir::op_name(node->op) == op;
  return n;
}

// Graph input with a symbolic shape; dims given as Dims (Dim::symbol(i) or constants).
inline ir::Value* add_input(ir::Graph& g, const std::string& name, ir::DType t, ir::Shape s) {
  ir::Value* v = g.add_value(name, t);
  v->shape = std::move(s);
  g.inputs.push_back(v);
  return v;
}

// Adds a one-output node and returns its output value (named after the node).
inline ir::Value* op(ir::Graph& g, const std::string& type, std::vector<ir::Value*> inputs,
                     std::map<std::string, ir::Attribute> attrs = {},
                     const std::string& name = "") {
  std::string n = name.empty() ? g.unique_name(type) : name;
  ir::Value* out = g.add_value(n + "_out", ir::DType::kFloat32);
  ir::Node* node = g.add_node(type, n, std::move(inputs), {out});
  node->attrs = std::move(attrs);
  return out;
}

inline ir::Value* cf(ir::Graph& g, float v) {
  return g.add_constant(g.unique_name("c"), f32_scalar(v));
}
inline ir::Value* ci(ir::Graph& g, std::vector<int64_t> v) {
  int64_t n = static_cast<int64_t>(v.size());
  return g.add_constant(g.unique_name("c"), i64({n}, std::move(v)));
}

// Evaluates g on `inputs` (by name); returns the graph outputs by name.
inline Result<std::map<std::string, ir::Tensor>> run_graph(
    ir::Graph& g, const std::map<std::string, ir::Tensor>& inputs) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> sym, passes::bind_input_symbols(g, inputs));
  for (ir::Value* v : g.inputs) passes::set_constant(v, inputs.at(v->name));
  g.inputs.clear();
  std::vector<const ir::Node*> sym_nodes;
  for (const auto& n : g.nodes()) {
    if (n->op != ir::Op::kSymbolicTensor) continue;
    ir::Value* o = n->outputs[0];
    std::vector<int64_t> vals;
    for (const ir::Dim& d : *o->sym_value) vals.push_back(d.eval(sym.data()));
    passes::set_constant(o, i64(ir::constant_dims(*o->shape), vals));
    sym_nodes.push_back(n.get());
  }
  g.remove_nodes_if([&](const ir::Node* n) {
    return std::find(sym_nodes.begin(), sym_nodes.end(), n) != sym_nodes.end();
  });
  KILN_RETURN_IF_ERROR(ir::infer_shapes(g));
  KILN_RETURN_IF_ERROR(passes::fold_constants(g));
  std::map<std::string, ir::Tensor> out;
  for (ir::Value* v : g.outputs) {
    if (!v->constant)
      return Status::error("output '" + v->name + "' did not fold:\n" + ir::print_graph(g));
    out[v->name] = *v->constant;
  }
  return out;
}

}  // namespace kiln::test
