// INT8 emulation (emulate.h). Every op but Dense goes through passes::evaluate_node; Dense has its
// own loop here (weights transposed once per call so the dot products are contiguous) because the
// evaluator's is ~10x slower and Dense is most of a BERT's arithmetic.
#include "compiler/quantize/emulate.h"

#include <cmath>

#include "compiler/passes/evaluate.h"
#include "compiler/quantize/quantize.h"
#include "kiln/kernels/gather_s8.h"
#include "kiln/kernels/gemm/s8_pack.h"
#include "kiln/kernels/gemm/s8_quantize.h"

namespace kiln::quantize {
namespace {

using ir::DType;
using ir::Node;
using ir::Tensor;
using ir::Value;

// Dot product of two float rows in double, eight chains: GCC makes them four SSE2 double pairs,
// enough independent adds to hide their latency (four chains: a MiniLM-size report took 20 s of
// CPU instead of 16).
double dot(const float* a, const float* b, int64_t k) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t p = 0;
  for (; p + 8 <= k; p += 8)
    for (int l = 0; l < 8; ++l) s[l] += double(a[p + l]) * double(b[p + l]);
  for (; p < k; ++p) s[0] += double(a[p]) * double(b[p]);
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// W [K, N] row-major -> [N, K] (rows of the transposed weight are contiguous for dot()).
std::vector<float> transpose(const float* w, int64_t k, int64_t n) {
  std::vector<float> t(static_cast<size_t>(k * n));
  for (int64_t p = 0; p < k; ++p)
    for (int64_t j = 0; j < n; ++j) t[j * k + p] = w[p * n + j];
  return t;
}

// A float [V, H] table as gather_s8.h stores and reads it: int8 rows times their scale.
Tensor int8_table(const Tensor& table) {
  const int64_t V = table.dims[0], H = table.dims[1];
  std::vector<uint8_t> blob(kernels::embedding_s8_bytes(V, H));
  kernels::quantize_embedding_s8(table.data<float>(), V, H, blob.data());
  const auto* q = reinterpret_cast<const int8_t*>(blob.data());
  const auto* scale =
      reinterpret_cast<const float*>(blob.data() + kernels::embedding_s8_rows_bytes(V, H));
  Tensor t = table;
  float* out = t.data<float>();
  for (int64_t v = 0; v < V; ++v)
    for (int64_t h = 0; h < H; ++h) out[v * H + h] = scale[v] * static_cast<float>(q[v * H + h]);
  return t;
}

}  // namespace

DenseGemm::DenseGemm(const Tensor& xt, const Tensor& w, const Tensor* act_smooth, bool quantized) {
  k = w.dims[0], n = w.dims[1], m = k ? xt.numel() / k : 0;
  x.assign(xt.data<float>(), xt.data<float>() + m * k);
  if (act_smooth)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t p = 0; p < k; ++p) x[i * k + p] *= act_smooth->data<float>()[p];
  wt = transpose(w.data<float>(), k, n);
  if (!quantized) return;
  std::vector<int8_t> q(static_cast<size_t>(k * n));
  w_scale.resize(n);
  kernels::gemm::quantize_b_s8(wt.data(), k, n, /*transposed=*/true, q.data(), w_scale.data());
  wq.assign(q.begin(), q.end());
  double err = 0, ref = 0;
  for (int64_t j = 0; j < n; ++j)
    for (int64_t p = 0; p < k; ++p) {
      const double a = wt[j * k + p], d = double(w_scale[j]) * wq[j * k + p] - a;
      err += d * d, ref += a * a;
    }
  weight_error = ref > 0 ? std::sqrt(err / ref) : 0.0;
  // Activations: s8_quantize.h's definition (quantize_rows_ref), element by element.
  xq.resize(static_cast<size_t>(m * k));
  x_scale.resize(m);
  err = 0, ref = 0;
  for (int64_t i = 0; i < m; ++i) {
    const float* r = x.data() + i * k;
    float lo = 0.0f, hi = 0.0f;
    for (int64_t p = 0; p < k; ++p) lo = std::fmin(lo, r[p]), hi = std::fmax(hi, r[p]);
    const kernels::gemm::RowQuantParams qp = kernels::gemm::row_quant_params(lo, hi);
    x_scale[i] = qp.scale;
    for (int64_t p = 0; p < k; ++p) {
      const float v = static_cast<float>(kernels::gemm::quantize_value(r[p], qp) - qp.z);
      xq[i * k + p] = v;
      const double d = double(qp.scale) * v - r[p];
      err += d * d, ref += double(r[p]) * r[p];
    }
  }
  activation_error = ref > 0 ? std::sqrt(err / ref) : 0.0;
}

std::vector<double> DenseGemm::fp32() const {
  std::vector<double> y(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) y[i * n + j] = dot(x.data() + i * k, wt.data() + j * k, k);
  return y;
}

