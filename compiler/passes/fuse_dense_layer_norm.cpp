// fuse_dense_layer_norm: BERT's post-LN sublayer output, Dense(x, W, bias, residual) ->
// LayerNormalization, becomes one Dense whose GEMM normalises each block of finished rows while
// it is still in cache (gemm/driver.h, Epilogue::layer_norm).
//
//   y = Dense(x, W, bias?, residual?) {gelu}
//   z = LayerNormalization(y, scale, B?) {axis = last, epsilon}
//   =>  z = Dense(x, W, bias?, residual?, scale, B?) {gelu, ln_epsilon = epsilon}
//
// Only when y has exactly one consumer (the LayerNorm) and is not a graph output, the
// LayerNorm normalises the last axis only, its Mean / InvStdDev outputs are unused, and scale
// (and B when present) are float32 constants of N elements.
#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

namespace kiln::passes {
namespace {

// A float32 constant of exactly n elements (shape [n], [1, n], ...) as a [n] vector value.
ir::Value* row_vector(ir::Graph& g, ir::Value* p, int64_t n) {
  if (!p || !p->constant || p->dtype != ir::DType::kFloat32 || p->constant->numel() != n)
    return nullptr;
  if (p->constant->dims.size() == 1) return p;
  ir::Tensor t = *p->constant;
  t.dims = {n};
  return g.add_constant(g.unique_name(p->name + ".row"), std::move(t));
}

bool try_fuse(ir::Graph& g, ir::Node* dense) {
  using In = ir::DenseIn;
  if (dense->input(In::kLnScale)) return false;  // already fused
  ir::Value* y = dense->outputs[0];
  if (!y || !y->shape || y->shape->empty() || g.is_graph_output(y)) return false;
  auto consumers = g.consumers(y);
  if (consumers.size() != 1 || consumers[0]->op != ir::Op::kLayerNormalization) return false;
  ir::Node* ln = consumers[0];
  if (ln->input(0) != y) return false;
  const int64_t rank = static_cast<int64_t>(y->shape->size());
  const int64_t axis = ln->attr_int("axis", -1);
  if (axis != -1 && axis != rank - 1) return false;
  for (size_t o = 1; o < ln->outputs.size(); ++o)
    if (ln->outputs[o] &&
        (g.is_graph_output(ln->outputs[o]) || !g.consumers(ln->outputs[o]).empty()))
      return false;
  const ir::Value* w = dense->input(In::kWeight);
  if (!w || !w->constant || w->constant->dims.size() != 2) return false;
  const int64_t n = w->constant->dims[1];
  ir::Value* scale = row_vector(g, ln->input(1), n);
  ir::Value* bias = ln->input(2) ? row_vector(g, ln->input(2), n) : nullptr;
  if (!scale || (ln->input(2) && !bias)) return false;
  dense->inputs.resize(In::kCount, nullptr);
  dense->inputs[In::kLnScale] = scale;
  dense->inputs[In::kLnBias] = bias;
  dense->attrs["ln_epsilon"] = ln->attr_float("epsilon", 1e-5f);
  ir::Value* z = take_output(g, ln, 0);  // the LayerNorm now writes a dangling value: dead
  dense->outputs[0] = z;
  z->producer = dense;
  ln->inputs[0] = nullptr;
  g.remove_nodes_if([ln](const ir::Node* n) { return n == ln; });
  return true;
}

}  // namespace

Status fuse_dense_layer_norm(ir::Graph& g) {
  std::vector<ir::Node*> dense;
  for (const auto& n : g.nodes())
    if (n->op == ir::Op::kDense) dense.push_back(n.get());
  for (ir::Node* d : dense) try_fuse(g, d);
  return g.topo_sort();
}

}  // namespace kiln::passes
