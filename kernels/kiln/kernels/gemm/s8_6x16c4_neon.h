// gemm_s8_6x16c4_neon: INT8 GEMM micro-kernel for AArch64 NEON without the dot product extension
// (Cortex-A72, Pi 4), up to 6 rows x 16 columns (one packed panel) in two passes of 8 columns.
// Per group of 4 k: two 16-byte units of B (4 columns x 4 k each), per row one 4-byte
// broadcast of A (ld1r) and, per unit, smull + smull2 (s8 x s8 -> s16: |product| <= 2^14, no
// saturation) and sadalp (pairs of s16 added into s32). Each accumulator lane holds half of one
// column's sum; finish() adds the halves (addp). 24 accumulators + 2 B + 1 A + 2 products = 29.
// Baseline ARMv8-A code, no SDOT anywhere: safe on every aarch64 CPU.
#pragma once

#if defined(__aarch64__)
#include <arm_neon.h>

#include "kiln/kernels/gemm/f32_6x16_neon.h"
#include "kiln/kernels/gemm/s8_types.h"

namespace kiln::kernels::gemm::s8_neon {

// float(v - zp * colsum[0..4)) * (sa * ws[0..4)): the dequantization both NEON kernels share.
__attribute__((always_inline)) static inline float32x4_t dequant(int32x4_t v, int32_t zp, float sa,
                                                                 const int32_t* colsum,
                                                                 const float* ws) {
  const int32x4_t d = vmlsq_s32(v, vdupq_n_s32(zp), vld1q_s32(colsum));
  return vmulq_f32(vcvtq_f32_s32(d), vmulq_n_f32(vld1q_f32(ws), sa));
}

// 4 bytes of A in every 32-bit lane. The empty asm keeps the load in program order (as in the
// FP32 NEON kernel: otherwise GCC hoists every row's load and spills accumulators).
__attribute__((always_inline)) static inline int8x16_t load_a4(const uint8_t* p) {
  int32x4_t v = vld1q_dup_s32(reinterpret_cast<const int32_t*>(p));
  __asm__ volatile("" : "+w"(v));
  return vreinterpretq_s8_s32(v);
}

}  // namespace kiln::kernels::gemm::s8_neon

namespace kiln::kernels::gemm::s8_6x16c4_neon {

#define KILN_GEMM_TARGET
#define KILN_GEMM_OP __attribute__((always_inline)) static inline

namespace f32 = f32_6x16_neon;
constexpr int kMr = 6;
constexpr int kPanels = 1;
constexpr ActFormat kActFormat = ActFormat::kS8;

struct Ops {
  using Acc = int32x4_t;
  using BV = int8x16_t;
  using AV = int8x16_t;
  static constexpr int kUnitCols = 4, kAccPerUnit = 2, kPassCols = 8, kABytes = 1;
  static constexpr int kGroupedPassCols = 8;
  static constexpr bool kGroupedSumsInRegisters = false;
  KILN_GEMM_OP Acc zero() { return vdupq_n_s32(0); }
  KILN_GEMM_OP BV load_b(const int8_t* p) { return vld1q_s8(p); }
  KILN_GEMM_OP AV load_a(const uint8_t* p) { return s8_neon::load_a4(p); }
  // b = (c0 k0..3, c1 k0..3 | c2.., c3..); a = (k0..3) x 4.
  // Accumulator 0 lanes (c0 k01, c0 k23, c1 k01, c1 k23), accumulator 1 the same for c2, c3.
  KILN_GEMM_OP Acc mac(AV a, BV b, Acc acc, int i) {
    return vpadalq_s16(acc,
                       i == 0 ? vmull_s8(vget_low_s8(a), vget_low_s8(b)) : vmull_high_s8(a, b));
  }
  template <int U>
  KILN_GEMM_OP void finish(const Acc (&acc)[2 * U], int32_t zp, float sa, const int32_t* colsum,
                           const float* ws, float32x4_t* out) {
#pragma GCC unroll 2
    for (int u = 0; u < U; ++u)
      out[u] = s8_neon::dequant(vpaddq_s32(acc[2 * u], acc[2 * u + 1]), zp, sa, colsum + 4 * u,
                                ws + 4 * u);
  }
  template <int U>
  KILN_GEMM_OP void scale(const Acc (&acc)[2 * U], const float* ws, float32x4_t* out) {
#pragma GCC unroll 2
    for (int u = 0; u < U; ++u)
      out[u] =
          vmulq_f32(vcvtq_f32_s32(vpaddq_s32(acc[2 * u], acc[2 * u + 1])), vld1q_f32(ws + 4 * u));
  }
};

#include "kiln/kernels/gemm/s8_simd_template.inc"

#undef KILN_GEMM_OP
#undef KILN_GEMM_TARGET

}  // namespace kiln::kernels::gemm::s8_6x16c4_neon
#endif
