// Where INT8 weight groups along K pay (docs/architecture.md, "Weight groups along K").
//
// Scales per group of 64 k cost the GEMM 9-20 % (the kernels add each group's int32 sums into
// float sums: kiln_gemm_s8_bench `_g64` rows), so a Dense keeps its `weight_group` (quantize.h)
// only where its weight is heavier-tailed along K than noise: where the groups cut its rounding
// error by kMinWeightGroupExcess x what they cut for Gaussian weights of the same K. Groups always
// gain something from the smaller absmax of fewer values (Gaussian, groups of 64: 1.22x at K 384,
// 1.42x at K 3072), which is why a fixed threshold does not work; a randomly initialised model
// gains just that and keeps one scale per channel. On the real all-MiniLM-L6-v2 after smoothing
// the FFN-down projections (K 1536) gain 1.6-2.4x against 1.36x (kiln quant-report).
#pragma once

#include <string>
#include <vector>

#include "compiler/ir/graph.h"

namespace kiln::quantize {

constexpr double kMinWeightGroupExcess = 1.15;

// Relative Frobenius error of W [K, N] quantized as quantize_b_s8 does with `group`; the second
// form takes that quantization's q [K, N] and scale [G, N].
double weight_rounding_error(const float* w, int64_t K, int64_t N, int64_t group);
double weight_rounding_error(const float* w, const int8_t* q, const float* scale, int64_t K,
                             int64_t N, int64_t group);

// Per-channel error / grouped error for W [K, N], and the same for a fixed Gaussian [K, 256].
double weight_group_gain(const float* w, int64_t K, int64_t N, int64_t group);
double gaussian_weight_group_gain(int64_t K, int64_t group);

struct WeightGroupReport {
  std::vector<std::string> grouped;  // Dense that keep their groups, graph order
  std::vector<std::string> dropped;  // Dense back to one scale per output channel
};

// For every INT8 Dense with a `weight_group`, on its weight as it will be packed (smoothed or
// not): keeps the attribute when weight_group_gain >= min_excess x gaussian_weight_group_gain,
// else removes it.
WeightGroupReport keep_weight_groups_that_pay(ir::Graph& g,
                                              double min_excess = kMinWeightGroupExcess);

}  // namespace kiln::quantize
