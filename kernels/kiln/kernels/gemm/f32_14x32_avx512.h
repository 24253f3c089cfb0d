// gemm_f32_14x32_avx512: FP32 GEMM micro-kernel, up to 14 rows x 32 columns (two adjacent packed
// B panels), AVX-512F. 28 zmm accumulators + 2 B vectors + 1 broadcast = 31 of 32 registers.
// Built with a target attribute, so a translation unit compiled for baseline x86-64 holds it;
// dispatch.h only calls it when the CPU has avx512f.
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>

#include "kiln/kernels/gemm/gelu.h"
#include "kiln/kernels/gemm/types.h"

namespace kiln::kernels::gemm::f32_14x32_avx512 {

#define KILN_GEMM_TARGET __attribute__((target("avx512f")))
#define KILN_GEMM_OP KILN_GEMM_TARGET __attribute__((always_inline)) static inline

constexpr int kMr = 14;
constexpr int kPanels = 2;

struct Vec {
  using T = __m512;
  static constexpr int kW = 16;
  KILN_GEMM_OP T zero() { return _mm512_setzero_ps(); }
  KILN_GEMM_OP T set1(float x) { return _mm512_set1_ps(x); }
  KILN_GEMM_OP T bcast(const float* p) { return _mm512_set1_ps(*p); }
  KILN_GEMM_OP T load(const float* p) { return _mm512_loadu_ps(p); }
  KILN_GEMM_OP void store(float* p, T x) { _mm512_storeu_ps(p, x); }
  KILN_GEMM_OP T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  KILN_GEMM_OP T fma_bcast(T a, T b, T c) { return fma(a, b, c); }  // a = bcast(...)
  KILN_GEMM_OP T add(T a, T b) { return _mm512_add_ps(a, b); }
  KILN_GEMM_OP T mul(T a, T b) { return _mm512_mul_ps(a, b); }
  KILN_GEMM_OP T div(T a, T b) { return _mm512_div_ps(a, b); }
  // The masked forms: GCC 12's _mm512_min_ps/_mm512_max_ps trip -Wmaybe-uninitialized.
  KILN_GEMM_OP T min(T a, T b) { return _mm512_mask_min_ps(a, 0xFFFF, a, b); }
  KILN_GEMM_OP T max(T a, T b) { return _mm512_mask_max_ps(a, 0xFFFF, a, b); }
};

#include "kiln/kernels/gemm/f32_simd_template.inc"

#undef KILN_GEMM_OP
#undef KILN_GEMM_TARGET

}  // namespace kiln::kernels::gemm::f32_14x32_avx512
#endif
