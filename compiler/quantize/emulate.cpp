// INT8 emulation (emulate.h). Every op but Dense goes through passes::evaluate_node; Dense runs on
// host_gemm.h because it is most of a BERT's arithmetic.
#include "compiler/quantize/emulate.h"

#include <cmath>

#include "compiler/passes/evaluate.h"
#include "compiler/quantize/quantize.h"
#include "compiler/quantize/weight_groups.h"
#include "kiln/kernels/gather_s8.h"
#include "kiln/kernels/gemm/s8_pack.h"
#include "kiln/kernels/gemm/s8_quantize.h"

namespace kiln::quantize {
namespace {

using ir::DType;
using ir::Node;
using ir::Tensor;
using ir::Value;

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

// host_gemm sums each weight group in one float chunk: exact only up to kKc.
static_assert(kernels::gemm::kMaxS8WeightGroup <= kKc);

DenseGemm::DenseGemm(const Tensor& xt, const Tensor& wt, const Tensor* act_smooth,
                     int64_t weight_group, bool quantized) {
  k = wt.dims[0], n = wt.dims[1], m = k ? xt.numel() / k : 0;
  group = kernels::gemm::effective_s8_weight_group(k, weight_group);
  x.assign(xt.data<float>(), xt.data<float>() + m * k);
  if (act_smooth)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t p = 0; p < k; ++p) x[i * k + p] *= act_smooth->data<float>()[p];
  const float* wf = wt.data<float>();
  if (!quantized) {
    w = PackedPanels(wf, k, n);
    return;
  }
  std::vector<int8_t> q(static_cast<size_t>(k * n));
  w_scale.resize(static_cast<size_t>(kernels::gemm::s8_weight_groups(k, group) * n));
  kernels::gemm::quantize_b_s8(wf, k, n, /*transposed=*/false, q.data(), w_scale.data(), group);
  w = PackedPanels(wf, k, n);
  wq = PackedPanels(q.data(), k, n);
  weight_error = weight_rounding_error(wf, q.data(), w_scale.data(), k, n, group);
  // Activations: s8_quantize.h's definition (quantize_rows_ref), element by element.
  xq.resize(static_cast<size_t>(m * k));
  x_scale.resize(m);
  double err = 0, ref = 0;
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
  host_gemm(x.data(), m, w, y.data());
  return y;
}

std::vector<double> DenseGemm::int8() const {
  std::vector<double> y(static_cast<size_t>(m * n));
  host_gemm(xq.data(), m, wq, y.data(), w_scale.data(), group);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) y[i * n + j] *= double(x_scale[i]);
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
  const DenseGemm gemm(*in[0], *in[1], smooth, weight_group(n), q);
  if (gemm.m * gemm.n != out.numel())
    return Status::error(n.describe() + ": output size does not match x W");
  passes::dense_epilogue(n, in, gemm.m, gemm.n, q ? gemm.int8() : gemm.fp32(), &out);
  return std::vector<Tensor>{std::move(out)};
}

}  // namespace kiln::quantize
