// Activation smoothing of INT8 Dense layers; see smooth.h.
#include "compiler/quantize/smooth.h"

#include <algorithm>
#include <cmath>

#include "compiler/quantize/quantize.h"

namespace kiln::quantize {

Result<SmoothReport> smooth_int8_activations(
    ir::Graph& g, const std::map<std::string, std::vector<float>>& ranges, double alpha) {
  if (!(alpha > 0 && alpha < 1)) return Status::error("smoothing alpha must be in (0, 1)");
  SmoothReport r;
  for (const auto& node : g.nodes()) {
    ir::Node& n = *node;
    if (n.op != ir::Op::kDense || !is_quantized(n)) continue;
    const ir::Value* w = n.input(ir::DenseIn::kWeight);
    auto it = ranges.find(n.name);
    if (!w || !w->constant || w->dtype != ir::DType::kFloat32 || w->constant->dims.size() != 2 ||
        it == ranges.end() || n.input(ir::DenseIn::kActSmooth))
      continue;
    const int64_t K = w->constant->dims[0], N = w->constant->dims[1];
    const std::vector<float>& a = it->second;
    if (static_cast<int64_t>(a.size()) != K)
      return Status::error(n.describe() + ": " + std::to_string(a.size()) +
                           " calibrated input channels, W has K = " + std::to_string(K));
    if (K == 0 || !(*std::max_element(a.begin(), a.end()) > 0)) continue;  // all-zero input
    const float* wd = w->constant->data<float>();
    std::vector<double> s(K, 1.0);
    for (int64_t k = 0; k < K; ++k) {
      double wmax = 0;
      for (int64_t j = 0; j < N; ++j) wmax = std::max(wmax, double(std::fabs(wd[k * N + j])));
      if (a[k] > 0 && wmax > 0 && std::isfinite(a[k]))
        s[k] = std::pow(double(a[k]), alpha) / std::pow(wmax, 1 - alpha);
    }
    // Normalised to median 1 (the scale of s cancels in both per-row and per-column int8; this
    // keeps x' and W' near their original magnitudes).
    std::vector<double> sorted = s;
    std::nth_element(sorted.begin(), sorted.begin() + K / 2, sorted.end());
    const double median = sorted[K / 2] > 0 ? sorted[K / 2] : 1.0;
    double lo = INFINITY, hi = 0;
    ir::Tensor ws = *w->constant, smooth;
    smooth.dtype = ir::DType::kFloat32;
    smooth.dims = {K};
    smooth.bytes.resize(K * sizeof(float));
    for (int64_t k = 0; k < K; ++k) {
      const float f = static_cast<float>(s[k] / median);
      lo = std::min(lo, double(f)), hi = std::max(hi, double(f));
      smooth.data<float>()[k] = 1.0f / f;
      for (int64_t j = 0; j < N; ++j) ws.data<float>()[k * N + j] *= f;
    }
    r.largest_factor = std::max(r.largest_factor, hi / lo);
    r.original_weight[n.name] = n.inputs[ir::DenseIn::kWeight];
    ir::Value* w_smoothed = g.add_constant(g.unique_name(w->name + "__smoothed"), std::move(ws));
    ir::Value* act = g.add_constant(g.unique_name(n.name + "/act_smooth"), std::move(smooth));
    if (n.inputs.size() <= ir::DenseIn::kActSmooth) n.inputs.resize(ir::DenseIn::kActSmooth + 1);
    n.inputs[ir::DenseIn::kWeight] = w_smoothed;
    n.inputs[ir::DenseIn::kActSmooth] = act;
    r.smoothed.push_back(n.name);
  }
  return r;
}

void remove_smoothing(ir::Node& n, SmoothReport& r) {
  auto it = r.original_weight.find(n.name);
  if (it == r.original_weight.end()) return;
  n.inputs[ir::DenseIn::kWeight] = it->second;
  n.inputs.resize(ir::DenseIn::kActSmooth);
  while (!n.inputs.empty() && !n.inputs.back()) n.inputs.pop_back();
  r.original_weight.erase(it);
  r.smoothed.erase(std::find(r.smoothed.begin(), r.smoothed.end(), n.name));
}

}  // namespace kiln::quantize
