// runtime/pooling.{h,cpp} (kiln_model_embed's pooling and L2 normalisation) against a plain
// double-precision reference that reads the attention mask, on odd shapes. Padded positions
// hold 1e30: a kernel that read one (a max or a sum over it, a wrong row) would fail. Runs natively
// and, in the cross build, under qemu (Cortex-A72 and A76).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "runtime/pooling.h"

namespace kiln::rt {
namespace {

// out[b] = mode over the positions t with mask[b][t] = 1 (any order), in double.
std::vector<double> reference(Pooling mode, const std::vector<float>& hidden,
                              const std::vector<int>& mask, int64_t batch, int64_t seq,
                              int64_t dim) {
  std::vector<double> out(batch * dim, 0);
  for (int64_t b = 0; b < batch; ++b) {
    int64_t count = 0, first = -1, last = -1;
    for (int64_t t = 0; t < seq; ++t)
      if (mask[b * seq + t]) {
        ++count;
        if (first < 0) first = t;
        last = t;
      }
    for (int64_t d = 0; d < dim; ++d) {
      auto h = [&](int64_t t) { return static_cast<double>(hidden[(b * seq + t) * dim + d]); };
      double v = 0;
      if (mode == Pooling::kCls) v = h(first);
      if (mode == Pooling::kLast) v = h(last);
      if (mode == Pooling::kMean) {
        for (int64_t t = 0; t < seq; ++t)
          if (mask[b * seq + t]) v += h(t);
        v /= count;
      }
      if (mode == Pooling::kMax) {
        v = -std::numeric_limits<double>::infinity();
        for (int64_t t = 0; t < seq; ++t)
          if (mask[b * seq + t]) v = std::max(v, h(t));
      }
      out[b * dim + d] = v;
    }
  }
  return out;
}

constexpr float kPadding = 1e30f;

struct Case {
  int64_t batch, seq, dim;
};

class PoolingTest : public ::testing::TestWithParam<Pooling> {};

TEST_P(PoolingTest, MatchesReferenceAndNeverReadsPadding) {
  const Pooling mode = GetParam();
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> value(-3, 3);
  for (const Case& c : {Case{1, 1, 1}, Case{1, 5, 3}, Case{3, 7, 17}, Case{5, 33, 384},
                        Case{2, 130, 31}, Case{4, 2, 64}}) {
    std::vector<float> hidden(c.batch * c.seq * c.dim, kPadding);
    std::vector<int> mask(c.batch * c.seq, 0);
    std::vector<int64_t> lengths(c.batch);
    for (int64_t b = 0; b < c.batch; ++b) {
      // the first row full, the others any length in [1, seq]
      lengths[b] = b == 0 ? c.seq : 1 + static_cast<int64_t>(rng() % c.seq);
      for (int64_t t = 0; t < lengths[b]; ++t) {
        mask[b * c.seq + t] = 1;
        for (int64_t d = 0; d < c.dim; ++d) hidden[(b * c.seq + t) * c.dim + d] = value(rng);
      }
    }
    // out rows in reverse order, as kiln_model_embed scatters sorted texts back
    std::vector<float> out(c.batch * c.dim, -1);
    std::vector<float*> rows(c.batch);
    for (int64_t b = 0; b < c.batch; ++b) rows[b] = out.data() + (c.batch - 1 - b) * c.dim;
    pool_f32(mode, hidden.data(), c.batch, c.seq, c.dim, lengths.data(), rows.data());
    const std::vector<double> want = reference(mode, hidden, mask, c.batch, c.seq, c.dim);
    for (int64_t b = 0; b < c.batch; ++b)
      for (int64_t d = 0; d < c.dim; ++d) {
        const double w = want[b * c.dim + d];
        ASSERT_NEAR(rows[b][d], w, 1e-5 * (1 + std::fabs(w)))
            << pooling_name(mode) << " batch " << c.batch << " seq " << c.seq << " dim " << c.dim
            << " row " << b << " (length " << lengths[b] << ") d " << d;
      }

    l2_normalize_f32(rows.data(), c.batch, c.dim);
    for (int64_t b = 0; b < c.batch; ++b) {
      double norm = 0;
      for (int64_t d = 0; d < c.dim; ++d) norm += want[b * c.dim + d] * want[b * c.dim + d];
      norm = std::max(std::sqrt(norm), 1e-12);
      for (int64_t d = 0; d < c.dim; ++d)
        ASSERT_NEAR(rows[b][d], want[b * c.dim + d] / norm, 1e-6)
            << "normalized " << pooling_name(mode) << " row " << b << " d " << d;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, PoolingTest,
                         ::testing::Values(Pooling::kCls, Pooling::kMean, Pooling::kMax,
                                           Pooling::kLast),
                         [](const ::testing::TestParamInfo<Pooling>& p) {
                           return std::string(pooling_name(p.param));
                         });

TEST(Pooling, NormalizeLeavesAZeroVectorZero) {
  std::vector<float> v(5, 0.0f);
  float* row = v.data();
  l2_normalize_f32(&row, 1, 5);
  for (float x : v) EXPECT_EQ(x, 0.0f);  // divided by the 1e-12 floor, as torch's normalize
}

TEST(Pooling, Names) {
  for (const char* name : {"none", "cls", "mean", "max", "last"}) {
    Pooling p;
    ASSERT_TRUE(pooling_from_name(name, &p)) << name;
    EXPECT_STREQ(pooling_name(p), name);
  }
  Pooling p;
  EXPECT_FALSE(pooling_from_name("lasttoken", &p));
  EXPECT_FALSE(pooling_from_name("", &p));
}

}  // namespace
}  // namespace kiln::rt
