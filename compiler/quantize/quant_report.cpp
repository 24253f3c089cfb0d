// quant_report: per-Dense INT8 error statistics and one-layer-quantized end-to-end cosines
// (quant_report.h), on the host INT8 emulation (emulate.h).
#include "compiler/quantize/quant_report.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "compiler/passes/evaluate.h"
#include "compiler/quantize/emulate.h"
#include "compiler/quantize/quantize.h"

namespace kiln::quantize {
namespace {

using ir::DType;
using ir::Node;
using ir::Tensor;
using ir::Value;

bool no_int8(const Node&, size_t) {
  return false;
}
bool dense_int8(const Node& n, size_t input) {
  return input == ir::DenseIn::kWeight && is_dense_f32(n);
}

template <class A, class B>
double relative_error(const A& got, const B& want, size_t count) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < count; ++i) {
    const double d = double(got[i]) - double(want[i]);
    err += d * d, ref += double(want[i]) * double(want[i]);
  }
  return ref > 0 ? std::sqrt(err / ref) : (err > 0 ? INFINITY : 0.0);
}

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
  const Int8Emulator ex(g, sym, /*int8_tables=*/false);
  KILN_RETURN_IF_ERROR(ex.run(nullptr, 0, no_int8, &base));

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
    s.smoothed = n.input(ir::DenseIn::kActSmooth) != nullptr;
    const Tensor& x = value_of(base, n.inputs[0]);
    if (x.dtype != DType::kFloat32) continue;
    std::vector<const Tensor*> in;
    for (const Value* v : n.inputs) in.push_back(v ? &value_of(base, v) : nullptr);
    const Tensor* smooth =
        in.size() > ir::DenseIn::kActSmooth ? in[ir::DenseIn::kActSmooth] : nullptr;
    const DenseGemm gemm(x, *in[1], smooth, weight_group(n));
    s.rows = gemm.m, s.k = gemm.k, s.n = gemm.n;
    s.weight_group = gemm.group;
    channel_ranges(x, gemm.k, options, &s);
    s.weight_error = gemm.weight_error;
    s.activation_error = gemm.activation_error;
    const std::vector<double> yq = gemm.int8();
    s.gemm_error = relative_error(yq, gemm.fp32(), yq.size());
    Tensor out = *base.at(n.outputs[0]);
    passes::dense_epilogue(n, in, gemm.m, gemm.n, yq, &out);
    s.output_error =
        relative_error(out.data<float>(), base.at(n.outputs[0])->data<float>(), out.numel());
    if (options.per_layer_cosine) {
      Values changed;
      changed[n.outputs[0]] = std::make_shared<const Tensor>(std::move(out));
      KILN_RETURN_IF_ERROR(ex.run(&base, i + 1, no_int8, &changed));
      cosines(changed, &s.output_cosine, &s.min_cosine);
    }
    r.layers.push_back(std::move(s));
  }
  Values all;
  KILN_RETURN_IF_ERROR(ex.run(&base, 0, dense_int8, &all));
  cosines(all, &r.all_cosine, &r.all_min_cosine);
  return r;
}

Result<std::map<std::string, std::vector<float>>> dense_input_ranges(
    const ir::Graph& g, const std::map<std::string, Tensor>& inputs) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> sym, passes::bind_input_symbols(g, inputs));
  Values vals;
  for (const Value* v : g.inputs) vals[v] = std::make_shared<const Tensor>(inputs.at(v->name));
  KILN_RETURN_IF_ERROR(Int8Emulator(g, sym, /*int8_tables=*/false).run(nullptr, 0, no_int8, &vals));
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
