// quant_report: per-Dense INT8 error statistics and one-layer-quantized end-to-end cosines
// (quant_report.h). Every op but Dense goes through passes::evaluate_node; Dense has its own loop
// here (weights transposed once per call so the dot products are contiguous) because the
// evaluator's is ~10x slower and Dense is most of a BERT's arithmetic.
#include "compiler/quantize/quant_report.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <unordered_map>

#include "compiler/passes/evaluate.h"
#include "kiln/kernels/gemm/s8_pack.h"
#include "kiln/kernels/gemm/s8_quantize.h"

namespace kiln::quantize {
namespace {

using ir::DType;
using ir::Node;
using ir::Tensor;
using ir::Value;
using Values = std::unordered_map<const Value*, std::shared_ptr<const Tensor>>;

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

// x W in double: FP32, or kiln's INT8 GEMM emulated. The INT8 form multiplies the integers
// (q_x - z) and q_w exactly (sums far below 2^53) and scales by s_x * s_w[n], as the kernels
// dequantize their int32 sums.
struct DenseGemm {
  int64_t m = 0, k = 0, n = 0;
  std::vector<float> wt;       // [N, K] FP32
  std::vector<float> wq;       // [N, K] int8 values as floats
  std::vector<float> w_scale;  // [N]
  std::vector<float> xq;       // [M, K] q - z as floats
  std::vector<float> x_scale;  // [M]
  double weight_error = 0, activation_error = 0;

  // quantized = false: the FP32 product only (fp32()), nothing quantized.
  DenseGemm(const Tensor& x, const Tensor& w, bool quantized = true) {
    k = w.dims[0], n = w.dims[1], m = k ? x.numel() / k : 0;
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
    const float* xs = x.data<float>();
    xq.resize(static_cast<size_t>(m * k));
    x_scale.resize(m);
    err = 0, ref = 0;
    for (int64_t i = 0; i < m; ++i) {
      const float* r = xs + i * k;
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

  std::vector<double> fp32(const Tensor& x) const {
    std::vector<double> y(static_cast<size_t>(m * n));
    const float* xs = x.data<float>();
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) y[i * n + j] = dot(xs + i * k, wt.data() + j * k, k);
    return y;
  }
  std::vector<double> int8() const {
    std::vector<double> y(static_cast<size_t>(m * n));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j)
        y[i * n + j] =
            dot(xq.data() + i * k, wq.data() + j * k, k) * double(x_scale[i]) * double(w_scale[j]);
    return y;
  }
};

template <class A, class B>
double relative_error(const A& got, const B& want, size_t count) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < count; ++i) {
    const double d = double(got[i]) - double(want[i]);
    err += d * d, ref += double(want[i]) * double(want[i]);
  }
  return ref > 0 ? std::sqrt(err / ref) : (err > 0 ? INFINITY : 0.0);
}

double cosine(const Tensor& a, const Tensor& b) {
  const float *x = a.data<float>(), *y = b.data<float>();
  double xy = 0, xx = 0, yy = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    xy += double(x[i]) * y[i], xx += double(x[i]) * x[i], yy += double(y[i]) * y[i];
  if (xx > 0 && yy > 0) return xy / std::sqrt(xx * yy);
  return xx == yy ? 1.0 : 0.0;
}

bool is_dense_f32(const Node& n) {
  return n.op == ir::Op::kDense && n.inputs.size() > 1 && n.inputs[1] && n.inputs[1]->constant &&
         n.inputs[1]->constant->dtype == DType::kFloat32 && n.inputs[1]->constant->dims.size() == 2;
}

class Executor {
 public:
  Executor(const ir::Graph& g, std::vector<int64_t> sym) : g_(g), sym_(std::move(sym)) {}

  // Evaluates nodes [start, end) of g into *vals. With `base`, a node none of whose inputs was
  // recomputed here (and that is not `quantized`) keeps its base value. `quantized(n)` says
  // whether Dense n emulates INT8.
  Status run(const Values* base, size_t start, const std::function<bool(const Node&)>& quantized,
             Values* vals) const {
    const auto& nodes = g_.nodes();
    for (size_t i = start; i < nodes.size(); ++i) {
      const Node& n = *nodes[i];
      const bool q = n.op == ir::Op::kDense && quantized(n);
      std::vector<const Tensor*> in;
      bool changed = q || !base;
      for (const Value* v : n.inputs) {
        const Tensor* t = nullptr;
        if (v && v->constant) {
          t = v->constant.get();
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
      KILN_ASSIGN_OR_RETURN(std::vector<Tensor> outs, evaluate(n, in, q));
      for (size_t o = 0; o < outs.size(); ++o)
        if (n.outputs[o])
          (*vals)[n.outputs[o]] = std::make_shared<const Tensor>(std::move(outs[o]));
    }
    return Status::ok();
  }

  Result<std::vector<Tensor>> evaluate(const Node& n, const std::vector<const Tensor*>& in,
                                       bool quantized) const {
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
    if (!is_dense_f32(n) || !in[0] || in[0]->dtype != DType::kFloat32)
      return passes::evaluate_node(n, in, dims);
    Tensor out;
    out.dtype = DType::kFloat32;
    out.dims = dims[0];
    out.bytes.resize(static_cast<size_t>(out.numel()) * 4);
    const DenseGemm gemm(*in[0], *in[1], quantized);
    if (gemm.m * gemm.n != out.numel())
      return Status::error(n.describe() + ": output size does not match x W");
    passes::dense_epilogue(n, in, gemm.m, gemm.n, quantized ? gemm.int8() : gemm.fp32(*in[0]),
                           &out);
    return std::vector<Tensor>{std::move(out)};
  }

 private:
  const ir::Graph& g_;
  std::vector<int64_t> sym_;
};

void channel_ranges(const Tensor& x, int64_t k, const QuantReportOptions& o, DenseQuantStats* s) {
  std::vector<float> range(k, 0.0f);
  const float* xs = x.data<float>();
  for (int64_t i = 0; i < s->rows; ++i)
    for (int64_t p = 0; p < k; ++p) range[p] = std::fmax(range[p], std::fabs(xs[i * k + p]));
  std::vector<float> sorted = range;
  std::nth_element(sorted.begin(), sorted.begin() + k / 2, sorted.end());
  s->median_range = sorted[k / 2];
  std::vector<int64_t> order(k);
  for (int64_t p = 0; p < k; ++p) order[p] = p;
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return range[a] > range[b]; });
  auto ratio = [&](int64_t p) {
    return s->median_range > 0 ? range[p] / double(s->median_range)
                               : (range[p] > 0 ? INFINITY : 1.0);
  };
  for (int64_t p = 0; p < k; ++p) s->outliers += ratio(p) >= o.outlier_ratio;
  for (int64_t t = 0; t < std::min<int64_t>(o.top, k); ++t)
    s->top.push_back({order[t], range[order[t]], ratio(order[t])});
}

}  // namespace

