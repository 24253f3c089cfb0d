// host_gemm.h against plain double loops: exact on int8 operands (the INT8 kernels' integer dot
// products) at K beyond one float chunk, also with weight group scales, close in FP32, every tile
// and panel tail.
#include "compiler/quantize/host_gemm.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace kiln::quantize {
namespace {

std::vector<double> reference(const std::vector<float>& x, const std::vector<float>& b, int64_t m,
                              int64_t k, int64_t n) {
  std::vector<double> y(static_cast<size_t>(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t p = 0; p < k; ++p)
      for (int64_t j = 0; j < n; ++j) y[i * n + j] += double(x[i * k + p]) * b[p * n + j];
  return y;
}

struct Shape {
  int64_t m, k, n;
};

class HostGemm : public ::testing::TestWithParam<Shape> {};

// The worst case of kiln's INT8 GEMM: activations q - z = +-255 and weights +-127 of one sign, so
// every float chunk reaches its largest sum (kKc * 255 * 127 < 2^24).
TEST_P(HostGemm, Int8OperandsExact) {
  const auto [m, k, n] = GetParam();
  std::mt19937 rng(m * 1000 + k + n);
  std::vector<float> x(m * k), b(k * n);
  for (float& v : x) v = rng() % 4 ? 255.0f : static_cast<float>(int(rng() % 511) - 255);
  for (float& v : b) v = rng() % 4 ? 127.0f : static_cast<float>(int(rng() % 255) - 127);
  std::vector<double> y(m * n);
  host_gemm(x.data(), m, PackedPanels(b.data(), k, n), y.data());
  const std::vector<double> want = reference(x, b, m, k, n);
  for (int64_t i = 0; i < m * n; ++i) ASSERT_EQ(y[i], want[i]) << "element " << i;
}

TEST_P(HostGemm, Float32Close) {
  const auto [m, k, n] = GetParam();
  std::mt19937 rng(k);
  std::normal_distribution<float> d;
  std::vector<float> x(m * k), b(k * n);
  for (float& v : x) v = d(rng);
  for (float& v : b) v = d(rng);
  std::vector<double> y(m * n);
  host_gemm(x.data(), m, PackedPanels(b.data(), k, n), y.data());
  const std::vector<double> want = reference(x, b, m, k, n);
  for (int64_t i = 0; i < m * n; ++i)
    ASSERT_NEAR(y[i], want[i], 1e-5 * std::sqrt(double(k))) << "element " << i;
}

INSTANTIATE_TEST_SUITE_P(Shapes, HostGemm,
                         ::testing::Values(Shape{1, 1, 1}, Shape{6, 16, 16}, Shape{7, 33, 17},
                                           Shape{13, 1100, 40}, Shape{5, 3072, 3}),
                         [](const auto& info) {
                           return "m" + std::to_string(info.param.m) + "k" +
                                  std::to_string(info.param.k) + "n" + std::to_string(info.param.n);
                         });

// Column scales per group of k (s8_pack.h's weight groups): each group's integer sum is exact and
// scaled on its own, including a last partial group and groups of a whole float chunk.
TEST(HostGemm, GroupScales) {
  for (const Shape& shape : {Shape{7, 300, 20}, Shape{3, 1100, 17}, Shape{2, 64, 5}}) {
    const auto [m, k, n] = shape;
    for (int64_t group : {int64_t{4}, int64_t{128}, int64_t{512}, int64_t{0}}) {
      const int64_t span = group > 0 && group < k ? group : k, groups = (k + span - 1) / span;
      std::mt19937 rng(static_cast<uint32_t>(k + group));
      std::vector<float> x(m * k), b(k * n), scale(groups * n);
      for (float& v : x) v = static_cast<float>(int(rng() % 511) - 255);
      for (float& v : b) v = static_cast<float>(int(rng() % 255) - 127);
      for (float& v : scale) v = std::ldexp(static_cast<float>(rng() % 1000 + 1), -12);
      std::vector<double> y(m * n);
      host_gemm(x.data(), m, PackedPanels(b.data(), k, n), y.data(), scale.data(), group);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double want = 0;
          for (int64_t g = 0; g < groups; ++g) {
            double sum = 0;
            for (int64_t p = g * span; p < std::min(k, (g + 1) * span); ++p)
              sum += double(x[i * k + p]) * b[p * n + j];
            want += sum * scale[g * n + j];
          }
          ASSERT_EQ(y[i * n + j], want)
              << "k " << k << " group " << group << " at " << i << ", " << j;
        }
    }
  }
}

TEST(HostGemm, Int8WeightsPackedFromInt8) {
  const std::vector<int8_t> w = {-127, 3, 127, -1, 0, 5};  // [2, 3]
  const std::vector<float> x = {2, -1};                    // [1, 2]
  std::vector<double> y(3);
  host_gemm(x.data(), 1, PackedPanels(w.data(), 2, 3), y.data());
  EXPECT_EQ(y, (std::vector<double>{-253, 6, 249}));
}

TEST(HostGemm, EmptyOperands) {
  std::vector<double> y;
  host_gemm(nullptr, 0, PackedPanels(static_cast<const float*>(nullptr), 0, 0), y.data());
  std::vector<double> z(4, 7.0);  // K = 0: Y = 0
  host_gemm(nullptr, 2, PackedPanels(static_cast<const float*>(nullptr), 0, 2), z.data());
  EXPECT_EQ(z, std::vector<double>(4, 0.0));
}

}  // namespace
}  // namespace kiln::quantize
