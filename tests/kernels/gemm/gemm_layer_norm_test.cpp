// The LayerNorm epilogue (Epilogue::layer_norm) of the FP32 and INT8 GEMM drivers. The GEMM part
// is tested elsewhere (GemmTester, gemm_s8_test) and does not depend on the flag, so each case
// runs the same call twice, without and with the LayerNorm, and checks the second result against
// a float64 LayerNorm of the first: every variant the CPU has, odd M and N, plans that give
// items whole rows (LayerNorm per item) and plans that split N (second pass), 1-3 threads,
// padded ldc (nothing past N written), the in-place residual, absent scale / bias.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gemm_tester.h"
#include "kiln/kernels/gemm/s8_dispatch.h"

namespace kiln::kernels::gemm {
namespace {

using testing::ThreadBackend;

struct Case {
  int64_t m, n, k, ldc_pad;
  int threads;
  bool in_place, scale, bias;
  Schedule schedule;  // mr 0 = the variant's default
};

std::string describe(const char* variant, const Case& c) {
  return std::string(variant) + " M=" + std::to_string(c.m) + " N=" + std::to_string(c.n) +
         " K=" + std::to_string(c.k) + " ldc+" + std::to_string(c.ldc_pad) +
         " threads=" + std::to_string(c.threads) + (c.in_place ? " in-place" : "") +
         (c.scale ? "" : " no-scale") + (c.bias ? "" : " no-bias") +
         " mc=" + std::to_string(c.schedule.mc);
}

// Runs `gemm(C, ep)` without and with the LayerNorm on identical inputs and compares.
template <class Gemm>
void check(const char* variant, const Case& c, Gemm gemm) {
  std::mt19937 g(static_cast<uint32_t>(c.m * 131 + c.n * 7 + c.k));
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  const int64_t ldc = c.n + c.ldc_pad;
  std::vector<float> residual(c.m * ldc), scale(c.n), bias(c.n), ln_bias_v(c.n);
  for (auto& e : residual) e = 3.0f * d(g) + 0.5f;  // a mean away from 0, as BERT's hidden states
  for (auto& e : scale) e = 1.0f + 0.2f * d(g);
  for (auto& e : bias) e = 0.1f * d(g);
  for (auto& e : ln_bias_v) e = 0.3f * d(g);
  const float kSentinel = -777.f;
  auto run = [&](bool ln) {
    std::vector<float> C(c.m * ldc, kSentinel);
    Epilogue ep;
    ep.bias = bias.data();
    ep.ldr = ldc;
    if (c.in_place) {
      C = residual;
      ep.residual = C.data();
    } else {
      ep.residual = residual.data();
    }
    ep.layer_norm = ln;
    ep.ln_scale = c.scale ? scale.data() : nullptr;
    ep.ln_bias = c.bias ? ln_bias_v.data() : nullptr;
    ep.ln_epsilon = 1e-5f;
    gemm(C.data(), ldc, ep);
    return C;
  };
  const std::vector<float> plain = run(false), got = run(true);
  int failures = 0;
  for (int64_t i = 0; i < c.m; ++i) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < c.n; ++j) mean += plain[i * ldc + j];
    mean /= double(c.n);
    for (int64_t j = 0; j < c.n; ++j)
      var += (plain[i * ldc + j] - mean) * (plain[i * ldc + j] - mean);
    const double rstd = 1.0 / std::sqrt(var / double(c.n) + 1e-5);
    for (int64_t j = 0; j < ldc; ++j) {
      const float v = got[i * ldc + j];
      if (j >= c.n) {
        ASSERT_EQ(v, plain[i * ldc + j])
            << "wrote past N at (" << i << ", " << j << ") " << describe(variant, c);
        continue;
      }
      double want = (plain[i * ldc + j] - mean) * rstd;
      if (c.scale) want *= scale[j];
      if (c.bias) want += ln_bias_v[j];
      if (!(std::fabs(v - want) <= 2e-6 * (std::fabs(want) + 1)) && ++failures <= 5)
        ADD_FAILURE() << "C(" << i << ", " << j << ") = " << v << ", want " << want << " "
                      << describe(variant, c);
    }
  }
  ASSERT_EQ(failures, 0) << describe(variant, c);
}

