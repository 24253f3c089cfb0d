// fuse_dense: a GEMM with a constant weight and the elementwise ops after it -> Dense.
//
//   MatMul(x[..., K], W[K, N])             W constant, 2-D
//   | Gemm(A[M, K], B, C?)                 transA = 0; B constant, 2-D (transB applied to W,
//                                          alpha folded into W); C absent or a constant
//                                          broadcastable to [N] (beta folded into it)
//   [-> Add(., bias)]                      bias constant, broadcastable to [N] (either order)
//   [-> Gelu (exact)]
//   [-> Add(., residual)]                  residual not constant, exactly the output's shape
//   =>  Dense(x, W [K, N], bias [N] | absent, residual | absent) {gelu}
//       y = gelu?(x W + bias) + residual
//
// An op is absorbed only if the value it reads has exactly one consumer and is not a graph
// output. A MatMul/Gemm with nothing to absorb still becomes a Dense: codegen packs W for the
// GEMM micro-kernels.
#include <optional>
#include <string>

#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

namespace kiln::passes {
namespace {

using ir::DType;

bool is_f32_constant(const ir::Value* v) {
  return v && v->constant && v->constant->dtype == DType::kFloat32;
}

// A constant operand of the Dense: the original value when it is already in the Dense's form,
// else a new constant.
struct Operand {
  ir::Value* value = nullptr;
  std::optional<ir::Tensor> tensor;
  std::string name;  // base name of the new constant
  int64_t dim(size_t i) const { return value ? value->constant->dims[i] : tensor->dims[i]; }
  ir::Value* materialize(ir::Graph& g) {
    if (!value && tensor) value = g.add_constant(g.unique_name(name), std::move(*tensor));
    return value;
  }
};

// B [rows, cols] as W [K, N]: transposed (Gemm transB=1) and times alpha as asked.
Operand weight_kn(ir::Value* b, bool transposed, float alpha) {
  if (!transposed && alpha == 1.0f) return {b, std::nullopt, ""};
  const ir::Tensor& t = *b->constant;
  const int64_t rows = t.dims[0], cols = t.dims[1];
  const int64_t K = transposed ? cols : rows, N = transposed ? rows : cols;
  ir::Tensor w;
  w.dtype = DType::kFloat32;
  w.dims = {K, N};
  w.bytes.resize(static_cast<size_t>(K * N) * sizeof(float));
  const float* src = t.data<float>();
  float* dst = w.data<float>();
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n)
      dst[k * N + n] = alpha * (transposed ? src[n * K + k] : src[k * N + n]);
  return {nullptr, std::move(w), b->name + (transposed ? ".T" : ".scaled")};
}

// A float32 constant that broadcasts to [..., N] along the last axis only ([N], [1, N], [1], []
// ...; rank at most out_rank), as a [N] vector times `scale`; nullopt otherwise.
std::optional<Operand> bias_vector(ir::Value* c, int64_t N, size_t out_rank, float scale) {
  if (!is_f32_constant(c)) return std::nullopt;
  const ir::Tensor& t = *c->constant;
  if (t.dims.size() > out_rank) return std::nullopt;
  for (size_t i = 0; i + 1 < t.dims.size(); ++i)
    if (t.dims[i] != 1) return std::nullopt;
  const int64_t last = t.dims.empty() ? 1 : t.dims.back();
  if (last != N && last != 1) return std::nullopt;
  if (t.dims.size() == 1 && last == N && scale == 1.0f) return Operand{c, std::nullopt, ""};
  ir::Tensor r;
  r.dtype = DType::kFloat32;
  r.dims = {N};
  r.bytes.resize(static_cast<size_t>(N) * sizeof(float));
  for (int64_t n = 0; n < N; ++n) r.data<float>()[n] = scale * t.data<float>()[last == 1 ? 0 : n];
  return Operand{nullptr, std::move(r), c->name + ".bias"};
}

// The single consumer of v if it is an `op` node and v is not a graph output, else nullptr.
ir::Node* sole_consumer(const ir::Graph& g, const ir::Value* v, ir::Op op) {
  if (g.is_graph_output(v)) return nullptr;
  auto c = g.consumers(v);
  if (c.size() != 1 || c[0]->op != op) return nullptr;
  return c[0];
}

struct Dense {
  ir::Value* x = nullptr;
  Operand w;
  std::optional<Operand> bias;
  ir::Value* residual = nullptr;
  bool gelu = false;
  ir::Node* last = nullptr;  // the node whose output the Dense takes over
};

// The GEMM part: a MatMul or Gemm with a constant 2-D float32 weight, else nullopt.
std::optional<Dense> match_gemm(ir::Node* n) {
  if (n->outputs.empty() || !n->outputs[0] || !n->outputs[0]->shape) return std::nullopt;
  ir::Value* x = n->input(0);
  ir::Value* b = n->input(1);
  if (!x || !x->shape || x->shape->empty() || x->dtype != DType::kFloat32) return std::nullopt;
  if (!is_f32_constant(b) || b->constant->dims.size() != 2) return std::nullopt;
  Dense d;
  if (n->op == ir::Op::kMatMul) {
    d.w = weight_kn(b, false, 1.0f);
  } else {  // Gemm: A is 2-D
    if (n->attr_int("transA", 0) != 0) return std::nullopt;
    d.w = weight_kn(b, n->attr_int("transB", 0) != 0, n->attr_float("alpha", 1.0f));
    if (ir::Value* c = n->input(2)) {
      d.bias = bias_vector(c, d.w.dim(1), 2, n->attr_float("beta", 1.0f));
      if (!d.bias) return std::nullopt;
    }
  }
  const int64_t K = d.w.dim(0), N = d.w.dim(1);
  const ir::Dim& xk = x->shape->back();
  if (K == 0 || N == 0 || !xk.is_constant() || xk.coef != K) return std::nullopt;
  d.x = x;
  d.last = n;
  return d;
}

// Extends d->last through a bias Add, a Gelu and a residual Add, in that order, each optional.
void absorb_epilogue(const ir::Graph& g, Dense* d) {
  ir::Value* y = d->last->outputs[0];
  const ir::Shape out_shape = *y->shape;
  if (ir::Node* add = sole_consumer(g, y, ir::Op::kAdd); add && !d->bias) {
    if (auto b = bias_vector(other_input(add, y), d->w.dim(1), out_shape.size(), 1.0f)) {
      d->bias = std::move(b);
      d->last = add;
      y = add->outputs[0];
    }
  }
  if (ir::Node* gelu = sole_consumer(g, y, ir::Op::kGelu)) {
    d->gelu = true;
    d->last = gelu;
    y = gelu->outputs[0];
  }
  if (ir::Node* add = sole_consumer(g, y, ir::Op::kAdd)) {
    ir::Value* r = other_input(add, y);
    if (r && r != y && !r->constant && r->dtype == DType::kFloat32 && r->shape &&
        *r->shape == out_shape) {
      d->residual = r;
      d->last = add;
    }
  }
}

void rewrite(ir::Graph& g, const ir::Node* anchor, Dense& d) {
  ir::Value* w = d.w.materialize(g);
  ir::Value* bias = d.bias ? d.bias->materialize(g) : nullptr;
  ir::Value* out = take_output(g, d.last, 0);
  using In = ir::DenseIn;
  std::vector<ir::Value*> in(In::kResidual + 1);
  in[In::kX] = d.x;
  in[In::kWeight] = w;
  in[In::kBias] = bias;
  in[In::kResidual] = d.residual;
  ir::Node* dense =
      g.add_node(ir::Op::kDense, fused_node_name(g, anchor->name, "Dense"), in, {out});
  dense->attrs["gelu"] = int64_t{d.gelu ? 1 : 0};
}

}  // namespace

Status fuse_dense(ir::Graph& g) {
  std::vector<ir::Node*> gemms;
  for (const auto& n : g.nodes())
    if (n->op == ir::Op::kMatMul || n->op == ir::Op::kGemm) gemms.push_back(n.get());
  for (ir::Node* n : gemms) {
    auto d = match_gemm(n);
    if (!d) continue;
    absorb_epilogue(g, &*d);
    rewrite(g, n, *d);
  }
  return g.topo_sort();
}

}  // namespace kiln::passes