std::vector<double> DenseGemm::int8() const {
  std::vector<double> y(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      y[i * n + j] =
          dot(xq.data() + i * k, wq.data() + j * k, k) * double(x_scale[i]) * double(w_scale[j]);
  return y;
}

bool is_dense_f32(const Node& n) {
  const Value* w = n.input(ir::DenseIn::kWeight);
  return n.op == ir::Op::kDense && w && w->constant && w->constant->dtype == DType::kFloat32 &&
         w->constant->dims.size() == 2;
}

double cosine(const Tensor& a, const Tensor& b) {
  const float *x = a.data<float>(), *y = b.data<float>();
  double xy = 0, xx = 0, yy = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    xy += double(x[i]) * y[i], xx += double(x[i]) * x[i], yy += double(y[i]) * y[i];
  if (xx > 0 && yy > 0) return xy / std::sqrt(xx * yy);
  return xx == yy ? 1.0 : 0.0;
}

Int8Emulator::Int8Emulator(const ir::Graph& g, std::vector<int64_t> symbols, bool int8_tables)
    : g_(g), sym_(std::move(symbols)) {
  if (!int8_tables) return;
  for (const auto& node : g.nodes()) {
    const Node& n = *node;
    if (n.op != ir::Op::kGather && n.op != ir::Op::kEmbeddingLayerNorm) continue;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const Value* t = n.inputs[i];
      if (is_quantized_input(n, i) && t && t->constant && t->constant->dims.size() == 2 &&
          t->constant->dtype == DType::kFloat32 && !int8_tables_.count(t))
        int8_tables_.emplace(t, int8_table(*t->constant));
    }
  }
}

Status Int8Emulator::run(const Values* base, size_t start, const Int8Choice& int8,
                         Values* vals) const {
  const auto& nodes = g_.nodes();
  for (size_t i = start; i < nodes.size(); ++i) {
    const Node& n = *nodes[i];
    std::vector<const Tensor*> in;
    bool changed = !base;
    for (size_t j = 0; j < n.inputs.size(); ++j) {
      const Value* v = n.inputs[j];
      const Tensor* t = nullptr;
      if (v && v->constant) {
        t = v->constant.get();
        changed = changed || int8(n, j);
      } else if (v) {
        if (auto it = vals->find(v); it != vals->end())
          t = it->second.get(), changed = true;
        else if (base && base->count(v))
          t = base->at(v).get();
        else
          return Status::error(n.describe() + ": input '" + v->name + "' has no value");
      }
      in.push_back(t);
    }
    if (!changed) continue;
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> outs, evaluate(n, in, int8));
    for (size_t o = 0; o < outs.size(); ++o)
      if (n.outputs[o]) (*vals)[n.outputs[o]] = std::make_shared<const Tensor>(std::move(outs[o]));
  }
  return Status::ok();
}

Result<std::vector<Tensor>> Int8Emulator::evaluate(const Node& n, std::vector<const Tensor*> in,
                                                   const Int8Choice& int8) const {
  std::vector<std::vector<int64_t>> dims;
  for (const Value* o : n.outputs) {
    std::vector<int64_t> d;
    if (o && o->shape)
      for (const ir::Dim& x : *o->shape) d.push_back(x.eval(sym_.data()));
    dims.push_back(std::move(d));
  }
  if (n.op == ir::Op::kSymbolicTensor) {
    const Value* o = n.outputs[0];
    Tensor t;
    t.dtype = DType::kInt64;
    t.dims = dims[0];
    for (const ir::Dim& x : *o->sym_value) {
      const int64_t v = x.eval(sym_.data());
      const auto* b = reinterpret_cast<const uint8_t*>(&v);
      t.bytes.insert(t.bytes.end(), b, b + 8);
    }
    return std::vector<Tensor>{std::move(t)};
  }
  for (size_t j = 0; j < in.size(); ++j)
    if (auto it = int8_tables_.find(n.inputs[j]); it != int8_tables_.end() && int8(n, j))
      in[j] = &it->second;
  if (!is_dense_f32(n) || !in[0] || in[0]->dtype != DType::kFloat32)
    return passes::evaluate_node(n, in, dims);
  Tensor out;
  out.dtype = DType::kFloat32;
  out.dims = dims[0];
  out.bytes.resize(static_cast<size_t>(out.numel()) * 4);
  const bool q = int8(n, ir::DenseIn::kWeight);
  const Tensor* smooth =
      in.size() > ir::DenseIn::kActSmooth ? in[ir::DenseIn::kActSmooth] : nullptr;
  const DenseGemm gemm(*in[0], *in[1], smooth, q);
  if (gemm.m * gemm.n != out.numel())
    return Status::error(n.describe() + ": output size does not match x W");
  passes::dense_epilogue(n, in, gemm.m, gemm.n, q ? gemm.int8() : gemm.fp32(), &out);
  return std::vector<Tensor>{std::move(out)};
}

}  // namespace kiln::quantize
