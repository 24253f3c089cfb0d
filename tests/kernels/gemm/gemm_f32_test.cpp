// Packed FP32 GEMM: packing, dispatch, and every variant of the dispatch table (f32_variants.inc)
// on odd shapes, strides, epilogues, K blocks and threads against a double-precision reference. A
// variant that the CPU lacks is skipped, and says so.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "gemm_tester.h"

namespace kiln::kernels::gemm::testing {
namespace {

TEST(GemmPack, LayoutIsPanelsOfKRowsBy16) {
  const int64_t K = 3, N = 20;
  std::vector<float> B(K * N), Bt(N * K);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) B[k * N + n] = Bt[n * K + k] = float(100 * k + n);
  ASSERT_EQ(packed_b_floats(K, N), size_t(2 * K * 16));
  for (bool trans : {false, true}) {
    std::vector<float> p(packed_b_floats(K, N), -1.f);
    pack_b_f32(trans ? Bt.data() : B.data(), K, N, trans, p.data());
    for (int64_t panel = 0; panel < 2; ++panel)
      for (int64_t k = 0; k < K; ++k)
        for (int64_t j = 0; j < 16; ++j) {
          const int64_t n = panel * 16 + j;
          EXPECT_EQ(p[(panel * K + k) * 16 + j], n < N ? float(100 * k + n) : 0.f)
              << "panel " << panel << " k " << k << " j " << j << " trans " << trans;
        }
  }
}

TEST(GemmDispatch, DefaultIsBestSupported) {
  if (std::getenv("KILN_GEMM_VARIANT")) GTEST_SKIP() << "KILN_GEMM_VARIANT is set";
  for (const Variant& v : gemm_f32_table())
    if (v.supported()) {
      EXPECT_EQ(&gemm_f32_variant(), &v);
      return;
    }
  FAIL() << "no supported variant";
}

TEST(GemmDispatch, EnvOverride) {
  const char* env = std::getenv("KILN_GEMM_VARIANT");
  if (!env) GTEST_SKIP() << "run with KILN_GEMM_VARIANT set (ctest GemmDispatch.EnvForcesRef)";
  EXPECT_STREQ(gemm_f32_variant().name, env);
}

TEST(GemmDispatch, EntryPointUsesSelectedVariant) {
  const int64_t M = 5, N = 17, K = 9;
  std::vector<float> A(M * K, 1.f), B(K * N, 2.f), C(M * N);
  std::vector<float> p(packed_b_floats(K, N));
  pack_b_f32(B.data(), K, N, false, p.data());
  gemm_f32_packed(nullptr, M, N, K, A.data(), K, p.data(), C.data(), N, Epilogue{});
  for (float c : C) ASSERT_EQ(c, 2.f * K);
}

TEST(GemmDriver, CopiesAOnlyWhenItsRowsShareAnL1Set) {
  EXPECT_EQ(detail::a_copy_ld(16, 768, 768), 0);  // rows 3 KiB apart spread over the sets
  EXPECT_EQ(detail::a_copy_ld(16, 1024, 0), 0);   // nothing to copy
  EXPECT_EQ(detail::a_copy_ld(1, 1024, 300), 0);  // one row has no set to share
  for (int64_t lda : {1024, 2048, 3072}) {
    const int64_t ld = detail::a_copy_ld(16, lda, 300);
    EXPECT_GE(ld, 300) << lda;
    EXPECT_EQ(ld % 32, 16) << lda << ": want an odd number of 64-byte lines";
  }
}

class GemmVariantTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    v_ = gemm_f32_table().find(GetParam());
    if (!v_->supported()) GTEST_SKIP() << v_->name << " GEMM skipped: CPU lacks " << v_->needs;
  }
  const Variant* v_ = nullptr;
};

TEST_P(GemmVariantTest, SmallShapes) {
  for (int64_t m = 1; m <= 13; ++m)
    for (int64_t n : {1, 15, 16, 17, 33, 100})
      for (int64_t k : {1, 7, 16, 37}) GemmTester().m(m).n(n).k(k).test(*v_);
}

TEST_P(GemmVariantTest, LongK) {
  for (int64_t m : {1, 5, 13, 16, 37})
    for (int64_t n : {16, 17, 100}) GemmTester().m(m).n(n).k(768).bias().test(*v_);
}

TEST_P(GemmVariantTest, TallM) {
  for (int64_t m : {37, 100, 129})
    for (int64_t n : {1, 15, 16, 17, 33, 100})
      for (int64_t k : {1, 7, 37}) GemmTester().m(m).n(n).k(k).test(*v_);
  GemmTester().m(129).n(100).k(768).test(*v_);
}

TEST_P(GemmVariantTest, ZeroK) {
  GemmTester().m(7).n(33).k(0).bias().gelu().residual().test(*v_);
}

TEST_P(GemmVariantTest, Epilogues) {
  for (int e = 0; e < 8; ++e)
    for (int64_t m : {1, 6, 13, 37})
      for (int64_t n : {15, 16, 33, 100})
        for (int64_t k : {1, 37, 300})
          GemmTester().m(m).n(n).k(k).bias(e & 1).gelu(e & 2).residual(e & 4).seed(e).test(*v_);
}

