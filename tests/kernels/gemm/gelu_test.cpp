// The erf/GELU of the GEMM epilogue against double precision: erf within 1e-6 relative, GELU within
// 2e-6 of its terms, scalar and each ISA's vector code, on a dense sweep (2^20 evenly spaced points
// in [-8, 8], every 1009th float of normal magnitude in [-6, 6], and extremes).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "gemm_tester.h"

namespace kiln::kernels::gemm::testing {
namespace {

constexpr double kErfRelTol = 1e-6;

std::vector<float> sweep() {
  std::vector<float> x;
  for (int i = -(1 << 19); i <= (1 << 19); ++i) x.push_back(8.f * float(i) / float(1 << 19));
  auto bits = [](float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
  };
  for (uint32_t u = bits(1e-37f); u <= bits(6.f); u += 1009) {
    float t;
    std::memcpy(&t, &u, 4);
    x.push_back(t), x.push_back(-t);
  }
  for (float t : {1e-30f, 1e-10f, 1e-5f, 30.f, 1e10f, 3e38f}) x.push_back(t), x.push_back(-t);
  return x;
}

void check_erf_and_gelu(void (*erf_array)(const float*, float*, int64_t),
                        void (*gelu_array)(const float*, float*, int64_t)) {
  const std::vector<float> x = sweep();
  std::vector<float> y(x.size());
  erf_array(x.data(), y.data(), int64_t(x.size()));
  int bad = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = std::erf(double(x[i]));
    if (!(std::fabs(y[i] - want) <= kErfRelTol * std::fabs(want)) && ++bad <= 5)
      ADD_FAILURE() << "erf(" << x[i] << ") = " << y[i] << ", want " << want;
  }
  gelu_array(x.data(), y.data(), int64_t(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = gelu_f64(x[i]);
    // Relative to the terms 0.5x and 0.5x erf: for x << 0 gelu is their small difference.
    const double tol = 2e-6 * (std::fabs(want) + 0.5 * std::fabs(double(x[i]))) + 1e-37;
    if (!(std::fabs(y[i] - want) <= tol) && ++bad <= 10)
      ADD_FAILURE() << "gelu(" << x[i] << ") = " << y[i] << ", want " << want;
  }
  EXPECT_EQ(bad, 0);
  float edge[4] = {100.f, -100.f, 0.f, -0.f}, out[4];
  erf_array(edge, out, 4);
  EXPECT_EQ(out[0], 1.f);
  EXPECT_EQ(out[1], -1.f);
  EXPECT_EQ(out[2], 0.f);
}

void scalar_erf_array(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = erf_f32(x[i]);
}
void scalar_gelu_array(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = gelu_f32(x[i]);
}

TEST(GemmErf, Scalar) {
  check_erf_and_gelu(scalar_erf_array, scalar_gelu_array);
}

#if defined(__x86_64__)
TEST(GemmErf, Avx2) {
  if (!cpu::avx2_fma()) GTEST_SKIP() << "avx2 erf skipped: CPU lacks avx2+fma";
  check_erf_and_gelu(f32_6x16_avx2::erf_array, f32_6x16_avx2::gelu_array);
}
TEST(GemmErf, Avx512) {
  if (!cpu::avx512f()) GTEST_SKIP() << "avx512 erf skipped: CPU lacks avx512f";
  check_erf_and_gelu(f32_14x32_avx512::erf_array, f32_14x32_avx512::gelu_array);
}
#endif
#if defined(__aarch64__)
TEST(GemmErf, Neon) {
  check_erf_and_gelu(f32_6x16_neon::erf_array, f32_6x16_neon::gelu_array);
}
#endif

}  // namespace
}  // namespace kiln::kernels::gemm::testing
