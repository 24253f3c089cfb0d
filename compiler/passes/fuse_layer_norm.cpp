// fuse_layer_norm: the exporter's LayerNorm subgraph (opset < 17) -> LayerNormalization.
//
//   mean = ReduceMean(x, axes=[-1]);  d = Sub(x, mean)        (d may be computed twice)
//   var  = ReduceMean(Pow(d, 2) | Mul(d, d), axes=[-1])
//   y    = Div(d, Sqrt(Add(var, eps)))  [* gamma]  [+ beta]
//
// Intermediates used elsewhere stay (dead-code elimination removes the rest), so matching needs
// no single-use checks.
#include <cmath>

#include "compiler/ir/shape_inference.h"
#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

namespace kiln::passes {
namespace {

bool reduces_last_axis(const ir::Node* r) {
  if (!r || r->op != ir::Op::kReduceMean || r->input(1) || r->attr_int("keepdims", 1) == 0)
    return false;
  const ir::Value* x = r->input(0);
  if (!x || !x->shape) return false;
  auto axes = r->attr_ints("axes");
  int64_t rank = static_cast<int64_t>(x->shape->size());
  return axes.size() == 1 && (axes[0] == -1 || axes[0] == rank - 1);
}

// d = Sub(x, ReduceMean(x)): returns x and sets *mean, or nullptr.
ir::Value* centered(const ir::Value* d, const ir::Value** mean) {
  const ir::Node* sub = producer_op(d, ir::Op::kSub);
  if (!sub) return nullptr;
  const ir::Node* r = sub->input(1) ? sub->input(1)->producer : nullptr;
  if (!reduces_last_axis(r) || r->input(0) != sub->input(0)) return nullptr;
  *mean = sub->input(1);
  return sub->input(0);
}

// A constant broadcastable along the last axis only (gamma/beta of shape [D] or [1, .., D]).
bool is_affine_param(const ir::Value* p, int64_t d) {
  if (!p || !p->constant || p->constant->numel() != d || p->dtype != ir::DType::kFloat32)
    return false;
  return p->constant->dims.empty() ? d == 1 : p->constant->dims.back() == d;
}

ir::Value* vector_param(ir::Graph& g, ir::Value* p, int64_t d, const std::string& name) {
  if (p->constant->dims.size() == 1) return p;
  ir::Tensor t = *p->constant;
  t.dims = {d};
  return g.add_constant(g.unique_name(name), std::move(t));
}

ir::Value* filled(ir::Graph& g, int64_t d, float v, const std::string& name) {
  ir::Tensor t;
  t.dtype = ir::DType::kFloat32;
  t.dims = {d};
  t.bytes.resize(d * 4);
  for (int64_t i = 0; i < d; ++i) t.data<float>()[i] = v;
  return g.add_constant(g.unique_name(name), std::move(t));
}

bool try_fuse(ir::Graph& g, ir::Node* div) {
  const ir::Value* mean = nullptr;
  ir::Value* x = centered(div->input(0), &mean);
  if (!x || x->dtype != ir::DType::kFloat32 || !x->shape || x->shape->empty()) return false;
  const ir::Node* sqrt = producer_op(div->input(1), ir::Op::kSqrt);
  const ir::Node* add = sqrt ? producer_op(sqrt->input(0), ir::Op::kAdd) : nullptr;
  if (!add) return false;
  const ir::Node* var = nullptr;
  std::optional<double> eps;
  for (int side = 0; side < 2 && !var; ++side) {
    eps = constant_scalar(add->input(1 - side));
    const ir::Value* v = add->input(side);
    if (eps && v && v->producer && reduces_last_axis(v->producer)) var = v->producer;
  }
  if (!var) return false;
  const ir::Node* sq = var->input(0)->producer;
  if (!sq) return false;
  const ir::Value* d2 = nullptr;
  if (sq->op == ir::Op::kPow) {
    auto e = constant_scalar(sq->input(1));
    if (!e || *e != 2.0) return false;
    d2 = sq->input(0);
  } else if (sq->op == ir::Op::kMul && sq->input(0) == sq->input(1)) {
    d2 = sq->input(0);
  } else {
    return false;
  }
  const ir::Value* mean2 = nullptr;
  if (centered(d2, &mean2) != x || (mean2 != mean && mean2->producer->input(0) != x)) return false;

  const ir::Dim& last = x->shape->back();
  if (!last.is_constant()) return false;
  int64_t dsize = last.coef;
  // Absorb the affine Mul(gamma) and Add(beta) when they follow.
  ir::Value* y = div->outputs[0];
  ir::Node* last_node = div;
  ir::Value* gamma = nullptr;
  ir::Value* beta = nullptr;
  auto single_consumer = [&](const ir::Value* v, ir::Op op) -> ir::Node* {
    auto c = g.consumers(v);
    if (c.size() != 1 || c[0]->op != op || g.is_graph_output(v)) return nullptr;
    return c[0];
  };
  if (ir::Node* mul = single_consumer(y, ir::Op::kMul)) {
    ir::Value* p = other_input(mul, y);
    if (is_affine_param(p, dsize)) {
      gamma = vector_param(g, p, dsize, mul->name + "/gamma");
      y = mul->outputs[0];
      last_node = mul;
    }
  }
  if (ir::Node* addb = single_consumer(y, ir::Op::kAdd)) {
    ir::Value* p = other_input(addb, y);
    if (is_affine_param(p, dsize)) {
      beta = vector_param(g, p, dsize, addb->name + "/beta");
      y = addb->outputs[0];
      last_node = addb;
    }
  }
  if (!gamma) gamma = filled(g, dsize, 1.0f, div->name + "/gamma");
  if (!beta) beta = filled(g, dsize, 0.0f, div->name + "/beta");
  ir::Value* out = take_output(g, last_node, 0);
  std::string name = fused_node_name(g, mean->producer->name, "LayerNormalization");
  ir::Node* ln = g.add_node(ir::Op::kLayerNormalization, name, {x, gamma, beta}, {out});
  ln->attrs["axis"] = int64_t{-1};
  ln->attrs["epsilon"] = static_cast<float>(*eps);
  return true;
}

}  // namespace

Status fuse_layer_norm(ir::Graph& g) {
  std::vector<ir::Node*> divs;
  for (const auto& n : g.nodes())
    if (n->op == ir::Op::kDiv) divs.push_back(n.get());
  for (ir::Node* d : divs) try_fuse(g, d);
  return g.topo_sort();
}

}  // namespace kiln::passes
