// The INT8 emulation's weight groups along K (emulate.h, DenseGemm): the grouped scheme computed
// exactly as the kernels define it, closer to FP32 than per-channel scales when W's rows differ
// 50x in magnitude (what smoothing leaves in trained weights), the same as per channel once a
// group covers K, and the emulator following each Dense's weight_group attribute.
#include "compiler/quantize/emulate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "compiler/quantize/quantize.h"
#include "graph_test_util.h"
#include "kiln/kernels/gemm/s8_pack.h"

namespace kiln {
namespace {

using ir::Dim;
using test::normal;
using test::op;

constexpr int64_t kM = 24, kK = 300, kN = 40;  // K: two groups of 128 and a partial one

// W [K, N] whose rows k >= 128 are 50x smaller than the rest: one scale per column (set by the
// large rows) rounds the small rows to a few levels.
ir::Tensor uneven_weight() {
  std::vector<float> w = normal(kK * kN, 11, 0.5f);
  for (int64_t k = 128; k < kK; ++k)
    for (int64_t j = 0; j < kN; ++j) w[k * kN + j] /= 50.0f;
  return test::f32({kK, kN}, w);
}

// x [M, K], channels alike (as smoothing leaves them).
ir::Tensor activations() {
  return test::f32({kM, kK}, normal(kM * kK, 12));
}

double relative_error(const std::vector<double>& got, const std::vector<double>& want) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < got.size(); ++i)
    err += (got[i] - want[i]) * (got[i] - want[i]), ref += want[i] * want[i];
  return std::sqrt(err / ref);
}

TEST(DenseGemm, GroupedInt8IsTheKernelsScheme) {
  const ir::Tensor x = activations(), w = uneven_weight();
  const quantize::DenseGemm gemm(x, w, nullptr, 128);
  ASSERT_EQ(gemm.group, 128);
  ASSERT_EQ(gemm.w_scale.size(), static_cast<size_t>(3 * kN));
  // s8_pack.h's definition: y = a_scale[m] * sum_g scale[g][n] * sum_{k in g} (qa - z) q.
  std::vector<int8_t> q(kK * kN);
  std::vector<float> scale(3 * kN);
  kernels::gemm::quantize_b_s8(w.data<float>(), kK, kN, false, q.data(), scale.data(), 128);
  ASSERT_EQ(scale, gemm.w_scale);
  const std::vector<double> y = gemm.int8();
  for (int64_t i = 0; i < kM; ++i)
    for (int64_t j = 0; j < kN; ++j) {
      double want = 0;
      for (int64_t g = 0; g < 3; ++g) {
        int64_t sum = 0;  // exact, as the kernels' int32
        for (int64_t k = g * 128; k < std::min(kK, g * 128 + 128); ++k)
          sum += static_cast<int64_t>(gemm.xq[i * kK + k]) * q[k * kN + j];
        want += double(scale[g * kN + j]) * double(sum);
      }
      want *= gemm.x_scale[i];
      ASSERT_NEAR(y[i * kN + j], want, 1e-12 * std::fabs(want) + 1e-12) << i << ", " << j;
    }
}

TEST(DenseGemm, GroupsBeatPerChannelOnUnevenRows) {
  const ir::Tensor x = activations(), w = uneven_weight();
  const quantize::DenseGemm grouped(x, w, nullptr, 128), channel(x, w, nullptr, 0);
  EXPECT_EQ(channel.group, 0);
  EXPECT_EQ(channel.w_scale.size(), static_cast<size_t>(kN));
  // Per channel the small rows round to a few levels of the large rows' step; grouped they use
  // all 255, and only the large rows' rounding is left: sqrt(128 / 300) = 0.65 of the error
  // (measured 0.0062 vs 0.0095).
  EXPECT_LT(grouped.weight_error, 0.75 * channel.weight_error)
      << grouped.weight_error << " vs " << channel.weight_error;
  EXPECT_EQ(grouped.activation_error, channel.activation_error);
  // x W: the activations' rounding is common to both (measured 0.0094 vs 0.0126).
  const std::vector<double> ref = grouped.fp32();
  const double e_grouped = relative_error(grouped.int8(), ref);
  const double e_channel = relative_error(channel.int8(), ref);
  EXPECT_LT(e_grouped, 0.85 * e_channel) << e_grouped << " vs " << e_channel;
}

TEST(DenseGemm, GroupCoveringKIsPerChannel) {
  const ir::Tensor x = activations(), w = uneven_weight();
  const quantize::DenseGemm channel(x, w, nullptr, 0);
  for (int64_t group : {kK, int64_t{512}}) {  // == K and > K (K = 300 is not a multiple of 4)
    const quantize::DenseGemm g(x, w, nullptr, group);
    EXPECT_EQ(g.group, 0) << group;
    EXPECT_EQ(g.w_scale, channel.w_scale) << group;
    EXPECT_EQ(g.weight_error, channel.weight_error) << group;
    EXPECT_EQ(g.int8(), channel.int8()) << group;
  }
}

// x -> Dense (W above, marked by quantize_int8 with `group`) -> y: the emulator multiplies with
// the node's group, which is what lowering packs.
TEST(Int8Emulator, DenseUsesItsWeightGroup) {
  for (int64_t group : {int64_t{0}, int64_t{64}, int64_t{128}}) {
    ir::Graph g;
    g.symbols = {{"rows", kM}};
    ir::Value* xv = test::add_input(g, "x", ir::DType::kFloat32, {Dim::symbol(0), kK});
    ir::Value* y = op(g, "Dense", {xv, g.add_constant("w", uneven_weight())},
                      {{"gelu", int64_t{0}}}, "/d/Dense");
    g.outputs = {y};
    ASSERT_TRUE(ir::infer_shapes(g).is_ok());
    ASSERT_TRUE(static_cast<bool>(quantize::quantize_int8(g, {{}, group})));
    ASSERT_EQ(quantize::weight_group(*y->producer), group);
    const ir::Tensor x = activations();
    const quantize::Int8Emulator ex(g, {kM}, /*int8_tables=*/false);
    auto out = ex.evaluate(*y->producer, {&x, y->producer->input(1)->constant.get()},
                           [](const ir::Node&, size_t) { return true; });
    ASSERT_TRUE(static_cast<bool>(out)) << out.status().message();
    const std::vector<double> want =
        quantize::DenseGemm(x, *y->producer->input(1)->constant, nullptr, group).int8();
    const float* got = (*out)[0].data<float>();
    for (int64_t i = 0; i < kM * kN; ++i)
      ASSERT_FLOAT_EQ(got[i], static_cast<float>(want[i])) << "group " << group << ", " << i;
  }
}

}  // namespace
}  // namespace kiln
