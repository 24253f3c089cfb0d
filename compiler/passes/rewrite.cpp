// Graph-rewriting helpers; see rewrite.h.
#include "compiler/passes/rewrite.h"

#include <algorithm>

namespace kiln::passes {

ir::Node* producer_op(const ir::Value* v, ir::Op op) {
  if (!v || !v->producer || v->producer->op != op) return nullptr;
  return v->producer;
}

std::optional<double> constant_scalar(const ir::Value* v) {
  if (!v || !v->constant || v->constant->numel() < 1) return std::nullopt;
  const ir::Tensor& t = *v->constant;
  if (t.dtype == ir::DType::kFloat16) return std::nullopt;
  double first = t.float_at(0);
  for (int64_t i = 1; i < t.numel(); ++i)
    if (t.float_at(i) != first) return std::nullopt;
  return first;
}

ir::Value* other_input(const ir::Node* n, const ir::Value* v) {
  if (n->inputs.size() != 2) return nullptr;
  if (n->inputs[0] == v) return n->inputs[1];
  if (n->inputs[1] == v) return n->inputs[0];
  return nullptr;
}

namespace {
bool scores_from_matmul(const ir::Value* v, int depth) {
  const ir::Node* n = v ? v->producer : nullptr;
  if (!n || depth > 8) return false;
  if (n->op == ir::Op::kMatMul) return true;
  if (n->op == ir::Op::kDiv)
    return constant_scalar(n->input(1)) && scores_from_matmul(n->input(0), depth + 1);
  if (n->op == ir::Op::kMul || n->op == ir::Op::kAdd)
    for (int i = 0; i < 2; ++i)  // Add: either side (scores or mask); Mul: the non-constant one
      if ((n->op == ir::Op::kAdd || constant_scalar(n->input(1 - i))) &&
          scores_from_matmul(n->input(i), depth + 1))
        return true;
  return false;
}
}  // namespace

bool scores_from_matmul(const ir::Value* v) {
  return scores_from_matmul(v, 0);
}

void set_constant(ir::Value* v, ir::Tensor t) {
  v->dtype = t.dtype;
  ir::Shape s(t.dims.begin(), t.dims.end());
  v->shape = s;
  v->sym_value.reset();
  if ((t.dtype == ir::DType::kInt64 || t.dtype == ir::DType::kInt32) && t.numel() <= 64) {
    std::vector<ir::Dim> e;
    for (int64_t i = 0; i < t.numel(); ++i) e.push_back(ir::Dim(t.int_at(i)));
    v->sym_value = e;
  }
  v->constant = std::make_shared<const ir::Tensor>(std::move(t));
}

bool replace_value(ir::Graph& g, ir::Value* from, ir::Value* to) {
  if (from == to) return true;
  if (g.is_graph_output(from)) {
    bool to_is_input = std::find(g.inputs.begin(), g.inputs.end(), to) != g.inputs.end();
    if (to_is_input || g.is_graph_output(to)) return false;
    std::string name = from->name;
    from->name = g.unique_name(name);
    to->name = name;
  }
  g.replace_all_uses(from, to);
  return true;
}

ir::Value* take_output(ir::Graph& g, ir::Node* old, size_t i) {
  ir::Value* v = old->outputs[i];
  ir::Value* dangling = g.add_value(g.unique_name(v->name), v->dtype);
  dangling->shape = v->shape;
  dangling->producer = old;
  old->outputs[i] = dangling;
  return v;
}

std::string fused_node_name(ir::Graph& g, const std::string& anchor, const std::string& op) {
  size_t slash = anchor.rfind('/');
  std::string name = slash == std::string::npos ? op : anchor.substr(0, slash + 1) + op;
  for (const auto& n : g.nodes())
    if (n->name == name) return g.unique_name(name);
  return name;
}

ir::Tensor scalar_tensor(ir::DType t, double v) {
  ir::Tensor r;
  r.dtype = t;
  r.bytes.resize(ir::dtype_size(t));
  if (t == ir::DType::kFloat32)
    *r.data<float>() = static_cast<float>(v);
  else if (t == ir::DType::kFloat64)
    *r.data<double>() = v;
  else if (t == ir::DType::kInt64)
    *r.data<int64_t>() = static_cast<int64_t>(v);
  else if (t == ir::DType::kInt32)
    *r.data<int32_t>() = static_cast<int32_t>(v);
  else
    r.bytes[0] = static_cast<uint8_t>(v);
  return r;
}

ir::Tensor int64_vector(const std::vector<int64_t>& v) {
  ir::Tensor r;
  r.dtype = ir::DType::kInt64;
  r.dims = {static_cast<int64_t>(v.size())};
  r.bytes.resize(v.size() * 8);
  std::copy(v.begin(), v.end(), r.data<int64_t>());
  return r;
}

}  // namespace kiln::passes
