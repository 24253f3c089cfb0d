// Automatic mixed precision (quantize/mixed_precision.h): the Dense whose INT8 input is ruined by
// an outlier channel is the one kept in FP32, a target already met keeps nothing, a target of 1
// keeps everything (undoing smoothing), and bad targets or graphs are named errors.
#include "compiler/quantize/mixed_precision.h"

#include <gtest/gtest.h>

#include "compiler/quantize/quant_report.h"
#include "compiler/quantize/quantize.h"
#include "graph_test_util.h"

namespace kiln {
namespace {

using ir::Dim;
using test::normal;
using test::op;

constexpr int64_t kSeq = 32, kK = 16, kN = 16, kOutlier = 5;

// x [seq, 16] (channel 5 x 300) -> /a/Dense (W row 5 / 300) -> /b/Dense -> y. /a's per-token INT8
// spends its 255 steps on channel 5; /b's input is flat. Weight scales per group of
// `weight_group` input channels (K = 16: the default 128 is per channel).
struct Model {
  ir::Graph g;
  std::map<std::string, ir::Tensor> inputs;
  ir::Node *a, *b;
  explicit Model(int64_t weight_group = kernels::gemm::kS8WeightGroup) {
    g.symbols = {{"seq", 64}};
    ir::Value* x = test::add_input(g, "x", ir::DType::kFloat32, {Dim::symbol(0), kK});
    std::vector<float> wa = normal(kK * kN, 1, 0.25f);
    for (int64_t j = 0; j < kN; ++j) wa[kOutlier * kN + j] /= 300.0f;
    ir::Value* h = op(g, "Dense", {x, g.add_constant("wa", test::f32({kK, kN}, wa))},
                      {{"gelu", int64_t{0}}}, "/a/Dense");
    ir::Value* y =
        op(g, "Dense", {h, g.add_constant("wb", test::f32({kN, kN}, normal(kN * kN, 2, 0.25f)))},
           {{"gelu", int64_t{0}}}, "/b/Dense");
    a = h->producer, b = y->producer;
    g.outputs = {y};
    EXPECT_TRUE(ir::infer_shapes(g).is_ok());
    std::vector<float> xv = normal(kSeq * kK, 3);
    for (int64_t i = 0; i < kSeq; ++i) xv[i * kK + kOutlier] *= 300.0f;
    inputs["x"] = test::f32({kSeq, kK}, xv);
    EXPECT_TRUE(static_cast<bool>(quantize::quantize_int8(g, {{}, weight_group})));
  }
};

TEST(MixedPrecision, KeepsTheDenseTheOutlierRuinsInFp32) {
  Model m;
  auto r = quantize::keep_fp32_for_cosine(m.g, m.inputs, nullptr, {0.9999, 2});
  ASSERT_TRUE(static_cast<bool>(r)) << r.status().message();
  EXPECT_EQ(r->candidates, 2u);
  EXPECT_LT(r->int8.mean_cosine, 0.999);  // otherwise this test could not fail
  ASSERT_EQ(r->kept_fp32.size(), 1u);
  EXPECT_EQ(r->kept_fp32[0].name, "/a/Dense");
  EXPECT_LT(r->kept_fp32[0].alone_cosine, 0.999);
  EXPECT_GE(r->chosen.mean_cosine, 0.9999);
  EXPECT_LE(r->chosen.worst_cosine, r->chosen.mean_cosine);
  EXPECT_FALSE(quantize::is_quantized(*m.a));
  EXPECT_TRUE(quantize::is_quantized(*m.b));
  EXPECT_EQ(r->runs, 5);  // FP32, all INT8, two alone, k = 1 (the only probe: k = 2 is exact)
}

TEST(MixedPrecision, TargetAlreadyMetKeepsNothing) {
  Model m;
  auto r = quantize::keep_fp32_for_cosine(m.g, m.inputs, nullptr, {0.5, 1});
  ASSERT_TRUE(static_cast<bool>(r)) << r.status().message();
  EXPECT_TRUE(r->kept_fp32.empty());
  EXPECT_EQ(r->runs, 2);
  EXPECT_EQ(r->chosen.mean_cosine, r->int8.mean_cosine);
  EXPECT_TRUE(quantize::is_quantized(*m.a) && quantize::is_quantized(*m.b));
}

TEST(MixedPrecision, ExactTargetKeepsEverythingAndUndoesSmoothing) {
  Model m;
  auto ranges = quantize::dense_input_ranges(m.g, m.inputs);
  ASSERT_TRUE(static_cast<bool>(ranges)) << ranges.status().message();
  const ir::Value* wa = m.a->input(ir::DenseIn::kWeight);
  auto smoothed = quantize::smooth_int8_activations(m.g, *ranges);
  ASSERT_TRUE(static_cast<bool>(smoothed)) << smoothed.status().message();
  ASSERT_EQ(smoothed->smoothed, (std::vector<std::string>{"/a/Dense", "/b/Dense"}));
  ASSERT_NE(m.a->input(ir::DenseIn::kWeight), wa);

  auto r = quantize::keep_fp32_for_cosine(m.g, m.inputs, &*smoothed, {1.0, 2});
  ASSERT_TRUE(static_cast<bool>(r)) << r.status().message();
  EXPECT_EQ(r->kept_fp32.size(), 2u);
  EXPECT_EQ(r->chosen.mean_cosine, 1.0);
  EXPECT_FALSE(quantize::is_quantized(*m.a) || quantize::is_quantized(*m.b));
  EXPECT_EQ(m.a->input(ir::DenseIn::kWeight), wa);
  EXPECT_EQ(m.a->input(ir::DenseIn::kActSmooth), nullptr);
  EXPECT_EQ(m.b->input(ir::DenseIn::kActSmooth), nullptr);
  EXPECT_TRUE(smoothed->smoothed.empty());
  EXPECT_TRUE(ir::infer_shapes(m.g).is_ok());
}

// A layer kept in FP32 loses its weight group with its INT8 mark (an FP32 GEMM has no weight
// scales); the others keep theirs.
TEST(MixedPrecision, KeptLayersLoseTheirWeightGroup) {
  Model m(4);
  ASSERT_EQ(quantize::weight_group(*m.a), 4);
  ASSERT_EQ(quantize::weight_group(*m.b), 4);
  auto r = quantize::keep_fp32_for_cosine(m.g, m.inputs, nullptr, {0.9999, 2});
  ASSERT_TRUE(static_cast<bool>(r)) << r.status().message();
  ASSERT_EQ(r->kept_fp32.size(), 1u);
  EXPECT_EQ(r->kept_fp32[0].name, "/a/Dense");
  EXPECT_FALSE(m.a->has_attr("weight_group"));
  EXPECT_EQ(quantize::weight_group(*m.b), 4);
}

TEST(MixedPrecision, SmoothingShowsInTheEmulation) {
  Model plain, smooth;
  auto ranges = quantize::dense_input_ranges(smooth.g, smooth.inputs);
  ASSERT_TRUE(static_cast<bool>(ranges));
  ASSERT_TRUE(static_cast<bool>(quantize::smooth_int8_activations(smooth.g, *ranges)));
  auto p = quantize::keep_fp32_for_cosine(plain.g, plain.inputs, nullptr, {0.5, 1});
  auto s = quantize::keep_fp32_for_cosine(smooth.g, smooth.inputs, nullptr, {0.5, 1});
  ASSERT_TRUE(p && s);
  EXPECT_GT(1 - p->int8.mean_cosine, 10 * (1 - s->int8.mean_cosine))
      << p->int8.mean_cosine << " vs smoothed " << s->int8.mean_cosine;
}

TEST(MixedPrecision, Errors) {
  Model m;
  auto bad = quantize::keep_fp32_for_cosine(m.g, m.inputs, nullptr, {1.5, 1});
  ASSERT_FALSE(static_cast<bool>(bad));
  EXPECT_NE(bad.status().message().find("(0, 1]"), std::string::npos) << bad.status().message();
  auto missing = quantize::keep_fp32_for_cosine(m.g, {}, nullptr, {0.999, 1});
  ASSERT_FALSE(static_cast<bool>(missing));
  EXPECT_NE(missing.status().message().find("'x'"), std::string::npos)
      << missing.status().message();
}

}  // namespace
}  // namespace kiln
