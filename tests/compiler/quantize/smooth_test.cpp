// Activation smoothing (quantize/smooth.h): calibrated ranges find the outlier channel, the
// smoothed graph computes what the original did in FP32 (x * act_smooth times W * s), the factors
// follow SmoothQuant's rule, and only INT8-marked Dense are touched.
#include "compiler/quantize/smooth.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "compiler/quantize/quant_report.h"
#include "compiler/quantize/quantize.h"
#include "graph_test_util.h"

namespace kiln {
namespace {

using ir::Dim;
using test::normal;
using test::op;

constexpr int64_t kSeq = 24, kK = 16, kN = 8, kOutlier = 3;

// x [seq, 16] (channel 3 x 50) -> Dense(W [16, 8] (row 3 / 50), bias) -> GELU-free output.
struct Model {
  ir::Graph g;
  std::map<std::string, ir::Tensor> inputs;
  ir::Node* dense;
  Model() {
    g.symbols = {{"seq", 64}};
    ir::Value* x = test::add_input(g, "x", ir::DType::kFloat32, {Dim::symbol(0), kK});
    std::vector<float> w = normal(kK * kN, 1, 0.25f);
    for (int64_t j = 0; j < kN; ++j) w[kOutlier * kN + j] /= 50.0f;
    ir::Value* wv = g.add_constant("w", test::f32({kK, kN}, w));
    ir::Value* b = g.add_constant("b", test::f32({kN}, normal(kN, 2, 0.1f)));
    ir::Value* y = op(g, "Dense", {x, wv, b}, {{"gelu", int64_t{0}}}, "/d/Dense");
    dense = y->producer;
    g.outputs = {y};
    EXPECT_TRUE(ir::infer_shapes(g).is_ok());
    std::vector<float> xv = normal(kSeq * kK, 3);
    for (int64_t i = 0; i < kSeq; ++i) xv[i * kK + kOutlier] *= 50.0f;
    inputs["x"] = test::f32({kSeq, kK}, xv);
  }
};

TEST(Smooth, RangesFindTheOutlierAndTheGraphComputesTheSame) {
  Model m, reference;
  auto want = test::run_graph(reference.g, reference.inputs);
  ASSERT_TRUE(static_cast<bool>(want)) << want.status().message();
  ASSERT_TRUE(static_cast<bool>(quantize::quantize_int8(m.g, {})));
  auto ranges = quantize::dense_input_ranges(m.g, m.inputs);
  ASSERT_TRUE(static_cast<bool>(ranges)) << ranges.status().message();
  const std::vector<float>& a = ranges->at("/d/Dense");
  ASSERT_EQ(a.size(), size_t(kK));
  for (int64_t k = 0; k < kK; ++k) {
    if (k != kOutlier) {
      EXPECT_GT(a[kOutlier], 20 * a[k]) << k;
    }
  }

  const ir::Value* w_before = m.dense->input(ir::DenseIn::kWeight);
  auto r = quantize::smooth_int8_activations(m.g, *ranges);
  ASSERT_TRUE(static_cast<bool>(r)) << r.status().message();
  EXPECT_EQ(r->smoothed, std::vector<std::string>{"/d/Dense"});
  const ir::Value* w_after = m.dense->input(ir::DenseIn::kWeight);
  const ir::Value* smooth = m.dense->input(ir::DenseIn::kActSmooth);
  ASSERT_NE(smooth, nullptr);
  ASSERT_NE(w_after, w_before);
  EXPECT_TRUE(ir::infer_shapes(m.g).is_ok());
  // s[k] = sqrt(a[k] / max |W[k, :]|) up to a common factor: act_smooth * s is the same for
  // every channel, and W' = W * s row by row.
  const float* m_k = smooth->constant->data<float>();
  const float *w0 = w_before->constant->data<float>(), *w1 = w_after->constant->data<float>();
  double common = 0;
  for (int64_t k = 0; k < kK; ++k) {
    double wmax = 0;
    for (int64_t j = 0; j < kN; ++j) wmax = std::max(wmax, std::fabs(double(w0[k * kN + j])));
    const double s = std::sqrt(a[k] / wmax);
    if (k == 0) common = s * m_k[0];
    EXPECT_NEAR(s * m_k[k], common, 1e-5 * common) << k;
    for (int64_t j = 0; j < kN; ++j)
      EXPECT_NEAR(w1[k * kN + j], w0[k * kN + j] / m_k[k], 1e-6 * std::fabs(w1[k * kN + j]));
  }
  EXPECT_LT(m_k[kOutlier], 0.1f);  // the outlier channel is divided down, its weights scaled up
  auto got = test::run_graph(m.g, m.inputs);
  ASSERT_TRUE(static_cast<bool>(got)) << got.status().message();
  const ir::Tensor &y0 = want->begin()->second, &y1 = got->begin()->second;
  for (int64_t i = 0; i < y0.numel(); ++i)
    EXPECT_NEAR(y1.data<float>()[i], y0.data<float>()[i], 1e-4) << i;
}

TEST(Smooth, OnlyInt8DenseAndErrors) {
  Model m;
  auto ranges = quantize::dense_input_ranges(m.g, m.inputs);
  ASSERT_TRUE(static_cast<bool>(ranges)) << ranges.status().message();
  auto none = quantize::smooth_int8_activations(m.g, *ranges);  // nothing marked int8
  ASSERT_TRUE(static_cast<bool>(none));
  EXPECT_TRUE(none->smoothed.empty());
  EXPECT_EQ(m.dense->input(ir::DenseIn::kActSmooth), nullptr);
  ASSERT_TRUE(static_cast<bool>(quantize::quantize_int8(m.g, {})));
  EXPECT_FALSE(static_cast<bool>(quantize::smooth_int8_activations(m.g, *ranges, 1.5)));
  // An input that is all zeros on the calibration inputs has no ranges to balance: left alone.
  std::map<std::string, std::vector<float>> zero = {{"/d/Dense", std::vector<float>(kK, 0.0f)}};
  auto skipped = quantize::smooth_int8_activations(m.g, zero);
  ASSERT_TRUE(static_cast<bool>(skipped));
  EXPECT_TRUE(skipped->smoothed.empty());
  EXPECT_EQ(m.dense->input(ir::DenseIn::kActSmooth), nullptr);
  std::map<std::string, std::vector<float>> short_ranges = {{"/d/Dense", {1.0f, 2.0f}}};
  auto bad = quantize::smooth_int8_activations(m.g, short_ranges);
  ASSERT_FALSE(static_cast<bool>(bad));
  EXPECT_NE(bad.status().message().find("/d/Dense"), std::string::npos);
  EXPECT_NE(bad.status().message().find("K = 16"), std::string::npos);
}

}  // namespace
}  // namespace kiln
