// MatMul (batched, broadcast, 1-D) and Gemm (trans, alpha/beta, bias broadcast) vs naive loops.
#include <gtest/gtest.h>

#include <cmath>

#include "kiln/kernels/matmul.h"
#include "test_util.h"

namespace kiln::kernels {
namespace {
using testing::broadcast_offset;
using testing::numel;
using testing::random_floats;
using testing::TestBackend;
using testing::unravel;
using Dims = std::vector<int64_t>;

struct MatmulCase {
  Dims a, b, out;
};
class MatmulTest : public ::testing::TestWithParam<MatmulCase> {};

TEST_P(MatmulTest, MatchesReference) {
  const MatmulCase& c = GetParam();
  Dims a2 = c.a, b2 = c.b;  // numpy 1-D promotion for the reference
  if (a2.size() == 1) a2.insert(a2.begin(), 1);
  if (b2.size() == 1) b2.push_back(1);
  const int64_t M = a2[a2.size() - 2], K = a2.back(), N = b2.back();
  Dims abatch(a2.begin(), a2.end() - 2), bbatch(b2.begin(), b2.end() - 2);
  size_t br = std::max(abatch.size(), bbatch.size());
  Dims obatch(br);
  for (size_t i = 0; i < br; ++i) {
    int64_t da = i + abatch.size() >= br ? abatch[i + abatch.size() - br] : 1;
    int64_t db = i + bbatch.size() >= br ? bbatch[i + bbatch.size() - br] : 1;
    obatch[i] = da == 1 ? db : da;
  }
  auto a = random_floats(numel(c.a), 11), b = random_floats(numel(c.b), 12);
  std::vector<float> out(numel(c.out), -7.f);
  TestBackend tb;
  matmul_f32(a.data(), c.a.data(), int(c.a.size()), b.data(), c.b.data(), int(c.b.size()),
             out.data(), tb.get());
  ASSERT_EQ(numel(c.out), numel(obatch) * M * N);
  for (int64_t bi = 0; bi < numel(obatch); ++bi) {
    auto idx = unravel(bi, obatch);
    const float* ap = a.data() + broadcast_offset(idx, abatch) * M * K;
    const float* bp = b.data() + broadcast_offset(idx, bbatch) * K * N;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k) acc += double(ap[i * K + k]) * bp[k * N + j];
        ASSERT_NEAR(out[(bi * M + i) * N + j], acc, 1e-4 * (1 + std::sqrt(double(K))))
            << "batch " << bi << " row " << i << " col " << j;
      }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, MatmulTest,
    ::testing::Values(MatmulCase{{1, 1}, {1, 1}, {1, 1}}, MatmulCase{{7, 13}, {13, 37}, {7, 37}},
                      MatmulCase{{2, 7, 13}, {13, 300}, {2, 7, 300}},
                      MatmulCase{{13}, {13, 5}, {5}}, MatmulCase{{3, 7, 13}, {13}, {3, 7}},
                      MatmulCase{{2, 3, 7, 16}, {2, 3, 16, 7}, {2, 3, 7, 7}},
                      MatmulCase{{2, 1, 5, 9}, {1, 3, 9, 6}, {2, 3, 5, 6}},
                      MatmulCase{{1, 5, 9}, {4, 9, 6}, {4, 5, 6}},
                      MatmulCase{{3, 1, 9}, {3, 9, 1}, {3, 1, 1}},
                      MatmulCase{{2, 37, 64}, {64, 515}, {2, 37, 515}},
                      MatmulCase{{13, 601}, {601, 37}, {13, 37}},  // K > one K chunk
                      MatmulCase{{3, 1, 7, 300}, {2, 300, 33}, {3, 2, 7, 33}}));

struct GemmCase {
  int64_t M, K, N;
  bool ta, tb;
  float alpha, beta;
  int bias;  // 0 none, 1 [N], 2 [M,1], 3 [M,N], 4 scalar
};
class GemmTest : public ::testing::TestWithParam<GemmCase> {};

TEST_P(GemmTest, MatchesReference) {
  const GemmCase& c = GetParam();
  auto A = random_floats(c.M * c.K, 21), B = random_floats(c.K * c.N, 22);
  auto C = random_floats(c.M * c.N, 23);
  int64_t rs = 0, cs = 0;
  if (c.bias == 1) cs = 1;
  if (c.bias == 2) rs = 1;
  if (c.bias == 3) rs = c.N, cs = 1;
  std::vector<float> Y(c.M * c.N);
  TestBackend tb;
  gemm_f32(A.data(), c.ta, B.data(), c.tb, c.bias ? C.data() : nullptr, rs, cs, Y.data(), c.M, c.K,
           c.N, c.alpha, c.beta, tb.get());
  for (int64_t i = 0; i < c.M; ++i)
    for (int64_t j = 0; j < c.N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < c.K; ++k)
        acc += double(c.ta ? A[k * c.M + i] : A[i * c.K + k]) *
               (c.tb ? B[j * c.K + k] : B[k * c.N + j]);
      double want = c.alpha * acc + (c.bias ? c.beta * C[i * rs + j * cs] : 0.0);
      ASSERT_NEAR(Y[i * c.N + j], want, 1e-4 * (1 + std::sqrt(double(c.K)))) << i << "," << j;
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GemmTest,
                         ::testing::Values(GemmCase{7, 13, 37, false, false, 1, 1, 1},
                                           GemmCase{7, 13, 37, false, true, 1, 1, 3},
                                           GemmCase{13, 7, 5, true, false, 0.5f, 2, 2},
                                           GemmCase{13, 7, 5, true, true, 1, 0.25f, 4},
                                           GemmCase{1, 1, 1, false, false, 1, 1, 0},
                                           GemmCase{33, 64, 300, false, false, 1, 1, 1},
                                           GemmCase{19, 530, 48, true, false, 1.5f, 1, 3}));

}  // namespace
}  // namespace kiln::kernels