std::vector<Case> cases(int max_rows) {
  std::vector<Case> r;
  const Schedule dflt{0, 0, 0, 0, 0};
  for (int64_t m : {1, 5, 13, 37, 129})
    for (int64_t n : {1, 17, 33, 100})
      for (int threads : {1, 2, 3}) r.push_back({m, n, 37, 0, threads, false, true, true, dflt});
  // Row-split plans (small mc: several row groups, one column group) and column-split ones
  // (M = 16 on 2 threads splits N), with and without in-place residual, padded C, no affine.
  r.push_back({128, 768, 64, 0, 2, false, true, true, dflt});
  r.push_back({128, 768, 64, 0, 2, true, true, true, dflt});
  r.push_back({16, 96, 40, 5, 2, true, false, true, dflt});
  r.push_back({16, 96, 40, 5, 1, false, true, false, dflt});
  r.push_back({130, 70, 20, 3, 2, false, true, true, Schedule{max_rows, 1, 2L * max_rows, 0, 0}});
  r.push_back({130, 70, 20, 0, 3, true, false, false, Schedule{1, 1, 7, 0, 16}});
  return r;
}

Schedule pick(const Schedule& variant_default, const Schedule& asked) {
  return asked.mr == 0 ? variant_default : asked;
}

TEST(GemmLayerNorm, F32EveryVariant) {
  for (const Variant& v : gemm_f32_table()) {
    if (!v.supported()) continue;
    for (const Case& c : cases(v.kernels().max_rows)) {
      std::mt19937 g(7);
      std::uniform_real_distribution<float> d(-1.f, 1.f);
      std::vector<float> A(c.m * c.k), B(c.k * c.n);
      for (auto& e : A) e = d(g);
      for (auto& e : B) e = d(g);
      std::vector<float> packed_store(packed_b_floats(c.k, c.n) + 16);
      float* packed = packed_store.data();
      while (reinterpret_cast<uintptr_t>(packed) % 64) ++packed;
      pack_b_f32(B.data(), c.k, c.n, false, packed);
      ThreadBackend be(c.threads);
      check(v.name, c, [&](float* C, int64_t ldc, const Epilogue& ep) {
        gemm_f32_packed_with(v.kernels(), pick(v.schedule, c.schedule), be.get(), c.m, c.n, c.k,
                             A.data(), c.k, packed, C, ldc, ep);
      });
    }
  }
}

TEST(GemmLayerNorm, S8EveryVariant) {
  for (const S8Variant& v : gemm_s8_table()) {
    if (!v.supported()) continue;
    for (const Case& c : cases(v.kernels().max_rows)) {
      std::mt19937 g(11);
      std::uniform_real_distribution<float> d(-1.f, 1.f);
      std::vector<float> A(c.m * c.k), B(c.k * c.n);
      for (auto& e : A) e = d(g);
      for (auto& e : B) e = d(g);
      std::vector<uint8_t> blob_store(packed_b_s8_bytes(c.k, c.n) + 64);
      uint8_t* blob = blob_store.data();
      while (reinterpret_cast<uintptr_t>(blob) % 64) ++blob;
      ASSERT_TRUE(quantize_pack_b_s8(B.data(), c.k, c.n, false, blob));
      const PackedS8 packed = packed_s8_view(blob, c.k, c.n);
      ThreadBackend be(c.threads);
      check(v.name, c, [&](float* C, int64_t ldc, const Epilogue& ep) {
        gemm_s8_packed_with(v.kernels(), pick(v.schedule, c.schedule), be.get(), c.m, c.n, c.k,
                            A.data(), c.k, packed, C, ldc, ep);
      });
    }
  }
}

}  // namespace
}  // namespace kiln::kernels::gemm
