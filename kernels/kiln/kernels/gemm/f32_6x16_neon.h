// gemm_f32_6x16_neon: FP32 GEMM micro-kernel, up to 6 rows x 16 columns (one packed B panel),
// AArch64 NEON (baseline, so no target attribute). 24 q accumulators + 4 B vectors + 1 A value
// (by-element fmla) = 29 of 32 registers. Used for Cortex-A72 (Pi 4) and, with a different
// schedule, A76 (Pi 5); throughput not yet measured on either board.
#pragma once

#if defined(__aarch64__)
#include <arm_neon.h>

#include "kiln/kernels/gemm/gelu.h"
#include "kiln/kernels/gemm/types.h"

namespace kiln::kernels::gemm::f32_6x16_neon {

#define KILN_GEMM_TARGET
#define KILN_GEMM_OP __attribute__((always_inline)) static inline

constexpr int kMr = 6;
constexpr int kPanels = 1;

struct Vec {
  using T = float32x4_t;
  static constexpr int kW = 4;
  KILN_GEMM_OP T zero() { return vdupq_n_f32(0.0f); }
  KILN_GEMM_OP T set1(float x) { return vdupq_n_f32(x); }
  // A scalar load kept in lane 0 for fma_bcast's by-element fmla (ld1r has no register-offset
  // form). The empty asm pins the load in program order: otherwise GCC hoists all six A loads
  // and spills accumulators (measured in the generated code, GCC 12 -mcpu=cortex-a72).
  KILN_GEMM_OP T bcast(const float* p) {
    float x = *p;
    __asm__ volatile("" : "+w"(x));
    return vdupq_n_f32(x);
  }
  KILN_GEMM_OP T fma_bcast(T a, T b, T c) { return vfmaq_laneq_f32(c, b, a, 0); }
  KILN_GEMM_OP T load(const float* p) { return vld1q_f32(p); }
  KILN_GEMM_OP void store(float* p, T x) { vst1q_f32(p, x); }
  KILN_GEMM_OP T fma(T a, T b, T c) { return vfmaq_f32(c, a, b); }
  KILN_GEMM_OP T add(T a, T b) { return vaddq_f32(a, b); }
  KILN_GEMM_OP T mul(T a, T b) { return vmulq_f32(a, b); }
  KILN_GEMM_OP T div(T a, T b) { return vdivq_f32(a, b); }
  KILN_GEMM_OP T min(T a, T b) { return vminq_f32(a, b); }
  KILN_GEMM_OP T max(T a, T b) { return vmaxq_f32(a, b); }
};

#include "kiln/kernels/gemm/f32_simd_template.inc"

#undef KILN_GEMM_OP
#undef KILN_GEMM_TARGET

}  // namespace kiln::kernels::gemm::f32_6x16_neon
#endif
