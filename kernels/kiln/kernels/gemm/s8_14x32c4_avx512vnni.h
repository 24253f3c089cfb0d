// gemm_s8_14x32c4_avx512vnni: INT8 GEMM micro-kernel, up to 14 rows x 32 columns (two adjacent
// packed panels), AVX-512 VNNI. Per group of 4 k: two 64-byte B loads (one per panel), then per
// row one 4-byte broadcast of A (u8 = q + 128) and two vpdpbusd (u8 x s8 -> int32, no
// intermediate saturation). 28 zmm accumulators + 2 B + 1 A = 31 of 32 registers, the FP32
// kernel's shape. The + 128 comes back out as 128 * colsum[n] through the zero point.
// Built with a target attribute; dispatch only calls it when the CPU has avx512_vnni (+bw, f).
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstring>

#include "kiln/kernels/gemm/f32_14x32_avx512.h"
#include "kiln/kernels/gemm/s8_types.h"

namespace kiln::kernels::gemm::s8_14x32c4_avx512vnni {

#define KILN_GEMM_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define KILN_GEMM_OP KILN_GEMM_TARGET __attribute__((always_inline)) static inline

namespace f32 = f32_14x32_avx512;
constexpr int kMr = 14;
constexpr int kPanels = 2;
constexpr ActFormat kActFormat = ActFormat::kU8;

struct Ops {
  using Acc = __m512i;
  using BV = __m512i;
  using AV = __m512i;
  static constexpr int kUnitCols = 16, kAccPerUnit = 1, kPassCols = 32, kABytes = 1;
  static constexpr int kGroupedPassCols = 16;
  static constexpr bool kGroupedSumsInRegisters = true;
  KILN_GEMM_OP Acc zero() { return _mm512_setzero_si512(); }
  KILN_GEMM_OP BV load_b(const int8_t* p) { return _mm512_loadu_si512(p); }
  KILN_GEMM_OP AV load_a(const uint8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
  }
  KILN_GEMM_OP Acc mac(AV a, BV b, Acc acc, int) { return _mm512_dpbusd_epi32(acc, a, b); }
  template <int U>
  KILN_GEMM_OP void finish(const Acc (&acc)[U], int32_t zp, float sa, const int32_t* colsum,
                           const float* ws, __m512* out) {
    const __m512i z = _mm512_set1_epi32(zp);
    const __m512 s = _mm512_set1_ps(sa);
#pragma GCC unroll 2
    for (int u = 0; u < U; ++u) {
      const __m512i cs = _mm512_loadu_si512(colsum + 16 * u);
      const __m512i v = _mm512_sub_epi32(acc[u], _mm512_mullo_epi32(z, cs));
      // The masked form: GCC 12's _mm512_cvtepi32_ps trips -Wuninitialized.
      const __m512 f = _mm512_mask_cvtepi32_ps(s, 0xFFFF, v);
      out[u] = _mm512_mul_ps(f, _mm512_mul_ps(s, _mm512_loadu_ps(ws + 16 * u)));
    }
  }
  template <int U>
  KILN_GEMM_OP void scale(const Acc (&acc)[U], const float* ws, __m512* out) {
#pragma GCC unroll 2
    for (int u = 0; u < U; ++u)
      out[u] = _mm512_mul_ps(_mm512_mask_cvtepi32_ps(_mm512_setzero_ps(), 0xFFFF, acc[u]),
                             _mm512_loadu_ps(ws + 16 * u));
  }
};

#include "kiln/kernels/gemm/s8_simd_template.inc"

#undef KILN_GEMM_OP
#undef KILN_GEMM_TARGET

}  // namespace kiln::kernels::gemm::s8_14x32c4_avx512vnni
#endif
