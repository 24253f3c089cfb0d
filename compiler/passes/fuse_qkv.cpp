// fuse_qkv: an Attention whose q, k and v are three projections of the same x -> one projection
// with the three weights side by side and Attention(qkv, -, -, mask) {qkv_packed = 1}:
//
//   q = Add(MatMul(x, Wq [K, N]), bq [N])  (either Add order; the Add may be absent)
//     | Dense(x, Wq, bq?) {gelu = 0}, no residual                    (same for k, v)
//   =>  qkv = Add(MatMul(x, [Wq | Wk | Wv] [K, 3N]), [bq | bk | bv] [3N])
//     | Dense(x, [Wq | Wk | Wv], [bq | bk | bv]) {gelu = 0}
//
// One [K, 3N] GEMM instead of three [K, N] ones reads x once and gives the GEMM three times the
// columns to split across threads. Runs before fuse_dense, which turns the MatMul + Add into a
// Dense; a Dense input is handled too so the order of the two passes is not load-bearing.
// q, k, v and the MatMul outputs must have one consumer and not be graph outputs.
#include <cstring>
#include <optional>

#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

namespace kiln::passes {
namespace {

using ir::DType;

struct Projection {
  ir::Node* node = nullptr;  // the MatMul or Dense
  ir::Value* x = nullptr;
  const ir::Tensor* w = nullptr;     // [K, N]
  const ir::Tensor* bias = nullptr;  // N elements, or null
  bool dense = false;
};

bool single_use(const ir::Graph& g, const ir::Value* v) {
  return g.consumers(v).size() == 1 && !g.is_graph_output(v);
}

bool f32_constant(const ir::Value* v) {
  return v && v->constant && v->constant->dtype == DType::kFloat32;
}

std::optional<Projection> projection(const ir::Graph& g, const ir::Value* y) {
  if (!y || !y->producer || !single_use(g, y)) return std::nullopt;
  Projection p;
  ir::Node* n = y->producer;
  if (n->op == ir::Op::kDense) {
    using In = ir::DenseIn;
    if (n->attr_int("gelu", 0) != 0 || n->input(In::kResidual) || n->input(In::kLnScale) ||
        !f32_constant(n->input(In::kWeight)))
      return std::nullopt;
    const ir::Value* bias = n->input(In::kBias);
    if (bias && !f32_constant(bias)) return std::nullopt;
    p.dense = true;
    p.bias = bias ? bias->constant.get() : nullptr;
  } else {
    if (n->op == ir::Op::kAdd) {
      for (int i = 0; i < 2 && !p.bias; ++i) {
        const ir::Value* b = n->input(1 - i);
        ir::Node* mm = producer_op(n->input(i), ir::Op::kMatMul);
        if (mm && single_use(g, n->input(i)) && f32_constant(b)) {
          p.bias = b->constant.get();
          n = mm;
        }
      }
      if (!p.bias) return std::nullopt;
    }
    if (n->op != ir::Op::kMatMul || !f32_constant(n->input(1))) return std::nullopt;
  }
  p.node = n;
  p.x = n->input(0);
  p.w = n->input(1)->constant.get();  // MatMul B = Dense weight
  if (p.w->dims.size() != 2) return std::nullopt;
  if (p.bias && (p.bias->numel() != p.w->dims[1] || p.bias->dims.empty() ||
                 p.bias->dims.back() != p.w->dims[1]))
    return std::nullopt;
  return p;
}

bool try_fuse(ir::Graph& g, ir::Node* attn) {
  if (attn->attr_int("qkv_packed", 0) != 0) return false;
  std::optional<Projection> p[3];
  for (int i = 0; i < 3; ++i) {
    p[i] = projection(g, attn->input(i));
    if (!p[i]) return false;
  }
  for (int i = 1; i < 3; ++i)
    if (p[i]->x != p[0]->x || p[i]->dense != p[0]->dense || p[i]->w->dims != p[0]->w->dims ||
        p[i]->node == p[0]->node || p[i]->node == p[i - 1]->node)
      return false;
  const int64_t K = p[0]->w->dims[0], N = p[0]->w->dims[1];
  ir::Tensor w, b;
  w.dtype = b.dtype = DType::kFloat32;
  w.dims = {K, 3 * N};
  b.dims = {3 * N};
  w.bytes.resize(static_cast<size_t>(K * 3 * N) * sizeof(float));
  b.bytes.assign(static_cast<size_t>(3 * N) * sizeof(float), 0);
  for (int i = 0; i < 3; ++i) {
    for (int64_t k = 0; k < K; ++k)
      std::memcpy(w.data<float>() + k * 3 * N + i * N, p[i]->w->data<float>() + k * N,
                  N * sizeof(float));
    if (p[i]->bias)
      std::memcpy(b.data<float>() + i * N, p[i]->bias->data<float>(), N * sizeof(float));
  }
  const std::string name = fused_node_name(g, p[0]->node->name, "QKV");
  ir::Value* wv = g.add_constant(g.unique_name(name + "/weight"), std::move(w));
  ir::Value* bv = g.add_constant(g.unique_name(name + "/bias"), std::move(b));
  ir::Value* qkv = g.add_value(g.unique_name(name + "_out"), DType::kFloat32);
  if (p[0]->dense) {
    std::vector<ir::Value*> in(ir::DenseIn::kBias + 1);
    in[ir::DenseIn::kX] = p[0]->x;
    in[ir::DenseIn::kWeight] = wv;
    in[ir::DenseIn::kBias] = bv;
    ir::Node* d = g.add_node(ir::Op::kDense, name, in, {qkv});
    d->attrs = p[0]->node->attrs;
  } else {
    ir::Value* mm = g.add_value(g.unique_name(name + "/MatMul_out"), DType::kFloat32);
    g.add_node(ir::Op::kMatMul, g.unique_name(name + "/MatMul"), {p[0]->x, wv}, {mm});
    g.add_node(ir::Op::kAdd, g.unique_name(name + "/Add"), {mm, bv}, {qkv});
  }
  using In = ir::AttentionIn;
  ir::Value* mask = attn->input(In::kMask);
  attn->inputs.assign(mask ? In::kCount : In::kMask, nullptr);
  attn->inputs[In::kQuery] = qkv;
  if (mask) attn->inputs[In::kMask] = mask;
  attn->attrs["qkv_packed"] = int64_t{1};
  return true;
}

}  // namespace

Status fuse_qkv(ir::Graph& g) {
  std::vector<ir::Node*> attns;
  for (const auto& n : g.nodes())
    if (n->op == ir::Op::kAttention) attns.push_back(n.get());
  bool fused = false;
  for (ir::Node* a : attns) fused |= try_fuse(g, a);
  if (fused) KILN_RETURN_IF_ERROR(eliminate_dead_code(g));  // the three old projections
  return g.topo_sort();
}

}  // namespace kiln::passes
