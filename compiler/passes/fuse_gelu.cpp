// fuse_gelu: exact-erf GELU subgraph -> Gelu.
//
//   e = Erf(Div(x, 1.4142135) | Mul(x, 0.70710677));  a = Add(e, 1)
//   y = Mul(Mul(x, a), 0.5) | Mul(Mul(x, 0.5), a) | Mul(x, Mul(a, 0.5))   (operands in any order)
#include <cmath>

#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

namespace kiln::passes {
namespace {

bool near(std::optional<double> v, double want) {
  return v && std::fabs(*v - want) < 1e-4;
}

// Input of Div(x, sqrt2) / Mul(x, 1/sqrt2), or nullptr.
ir::Value* erf_argument(const ir::Value* v) {
  const ir::Node* p = v ? v->producer : nullptr;
  if (!p) return nullptr;
  if (p->op == ir::Op::kDiv && near(constant_scalar(p->input(1)), std::sqrt(2.0)))
    return p->input(0);
  if (p->op == ir::Op::kMul) {
    for (int side = 0; side < 2; ++side)
      if (near(constant_scalar(p->input(1 - side)), 1.0 / std::sqrt(2.0))) return p->input(side);
  }
  return nullptr;
}

// Mul(x, 0.5) in either order?
bool is_half_of(const ir::Value* v, const ir::Value* x) {
  const ir::Node* m = producer_op(v, ir::Op::kMul);
  return m && other_input(m, x) && near(constant_scalar(other_input(m, x)), 0.5);
}

ir::Node* single_mul_consumer(const ir::Graph& g, const ir::Value* v) {
  auto c = g.consumers(v);
  if (c.size() != 1 || c[0]->op != ir::Op::kMul || g.is_graph_output(v)) return nullptr;
  return c[0];
}

bool try_fuse(ir::Graph& g, ir::Node* erf) {
  ir::Value* x = erf_argument(erf->input(0));
  if (!x || x->dtype != ir::DType::kFloat32) return false;
  auto c = g.consumers(erf->outputs[0]);
  if (c.size() != 1 || c[0]->op != ir::Op::kAdd ||
      !near(constant_scalar(other_input(c[0], erf->outputs[0])), 1.0))
    return false;
  ir::Value* a = c[0]->outputs[0];
  ir::Node* m1 = single_mul_consumer(g, a);
  if (!m1) return false;
  ir::Value* o1 = other_input(m1, a);
  ir::Node* final_mul = nullptr;
  if (o1 == x) {  // (x * a) * 0.5
    ir::Node* m2 = single_mul_consumer(g, m1->outputs[0]);
    if (m2 && near(constant_scalar(other_input(m2, m1->outputs[0])), 0.5)) final_mul = m2;
  } else if (near(constant_scalar(o1), 0.5)) {  // (a * 0.5) * x
    ir::Node* m2 = single_mul_consumer(g, m1->outputs[0]);
    if (m2 && other_input(m2, m1->outputs[0]) == x) final_mul = m2;
  } else if (is_half_of(o1, x)) {  // (x * 0.5) * a
    final_mul = m1;
  }
  if (!final_mul) return false;
  ir::Value* out = take_output(g, final_mul, 0);
  g.add_node(ir::Op::kGelu, fused_node_name(g, erf->name, "Gelu"), {x}, {out});
  return true;
}

}  // namespace

Status fuse_gelu(ir::Graph& g) {
  std::vector<ir::Node*> erfs;
  for (const auto& n : g.nodes())
    if (n->op == ir::Op::kErf) erfs.push_back(n.get());
  for (ir::Node* e : erfs) try_fuse(g, e);
  return g.topo_sort();
}

}  // namespace kiln::passes