Result<QuantReport> quant_report(const ir::Graph& g, const std::map<std::string, Tensor>& inputs,
                                 const QuantReportOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> sym, passes::bind_input_symbols(g, inputs));
  Values base;
  for (const Value* v : g.inputs) base[v] = std::make_shared<const Tensor>(inputs.at(v->name));
  const Executor ex(g, sym);
  KILN_RETURN_IF_ERROR(ex.run(
      nullptr, 0, [](const Node&) { return false; }, &base));

  QuantReport r;
  std::vector<const Value*> outs;
  for (const Value* v : g.outputs)
    if (v->dtype == DType::kFloat32) outs.push_back(v), r.outputs.push_back(v->name);
  auto value_of = [&](const Values& vals, const Value* v) -> const Tensor& {
    if (v->constant) return *v->constant;
    auto it = vals.find(v);
    return it != vals.end() ? *it->second : *base.at(v);
  };
  auto cosines = [&](const Values& vals, std::vector<double>* c, double* lowest) {
    for (const Value* v : outs) {
      c->push_back(cosine(value_of(vals, v), *base.at(v)));
      *lowest = std::min(*lowest, c->back());
    }
  };

  const auto& nodes = g.nodes();
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = *nodes[i];
    if (!is_dense_f32(n)) continue;
    DenseQuantStats s;
    s.node = n.name;
    s.weight = n.inputs[1]->name;
    const Tensor& x = value_of(base, n.inputs[0]);
    if (x.dtype != DType::kFloat32) continue;
    std::vector<const Tensor*> in;
    for (const Value* v : n.inputs) in.push_back(v ? &value_of(base, v) : nullptr);
    const DenseGemm gemm(x, *in[1]);
    s.rows = gemm.m, s.k = gemm.k, s.n = gemm.n;
    channel_ranges(x, gemm.k, options, &s);
    s.weight_error = gemm.weight_error;
    s.activation_error = gemm.activation_error;
    const std::vector<double> yq = gemm.int8();
    s.gemm_error = relative_error(yq, gemm.fp32(x), yq.size());
    Tensor out = *base.at(n.outputs[0]);
    passes::dense_epilogue(n, in, gemm.m, gemm.n, yq, &out);
    s.output_error =
        relative_error(out.data<float>(), base.at(n.outputs[0])->data<float>(), out.numel());
    if (options.per_layer_cosine) {
      Values changed;
      changed[n.outputs[0]] = std::make_shared<const Tensor>(std::move(out));
      KILN_RETURN_IF_ERROR(ex.run(
          &base, i + 1, [](const Node&) { return false; }, &changed));
      cosines(changed, &s.output_cosine, &s.min_cosine);
    }
    r.layers.push_back(std::move(s));
  }
  Values all;
  KILN_RETURN_IF_ERROR(ex.run(&base, 0, is_dense_f32, &all));
  cosines(all, &r.all_cosine, &r.all_min_cosine);
  return r;
}

Result<std::map<std::string, std::vector<float>>> dense_input_ranges(
    const ir::Graph& g, const std::map<std::string, Tensor>& inputs) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> sym, passes::bind_input_symbols(g, inputs));
  Values vals;
  for (const Value* v : g.inputs) vals[v] = std::make_shared<const Tensor>(inputs.at(v->name));
  KILN_RETURN_IF_ERROR(Executor(g, sym).run(
      nullptr, 0, [](const Node&) { return false; }, &vals));
  std::map<std::string, std::vector<float>> ranges;
  for (const auto& node : g.nodes()) {
    const Node& n = *node;
    if (!is_dense_f32(n) || !n.inputs[0] || n.inputs[0]->dtype != DType::kFloat32) continue;
    const Tensor& x = n.inputs[0]->constant ? *n.inputs[0]->constant : *vals.at(n.inputs[0]);
    const int64_t k = n.inputs[1]->constant->dims[0];
    std::vector<float> range(static_cast<size_t>(k), 0.0f);
    const float* xs = x.data<float>();
    for (int64_t i = 0; k > 0 && i < x.numel() / k; ++i)
      for (int64_t p = 0; p < k; ++p) range[p] = std::fmax(range[p], std::fabs(xs[i * k + p]));
    ranges[n.name] = std::move(range);
  }
  return ranges;
}

}  // namespace kiln::quantize
