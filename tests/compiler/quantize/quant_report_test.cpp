// quant_report: an input channel 100x larger than the rest is listed first for its Dense, that
// Dense has the worst one-layer-quantized cosine, and an outlier-free Dense flags nothing; errors
// name a missing input.
#include "compiler/quantize/quant_report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "graph_test_util.h"

namespace kiln {
namespace {

using ir::Dim;
using test::normal;
using test::op;

constexpr int64_t kSeq = 32, kK = 16, kOutlier = 5;

// x [seq, 16] -> Dense A (bias, GELU); y [seq, 16] -> Dense B (bias); A + B -> Dense C
// (LayerNorm epilogue) -> output. With `outlier`, x's channel 5 is 100x the others and row 5 of
// A's weight 1/100 (as in trained BERTs, the weights reading an outlier channel are small), so
// x W is not dominated by that channel.
struct Model {
  ir::Graph g;
  std::map<std::string, ir::Tensor> inputs;
  explicit Model(bool outlier) {
    g.symbols = {{"seq", 64}};
    ir::Value* x = test::add_input(g, "x", ir::DType::kFloat32, {Dim::symbol(0), kK});
    ir::Value* y = test::add_input(g, "y", ir::DType::kFloat32, {Dim::symbol(0), kK});
    auto weight = [&](const std::string& name, uint32_t seed, float row_scale = 1.0f) {
      std::vector<float> w = normal(kK * kK, seed, 0.25f);
      for (int64_t j = 0; j < kK; ++j) w[kOutlier * kK + j] *= row_scale;
      return g.add_constant(name, test::f32({kK, kK}, w));
    };
    auto vec = [&](const std::string& name, uint32_t seed, float mean) {
      std::vector<float> v = normal(kK, seed, 0.1f);
      for (float& e : v) e += mean;
      return g.add_constant(name, test::f32({kK}, v));
    };
    ir::Value* a = op(g, "Dense", {x, weight("wa", 1, outlier ? 0.01f : 1.0f), vec("ba", 2, 0)},
                      {{"gelu", int64_t{1}}}, "/a/Dense");
    ir::Value* b =
        op(g, "Dense", {y, weight("wb", 3), vec("bb", 4, 0)}, {{"gelu", int64_t{0}}}, "/b/Dense");
    ir::Value* s = op(g, "Add", {a, b}, {}, "/sum/Add");
    ir::Value* c =
        op(g, "Dense", {s, weight("wc", 5), nullptr, nullptr, vec("gamma", 6, 1), nullptr},
           {{"gelu", int64_t{0}}, {"ln_epsilon", 1e-5f}}, "/c/Dense");
    g.outputs = {c};
    EXPECT_TRUE(ir::infer_shapes(g).is_ok());
    std::vector<float> xv = normal(kSeq * kK, 7), yv = normal(kSeq * kK, 8);
    if (outlier)
      for (int64_t i = 0; i < kSeq; ++i) xv[i * kK + kOutlier] *= 100.0f;
    inputs["x"] = test::f32({kSeq, kK}, xv);
    inputs["y"] = test::f32({kSeq, kK}, yv);
  }
};

const quantize::DenseQuantStats& layer(const quantize::QuantReport& r, const std::string& name) {
  for (const auto& l : r.layers)
    if (l.node == name) return l;
  ADD_FAILURE() << "no layer " << name;
  return r.layers.front();
}

TEST(QuantReport, OutlierChannelListedFirstAndWorstCosine) {
  Model m(true);
  auto r = quantize::quant_report(m.g, m.inputs, {});
  ASSERT_TRUE(static_cast<bool>(r)) << r.status().message();
  ASSERT_EQ(r->layers.size(), 3u);
  EXPECT_EQ(r->outputs, std::vector<std::string>{"/c/Dense_out"});
  const auto &a = layer(*r, "/a/Dense"), &b = layer(*r, "/b/Dense"), &c = layer(*r, "/c/Dense");
  EXPECT_EQ(a.rows, kSeq);
  EXPECT_EQ(a.weight, "wa");
  ASSERT_FALSE(a.top.empty());
  EXPECT_EQ(a.top[0].channel, kOutlier);
  EXPECT_GT(a.top[0].ratio_to_median, 30.0);
  EXPECT_EQ(a.outliers, 1);
  EXPECT_EQ(b.outliers, 0);
  // The 100x channel sets every row's scale: the other 15 channels lose most of their bits (the
  // relative error of x itself stays small: that channel dominates its norm).
  EXPECT_GT(a.gemm_error, 3 * b.gemm_error);
  EXPECT_GT(a.gemm_error, 3 * c.gemm_error);
  for (const auto* l : {&a, &b, &c}) {
    ASSERT_EQ(l->output_cosine.size(), 1u);
    EXPECT_TRUE(std::isfinite(l->min_cosine));
    EXPECT_LT(l->min_cosine, 1.0);
    EXPECT_GT(l->weight_error, 0.0);
    EXPECT_LT(l->weight_error, 0.02);  // per-channel int8 of a Gaussian: ~1 %
  }
  EXPECT_LT(a.min_cosine, b.min_cosine);
  EXPECT_LT(a.min_cosine, c.min_cosine);
  EXPECT_LE(r->all_min_cosine, a.min_cosine + 1e-4);
}

TEST(QuantReport, OutlierFreeControlFlagsNothing) {
  Model m(false);
  auto r = quantize::quant_report(m.g, m.inputs, {});
  ASSERT_TRUE(static_cast<bool>(r)) << r.status().message();
  ASSERT_EQ(r->layers.size(), 3u);
  for (const auto& l : r->layers) {
    EXPECT_EQ(l.outliers, 0) << l.node;
    EXPECT_LT(l.top[0].ratio_to_median, 3.0) << l.node;
    EXPECT_LT(l.activation_error, 0.02) << l.node;
    EXPECT_GT(l.min_cosine, 0.999) << l.node;
  }
  EXPECT_GT(r->all_min_cosine, 0.999);
}

// Quantizing the last Dense only: the model output is that Dense's output, so its end-to-end
// cosine and its output error describe the same pair of tensors (1 - cos ~ err^2 / 2).
TEST(QuantReport, LastDenseCosineMatchesItsOutputError) {
  Model m(true);
  auto r = quantize::quant_report(m.g, m.inputs, {});
  ASSERT_TRUE(static_cast<bool>(r)) << r.status().message();
  const auto& c = layer(*r, "/c/Dense");
  EXPECT_GT(c.output_error, 0.0);
  EXPECT_NEAR(1.0 - c.min_cosine, c.output_error * c.output_error / 2, 0.2 * (1.0 - c.min_cosine));
}

TEST(QuantReport, MissingInputIsNamed) {
  Model m(false);
  m.inputs.erase("y");
  auto r = quantize::quant_report(m.g, m.inputs, {});
  ASSERT_FALSE(static_cast<bool>(r));
  EXPECT_NE(r.status().message().find("'y'"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace kiln
