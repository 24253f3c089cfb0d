// Softmax, LayerNormalization, ReduceMean vs double-precision references.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kiln/kernels/normalization.h"
#include "kiln/kernels/reduce.h"
#include "test_util.h"

namespace kiln::kernels {
namespace {
using testing::numel;
using testing::random_floats;
using testing::TestBackend;
using testing::unravel;
using Dims = std::vector<int64_t>;

TEST(Softmax, AnyAxis) {
  TestBackend tb;
  for (auto [outer, n, inner] : std::vector<std::array<int64_t, 3>>{
           {1, 1, 1}, {7, 13, 1}, {3, 37, 5}, {1, 7, 13}, {48, 129, 1}}) {
    auto x = random_floats(outer * n * inner, 31, -8.f, 8.f);
    std::vector<float> y(x.size());
    softmax_f32(x.data(), y.data(), outer, n, inner, tb.get());
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t in = 0; in < inner; ++in) {
        double mx = -1e30, sum = 0;
        for (int64_t i = 0; i < n; ++i) mx = std::max(mx, double(x[(o * n + i) * inner + in]));
        for (int64_t i = 0; i < n; ++i) sum += std::exp(x[(o * n + i) * inner + in] - mx);
        for (int64_t i = 0; i < n; ++i) {
          const int64_t k = (o * n + i) * inner + in;
          ASSERT_NEAR(y[k], std::exp(x[k] - mx) / sum, 1e-6);
        }
      }
  }
}

TEST(LayerNorm, MatchesReferenceWithLargeMean) {
  TestBackend tb;
  for (auto [rows, n] : std::vector<std::array<int64_t, 2>>{{1, 1}, {7, 13}, {37, 768}}) {
    auto x = random_floats(rows * n, 41, 90.f, 110.f);  // large mean: one-pass var would cancel
    auto s = random_floats(n, 42), b = random_floats(n, 43);
    std::vector<float> y(x.size()), y2(x.size());
    layernorm_f32(x.data(), s.data(), b.data(), y.data(), rows, n, 1e-12f, tb.get());
    layernorm_f32(x.data(), nullptr, nullptr, y2.data(), rows, n, 1e-5f, nullptr);
    for (int64_t r = 0; r < rows; ++r) {
      double mean = 0, var = 0;
      for (int64_t i = 0; i < n; ++i) mean += x[r * n + i];
      mean /= n;
      for (int64_t i = 0; i < n; ++i) var += (x[r * n + i] - mean) * (x[r * n + i] - mean);
      var /= n;
      for (int64_t i = 0; i < n; ++i) {
        double z = (x[r * n + i] - mean) / std::sqrt(var + 1e-12);
        ASSERT_NEAR(y[r * n + i], z * s[i] + b[i], 2e-4) << r << "," << i;
        ASSERT_NEAR(y2[r * n + i], (x[r * n + i] - mean) / std::sqrt(var + 1e-5), 2e-4);
      }
    }
  }
}

// Double-precision softmax of one row (all -inf gives NaN, as the kernel and PyTorch).
std::vector<double> softmax_ref(const float* x, int64_t n) {
  double mx = -INFINITY, sum = 0;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, double(x[i]));
  if (mx == -INFINITY) mx = 0;
  std::vector<double> y(n);
  for (int64_t i = 0; i < n; ++i) sum += y[i] = std::exp(double(x[i]) - mx);
  for (auto& v : y) v /= sum;
  return y;
}

// The vector row kernel (inner == 1) at lengths around every vector / unroll boundary (4, 8, 16
// lanes; 2 and 4 vectors per step), with masked (-inf) keys, fully masked rows, and in place.
TEST(Softmax, LastAxisRowsEveryLength) {
  TestBackend tb;
  for (int64_t n = 1; n <= 200; n += (n < 70 ? 1 : 13)) {
    const int64_t rows = 5;
    auto x = random_floats(rows * n, 61 + uint32_t(n), -20.f, 20.f);
    for (int64_t i = 0; i < n; i += 3) x[1 * n + i] = -INFINITY;  // row 1: masked keys
    for (int64_t i = 0; i < n; ++i) x[2 * n + i] = -INFINITY;     // row 2: all masked
    for (int64_t i = 0; i < n; ++i) x[3 * n + i] += 1000.f;       // row 3: large values
    std::vector<float> y(x.size()), inplace = x;
    softmax_f32(x.data(), y.data(), rows, n, 1, tb.get());
    softmax_f32(inplace.data(), inplace.data(), rows, n, 1, nullptr);
    for (int64_t r = 0; r < rows; ++r) {
      const auto want = softmax_ref(x.data() + r * n, n);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t k = r * n + i;
        if (std::isnan(want[i])) {  // row 2, and row 1 when n == 1
          ASSERT_TRUE(std::isnan(y[k])) << n;
        } else {
          ASSERT_NEAR(y[k], want[i], 1e-6 + 1e-6 * want[i]) << "n " << n << " row " << r;
          if (std::isinf(x[k])) {
            ASSERT_EQ(y[k], 0.0f);
          }
        }
        ASSERT_EQ(std::isnan(y[k]) ? 0.f : y[k], std::isnan(inplace[k]) ? 0.f : inplace[k]);
      }
    }
  }
}

