// gemm_s8_6x16c4_avxvnni: INT8 GEMM micro-kernel, up to 6 rows x 16 columns (one packed panel),
// AVX-VNNI: the VEX-encoded 256-bit vpdpbusd of Zen 4/5, Alder Lake and later, which x86-64-v3
// models (no AVX-512) can use. Same scheme as the AVX-512 VNNI kernel: u8 activations
// (q + 128), per group of 4 k two 32-byte B loads (8 columns each), per row one 4-byte broadcast
// and two vpdpbusd (no intermediate saturation). 12 accumulators + 2 B + 1 A = 15 of 16 registers.
// Built with a target attribute; dispatch only calls it when the CPU has avxvnni (and avx2, fma).
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstring>

#include "kiln/kernels/gemm/f32_6x16_avx2.h"
#include "kiln/kernels/gemm/s8_types.h"

namespace kiln::kernels::gemm::s8_6x16c4_avxvnni {

#define KILN_GEMM_TARGET __attribute__((target("avx2,fma,avxvnni")))
#define KILN_GEMM_OP KILN_GEMM_TARGET __attribute__((always_inline)) static inline

namespace f32 = f32_6x16_avx2;
constexpr int kMr = 6;
constexpr int kPanels = 1;
constexpr ActFormat kActFormat = ActFormat::kU8;

struct Ops {
  using Acc = __m256i;
  using BV = __m256i;
  using AV = __m256i;
  static constexpr int kUnitCols = 8, kAccPerUnit = 1, kPassCols = 16, kABytes = 1;
  static constexpr int kGroupedPassCols = 8;
  static constexpr bool kGroupedSumsInRegisters = true;
  KILN_GEMM_OP Acc zero() { return _mm256_setzero_si256(); }
  KILN_GEMM_OP BV load_b(const int8_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  KILN_GEMM_OP AV load_a(const uint8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
  }
  KILN_GEMM_OP Acc mac(AV a, BV b, Acc acc, int) { return _mm256_dpbusd_avx_epi32(acc, a, b); }
  template <int U>
  KILN_GEMM_OP void finish(const Acc (&acc)[U], int32_t zp, float sa, const int32_t* colsum,
                           const float* ws, __m256* out) {
    const __m256i z = _mm256_set1_epi32(zp);
    const __m256 s = _mm256_set1_ps(sa);
#pragma GCC unroll 2
    for (int u = 0; u < U; ++u) {
      const __m256i cs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(colsum + 8 * u));
      const __m256i v = _mm256_sub_epi32(acc[u], _mm256_mullo_epi32(z, cs));
      out[u] = _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_mul_ps(s, _mm256_loadu_ps(ws + 8 * u)));
    }
  }
  template <int U>
  KILN_GEMM_OP void scale(const Acc (&acc)[U], const float* ws, __m256* out) {
#pragma GCC unroll 2
    for (int u = 0; u < U; ++u)
      out[u] = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[u]), _mm256_loadu_ps(ws + 8 * u));
  }
};

#include "kiln/kernels/gemm/s8_simd_template.inc"

#undef KILN_GEMM_OP
#undef KILN_GEMM_TARGET

}  // namespace kiln::kernels::gemm::s8_6x16c4_avxvnni
#endif
