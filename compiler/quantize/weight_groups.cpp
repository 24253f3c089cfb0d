#include "compiler/quantize/weight_groups.h"

#include <cmath>
#include <map>
#include <random>
#include <utility>

#include "compiler/quantize/quantize.h"
#include "kiln/kernels/gemm/s8_pack.h"

namespace kiln::quantize {

double weight_rounding_error(const float* w, const int8_t* q, const float* scale, int64_t K,
                             int64_t N, int64_t group) {
  const int64_t g = kernels::gemm::effective_s8_weight_group(K, group);
  const int64_t span = g ? g : K;
  double err = 0, ref = 0;
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) {
      const double x = w[k * N + n], d = double(scale[(k / span) * N + n]) * q[k * N + n] - x;
      err += d * d, ref += x * x;
    }
  return ref > 0 ? std::sqrt(err / ref) : 0.0;
}

double weight_rounding_error(const float* w, int64_t K, int64_t N, int64_t group) {
  std::vector<int8_t> q(static_cast<size_t>(K * N));
  std::vector<float> scale(static_cast<size_t>(kernels::gemm::s8_weight_groups(K, group) * N));
  kernels::gemm::quantize_b_s8(w, K, N, /*transposed=*/false, q.data(), scale.data(), group);
  return weight_rounding_error(w, q.data(), scale.data(), K, N, group);
}

double weight_group_gain(const float* w, int64_t K, int64_t N, int64_t group) {
  const double grouped = weight_rounding_error(w, K, N, group);
  return grouped > 0 ? weight_rounding_error(w, K, N, 0) / grouped : 1.0;
}

double gaussian_weight_group_gain(int64_t K, int64_t group) {
  constexpr int64_t kCols = 256;
  std::mt19937 rng(12345);
  std::normal_distribution<float> normal;
  std::vector<float> w(static_cast<size_t>(K * kCols));
  for (float& x : w) x = normal(rng);
  return weight_group_gain(w.data(), K, kCols, group);
}

WeightGroupReport keep_weight_groups_that_pay(ir::Graph& g, double min_excess) {
  WeightGroupReport r;
  std::map<std::pair<int64_t, int64_t>, double> baseline;  // (K, group) -> Gaussian gain
  for (const auto& node : g.nodes()) {
    ir::Node& n = *node;
    const int64_t group = weight_group(n);
    if (n.op != ir::Op::kDense || !is_quantized(n) || group == 0) continue;
    const ir::Value* w = n.input(ir::DenseIn::kWeight);
    if (!w || !w->constant || w->constant->dtype != ir::DType::kFloat32 ||
        w->constant->dims.size() != 2)
      continue;
    const int64_t K = w->constant->dims[0], N = w->constant->dims[1];
    auto [it, fresh] = baseline.try_emplace({K, group}, 0.0);
    if (fresh) it->second = gaussian_weight_group_gain(K, group);
    if (weight_group_gain(w->constant->data<float>(), K, N, group) >= min_excess * it->second) {
      r.grouped.push_back(n.name);
    } else {
      n.attrs.erase("weight_group");
      r.dropped.push_back(n.name);
    }
  }
  return r;
}

}  // namespace kiln::quantize
