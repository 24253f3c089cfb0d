// Softmax, LayerNormalization, ReduceMean vs double-precision references.
#include <gtest/gtest.h>

#include <cmath>

#include "kiln/kernels/normalization.h"
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
    reduce_mean_f32(x.data(), d.data(), 4, red, y.data(), tb.get());
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