TEST(Softmax, NanInRowGivesNan) {
  std::vector<float> x{1, 2, NAN, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
  std::vector<float> y(x.size());
  softmax_f32(x.data(), y.data(), 1, int64_t(x.size()), 1, nullptr);
  EXPECT_TRUE(std::isnan(y[2]));
}

// layernorm_row_f32 at every length up to 3 unrolled AVX-512 steps and BERT's sizes, each
// combination of null scale / bias, and in place (y == x); tolerance is relative to the output
// scale (|z| up to ~sqrt(n)).
TEST(LayerNorm, RowEveryLengthAndNullParams) {
  std::vector<int64_t> lengths;
  for (int64_t n = 1; n <= 200; ++n) lengths.push_back(n);
  for (int64_t n : {255, 256, 257, 767, 768, 769, 1024}) lengths.push_back(n);
  for (int64_t n : lengths) {
    auto x = random_floats(n, 71 + uint32_t(n), -3.f, 5.f);
    auto s = random_floats(n, 72, 0.5f, 1.5f), b = random_floats(n, 73);
    double mean = 0, var = 0;
    for (float v : x) mean += v;
    mean /= n;
    for (float v : x) var += (v - mean) * (v - mean);
    var /= n;
    const float eps = 1e-5f;
    for (int mode = 0; mode < 4; ++mode) {
      const float* ps = (mode & 1) ? s.data() : nullptr;
      const float* pb = (mode & 2) ? b.data() : nullptr;
      std::vector<float> y(n, NAN), inplace = x;
      layernorm_row_f32(x.data(), ps, pb, y.data(), n, eps);
      layernorm_row_f32(inplace.data(), ps, pb, inplace.data(), n, eps);
      for (int64_t i = 0; i < n; ++i) {
        double want = (x[i] - mean) / std::sqrt(var + eps);
        if (ps) want *= s[i];
        if (pb) want += b[i];
        ASSERT_NEAR(y[i], want, 2e-6 * (1 + std::fabs(want))) << "n " << n << " mode " << mode;
        ASSERT_EQ(y[i], inplace[i]) << "n " << n << " mode " << mode;
      }
    }
  }
}

// A constant row has variance 0: y = bias (scale * 0 + bias), no NaN.
TEST(LayerNorm, ConstantRowGivesBias) {
  const int64_t n = 37;
  std::vector<float> x(n, 3.25f), s(n, 2.f), b = random_floats(n, 74), y(n);
  layernorm_f32(x.data(), s.data(), b.data(), y.data(), 1, n, 1e-12f, nullptr);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i], b[i]);
}

TEST(ReduceMean, GenericAxes) {
  Dims d{3, 7, 13, 5};
  auto x = random_floats(numel(d), 51);
  TestBackend tb;
  for (int mask = 1; mask < 16; ++mask) {
    uint8_t red[4];
    Dims od(4);
    for (int i = 0; i < 4; ++i) {
      red[i] = (mask >> i) & 1;
      od[i] = red[i] ? 1 : d[i];
    }
    std::vector<float> y(numel(od));
    reduce<reduce_op::Mean>(x.data(), d.data(), 4, red, y.data(), tb.get());
    std::vector<double> sum(y.size(), 0.0);
    int64_t count = 1;
    for (int i = 0; i < 4; ++i) count *= red[i] ? d[i] : 1;
    for (int64_t i = 0; i < numel(d); ++i) {
      auto idx = unravel(i, d);
      int64_t o = 0;
      for (int k = 0; k < 4; ++k) o = o * od[k] + (red[k] ? 0 : idx[k]);
      sum[o] += x[i];
    }
    for (size_t o = 0; o < y.size(); ++o) ASSERT_NEAR(y[o], sum[o] / count, 1e-6) << mask;
  }
}

}  // namespace
}  // namespace kiln::kernels