TEST_P(GemmVariantTest, Strides) {
  for (int64_t m : {1, 7, 37})
    for (int64_t n : {15, 17, 100})
      for (int64_t k : {7, 37})
        GemmTester().m(m).n(n).k(k).lda(k + 5).ldc(n + 3).ldr(n + 9).bias().residual().test(*v_);
}

TEST_P(GemmVariantTest, ResidualInPlace) {
  for (int64_t m : {1, 13, 37})
    for (int64_t n : {15, 33, 100})
      for (int64_t k : {7, 300, 768})
        GemmTester().m(m).n(n).k(k).ldc(n + 2).bias().residual_in_place().test(*v_);
  // Even with a K-blocked schedule (blocking is switched off for the in-place case).
  GemmTester().m(20).n(40).k(50).bias().gelu().residual_in_place().test(v_->kernels(),
                                                                        Schedule{4, 1, 8, 7, 0});
}

// A whose rows are a multiple of the L1 way apart (lda * 4 = 4, 8, 12 KiB) is read from a copy
// with an odd line stride when a row tile is tall enough to overflow a set (driver.h, a_copy_ld;
// avx512 and the NEON variants here): whole K, K blocks, several items and threads.
TEST_P(GemmVariantTest, AliasingLdaIsCopied) {
  const KernelTable& kt = v_->kernels();
  for (int64_t lda : {1024, 2048, 3072})
    for (int64_t m : {1, 7, 16, 37})
      GemmTester().m(m).n(100).k(lda == 1024 ? 1024 : 301).lda(lda).bias().residual().test(*v_);
  GemmTester().m(37).n(49).k(150).lda(2048).bias().gelu().residual().threads(2).test(
      kt, Schedule{kt.max_rows, kt.max_panels, 8, 40, 16});
  GemmTester().m(20).n(40).k(50).lda(1024).ldc(41).bias().residual_in_place().threads(2).test(*v_);
}

TEST_P(GemmVariantTest, TransposedB) {
  for (int64_t n : {1, 17, 100}) GemmTester().m(9).n(n).k(37).transposed_b().bias().test(*v_);
}

TEST_P(GemmVariantTest, Threads) {
  for (int threads : {2, 3})
    for (int64_t m : {1, 2, 13, 16, 37, 129})
      for (int64_t n : {17, 100, 768})
        GemmTester().m(m).n(n).k(37).bias().gelu().residual().threads(threads).test(*v_);
  GemmTester().m(16).n(768).k(768).bias().threads(2).test(*v_);
}

// The thread split: an even number of equal work items for M = 16 (column groups) and M = 512 (row
// groups); tiny problems stay on the calling thread.
TEST_P(GemmVariantTest, TwoThreadsSplitEvenly) {
  const KernelTable& kt = v_->kernels();
  for (int64_t M : {16, 512}) {
    const int64_t N = 768, K = 64;
    std::vector<float> A(M * K, 0.5f), B(K * N, 0.25f), C(M * N);
    std::vector<float> p(packed_b_floats(K, N));
    pack_b_f32(B.data(), K, N, false, p.data());
    ThreadBackend be(2);
    gemm_f32_packed_with(kt, v_->schedule, be.get(), M, N, K, A.data(), K, p.data(), C.data(), N,
                         Epilogue{});
    EXPECT_TRUE(be.last_items() >= 2 && be.last_items() % 2 == 0)
        << "M = " << M << ": " << be.last_items() << " work items for 2 threads";
    EXPECT_EQ(C[M * N - 1], 0.125f * K);
  }
  std::vector<float> A(7), B(16), C(1), p(packed_b_floats(7, 1));
  pack_b_f32(B.data(), 7, 1, false, p.data());
  ThreadBackend be(2);
  gemm_f32_packed_with(kt, v_->schedule, be.get(), 1, 1, 7, A.data(), 7, p.data(), C.data(), 1,
                       Epilogue{});
  EXPECT_EQ(be.last_items(), 0) << "a 1x1x7 GEMM should not use the pool";
}

// Other schedules than the default: smaller tiles, one panel, tiny K, M and N blocks (many
// accumulate passes, row and column groups, narrow column tiles with a residual on the last pass),
// with and without the next column tile's prefetch.
TEST_P(GemmVariantTest, Schedules) {
  const KernelTable& kt = v_->kernels();
  for (int mr = 1; mr <= kt.max_rows; mr += (mr < 4 ? 1 : 3))
    for (int panels = 1; panels <= kt.max_panels; ++panels)
      for (int64_t kc : {0, 1, 5, 16})
        for (int64_t mc : {1, 8, 40})
          for (int64_t nc : {0, 16, 40})
            GemmTester()
                .m(37)
                .n(49)
                .k(150)
                .lda(151)
                .ldc(53)
                .bias()
                .gelu(kc == 5)
                .residual()
                .threads(nc == 16 ? 1 : 2)
                .test(kt, Schedule{mr, panels, mc, kc, nc, 0, kc == 1 ? 0 : 1});
}

INSTANTIATE_TEST_SUITE_P(Variants, GemmVariantTest,
                         ::testing::ValuesIn(variant_names(gemm_f32_table())),
                         [](const ::testing::TestParamInfo<const char*>& i) {
                           return std::string(i.param);
                         });

}  // namespace
}  // namespace kiln::kernels::gemm::testing
