// gemm_f32_6x16_avx2: FP32 GEMM micro-kernel, up to 6 rows x 16 columns (one packed B panel),
// AVX2+FMA. 12 ymm accumulators + 2 B vectors + 1 broadcast = 15 of 16 registers.
// Built with a target attribute, so a translation unit compiled for baseline x86-64 holds it;
// dispatch.h only calls it when the CPU has avx2 and fma.
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>

#include "kiln/kernels/gemm/gelu.h"
#include "kiln/kernels/gemm/types.h"

namespace kiln::kernels::gemm::f32_6x16_avx2 {

#define KILN_GEMM_TARGET __attribute__((target("avx2,fma")))
#define KILN_GEMM_OP KILN_GEMM_TARGET __attribute__((always_inline)) static inline

constexpr int kMr = 6;
constexpr int kPanels = 1;

struct Vec {
  using T = __m256;
  static constexpr int kW = 8;
  KILN_GEMM_OP T zero() { return _mm256_setzero_ps(); }
  KILN_GEMM_OP T set1(float x) { return _mm256_set1_ps(x); }
  KILN_GEMM_OP T bcast(const float* p) { return _mm256_broadcast_ss(p); }
  KILN_GEMM_OP T load(const float* p) { return _mm256_loadu_ps(p); }
  KILN_GEMM_OP void store(float* p, T x) { _mm256_storeu_ps(p, x); }
  KILN_GEMM_OP T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  KILN_GEMM_OP T fma_bcast(T a, T b, T c) { return fma(a, b, c); }  // a = bcast(...)
  KILN_GEMM_OP T add(T a, T b) { return _mm256_add_ps(a, b); }
  KILN_GEMM_OP T mul(T a, T b) { return _mm256_mul_ps(a, b); }
  KILN_GEMM_OP T div(T a, T b) { return _mm256_div_ps(a, b); }
  KILN_GEMM_OP T min(T a, T b) { return _mm256_min_ps(a, b); }
  KILN_GEMM_OP T max(T a, T b) { return _mm256_max_ps(a, b); }
};

#include "kiln/kernels/gemm/f32_simd_template.inc"

#undef KILN_GEMM_OP
#undef KILN_GEMM_TARGET

}  // namespace kiln::kernels::gemm::f32_6x16_avx2
#endif
