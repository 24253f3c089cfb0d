// gemm_s8_6x16c4_neondot: INT8 GEMM micro-kernel for AArch64 with the dot product extension
// (Cortex-A76, Pi 5), up to 6 rows x 16 columns (one packed panel). Per group of 4 k: four
// 16-byte units of B (4 columns x 4 k), per row one 4-byte broadcast of A (ld1r) and four sdot
// (s8 x s8, 4 products summed into each int32 lane: exact). 24 accumulators + 4 B + 1 A = 29 of
// 32 registers.
// SDOT is enabled only inside these functions (target attribute); dispatch calls them only when
// HWCAP has asimddp, so a Cortex-A72 never executes one.
#pragma once

#if defined(__aarch64__)
#include <arm_neon.h>

#include "kiln/kernels/gemm/f32_6x16_neon.h"
#include "kiln/kernels/gemm/s8_6x16c4_neon.h"
#include "kiln/kernels/gemm/s8_types.h"

namespace kiln::kernels::gemm::s8_6x16c4_neondot {

// With dotprod already on for the whole file (-mcpu=cortex-a76), a narrower target attribute would
// stop GCC inlining the file-wide helpers into these functions ("target specific option mismatch").
#if defined(__ARM_FEATURE_DOTPROD)
#define KILN_GEMM_TARGET
#else
#define KILN_GEMM_TARGET __attribute__((target("arch=armv8.2-a+dotprod")))
#endif
#define KILN_GEMM_OP KILN_GEMM_TARGET __attribute__((always_inline)) static inline

namespace f32 = f32_6x16_neon;
constexpr int kMr = 6;
constexpr int kPanels = 1;
constexpr ActFormat kActFormat = ActFormat::kS8;

struct Ops {
  using Acc = int32x4_t;
  using BV = int8x16_t;
  using AV = int8x16_t;
  static constexpr int kUnitCols = 4, kAccPerUnit = 1, kPassCols = 16, kABytes = 1;
  static constexpr int kGroupedPassCols = 8;
  static constexpr bool kGroupedSumsInRegisters = true;
  KILN_GEMM_OP Acc zero() { return vdupq_n_s32(0); }
  KILN_GEMM_OP BV load_b(const int8_t* p) { return vld1q_s8(p); }
  KILN_GEMM_OP AV load_a(const uint8_t* p) { return s8_neon::load_a4(p); }
  KILN_GEMM_OP Acc mac(AV a, BV b, Acc acc, int) { return vdotq_s32(acc, b, a); }
  template <int U>
  KILN_GEMM_OP void finish(const Acc (&acc)[U], int32_t zp, float sa, const int32_t* colsum,
                           const float* ws, float32x4_t* out) {
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u)
      out[u] = s8_neon::dequant(acc[u], zp, sa, colsum + 4 * u, ws + 4 * u);
  }
  template <int U>
  KILN_GEMM_OP void scale(const Acc (&acc)[U], const float* ws, float32x4_t* out) {
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) out[u] = vmulq_f32(vcvtq_f32_s32(acc[u]), vld1q_f32(ws + 4 * u));
  }
};

#include "kiln/kernels/gemm/s8_simd_template.inc"

#undef KILN_GEMM_OP
#undef KILN_GEMM_TARGET

}  // namespace kiln::kernels::gemm::s8_6x16c4_neondot
#endif
