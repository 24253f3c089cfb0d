// Where weight groups pay (weight_groups.h): Gaussian weights gain only what fewer values per scale
// give and drop their groups; weights with rows of different magnitude (what smoothing leaves in
// trained ones) keep them; the baseline grows with K, as the absmax of more values does.
#include "compiler/quantize/weight_groups.h"

#include <gtest/gtest.h>

#include <vector>

#include "compiler/quantize/quantize.h"
#include "graph_test_util.h"

namespace kiln {
namespace {

using ir::Dim;
using test::normal;
using test::op;

TEST(WeightGroups, GaussianBaselineGrowsWithK) {
  const double k384 = quantize::gaussian_weight_group_gain(384, 64);
  const double k3072 = quantize::gaussian_weight_group_gain(3072, 64);
  EXPECT_GT(k384, 1.1);
  EXPECT_GT(k3072, k384 + 0.1);
  EXPECT_LT(k3072, 1.6);
  // A group covering K is per channel: no gain.
  EXPECT_DOUBLE_EQ(quantize::gaussian_weight_group_gain(64, 64), 1.0);
}

// A graph x [rows, K] -> Dense(W) per weight, INT8 marked with groups of 64.
struct Model {
  ir::Graph g;
  std::vector<ir::Node*> dense;
};

void build(Model& m, const std::vector<std::vector<float>>& weights, int64_t K, int64_t N) {
  m.g.symbols = {{"rows", 8}};
  ir::Value* x = test::add_input(m.g, "x", ir::DType::kFloat32, {Dim::symbol(0), K});
  for (size_t i = 0; i < weights.size(); ++i) {
    const std::string name = "/d" + std::to_string(i) + "/Dense";
    ir::Value* y =
        op(m.g, "Dense", {x, m.g.add_constant(name + ".w", test::f32({K, N}, weights[i]))},
           {{"gelu", int64_t{0}}}, name);
    m.g.outputs.push_back(y);
    m.dense.push_back(y->producer);
  }
  ASSERT_TRUE(ir::infer_shapes(m.g).is_ok());
  ASSERT_TRUE(static_cast<bool>(quantize::quantize_int8(m.g, {{}, 64})));
}

TEST(WeightGroups, KeptWhereRowsDifferDroppedOnNoise) {
  const int64_t K = 768, N = 96;
  std::vector<float> gaussian = normal(K * N, 3, 0.02f), uneven = normal(K * N, 4, 0.02f);
  // Every fourth block of 64 rows 20x larger, as smoothing scales rows by their inputs' ranges.
  for (int64_t k = 0; k < K; ++k)
    if (k / 64 % 4 == 0)
      for (int64_t n = 0; n < N; ++n) uneven[k * N + n] *= 20.0f;
  Model m;
  build(m, {gaussian, uneven}, K, N);
  ASSERT_EQ(quantize::weight_group(*m.dense[0]), 64);
  ASSERT_EQ(quantize::weight_group(*m.dense[1]), 64);
  const double base = quantize::gaussian_weight_group_gain(K, 64);
  EXPECT_LT(quantize::weight_group_gain(gaussian.data(), K, N, 64), 1.1 * base);
  EXPECT_GT(quantize::weight_group_gain(uneven.data(), K, N, 64), 1.5 * base);
  const quantize::WeightGroupReport r = quantize::keep_weight_groups_that_pay(m.g);
  EXPECT_EQ(r.grouped, std::vector<std::string>{"/d1/Dense"});
  EXPECT_EQ(r.dropped, std::vector<std::string>{"/d0/Dense"});
  EXPECT_EQ(quantize::weight_group(*m.dense[0]), 0);
  EXPECT_EQ(quantize::weight_group(*m.dense[1]), 64);
}

TEST(WeightGroups, RoundingErrorIsQuantizeB) {
  // One column, K 8 in groups of 4, each group's values whole multiples of its absmax / 127
  // (grouped: exact), the second group 100x smaller (per channel: rounded to 0 or 1 step).
  std::vector<float> w = {1.27f, -1.27f, 0.5f, 1.0f, 0.0127f, -0.0127f, 0.005f, 0.01f};
  EXPECT_NEAR(quantize::weight_rounding_error(w.data(), 8, 1, 4), 0.0, 1e-6);
  EXPECT_GT(quantize::weight_rounding_error(w.data(), 8, 1, 0), 1e-3);
}

}  // namespace
}  // namespace kiln
