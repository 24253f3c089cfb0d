// fuse_gelu: GELU subgraphs -> Gelu (exact, erf) or GeluTanh (the tanh approximation:
// transformers' gelu_new / gelu_pytorch_tanh as the TorchScript exporter and pre-opset-20 dynamo
// write them out).
//
//   e = Erf(Div(x, 1.4142135) | Mul(x, 0.70710677))
//     | Tanh(Mul(0.7978846, Add(x, Mul(0.044715, Pow(x, 3) | Mul(x, Mul(x, x))))))
//   a = Add(e, 1)
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

// For a two-input node: the input whose partner is a constant scalar near `c`, or nullptr.
ir::Value* times_constant(const ir::Node* n, double c) {
  for (int side = 0; n && side < 2; ++side)
    if (near(constant_scalar(n->input(1 - side)), c)) return n->input(side);
  return nullptr;
}

// v = x^3 as Pow(x, 3), Mul(x, Mul(x, x)) or Mul(Mul(x, x), x)?
bool is_cube_of(const ir::Value* v, const ir::Value* x) {
  if (const ir::Node* p = producer_op(v, ir::Op::kPow))
    return p->input(0) == x && near(constant_scalar(p->input(1)), 3.0);
  const ir::Node* m = producer_op(v, ir::Op::kMul);
  const ir::Value* sq = m ? other_input(m, x) : nullptr;
  const ir::Node* s = producer_op(sq, ir::Op::kMul);
  return s && s->input(0) == x && s->input(1) == x;
}

// Input of Mul(sqrt(2/pi), Add(x, Mul(0.044715, x^3))), or nullptr.
ir::Value* tanh_argument(const ir::Value* v) {
  const ir::Value* w = times_constant(producer_op(v, ir::Op::kMul), std::sqrt(2.0 / M_PI));
  const ir::Node* add = producer_op(w, ir::Op::kAdd);
  for (int side = 0; add && side < 2; ++side) {
    ir::Value* x = add->input(side);
    const ir::Value* cube =
        times_constant(producer_op(add->input(1 - side), ir::Op::kMul), 0.044715);
    if (cube && is_cube_of(cube, x)) return x;
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

// erf: the Erf or Tanh node.
bool try_fuse(ir::Graph& g, ir::Node* erf) {
  const bool exact = erf->op == ir::Op::kErf;
  ir::Value* x = exact ? erf_argument(erf->input(0)) : tanh_argument(erf->input(0));
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
  g.add_node(exact ? ir::Op::kGelu : ir::Op::kGeluTanh,
             fused_node_name(g, erf->name, exact ? "Gelu" : "GeluTanh"), {x}, {out});
  return true;
}

}  // namespace

Status fuse_gelu(ir::Graph& g) {
  std::vector<ir::Node*> erfs;
  for (const auto& n : g.nodes())
    if (n->op == ir::Op::kErf || n->op == ir::Op::kTanh) erfs.push_back(n.get());
  for (ir::Node* e : erfs) try_fuse(g, e);
  return g.topo_sort();
}

}  // namespace kiln::passes
