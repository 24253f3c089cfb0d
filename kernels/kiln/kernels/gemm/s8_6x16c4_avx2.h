// gemm_s8_6x16c4_avx2: INT8 GEMM micro-kernel, up to 6 rows x 16 columns (one packed panel),
// AVX2, in two passes of 8 columns. Activations are stored as int16 (ActFormat::kS16); per group
// of 4 k the kernel sign-extends two 16-byte units of B to int16 (vpmovsxbw, 4 columns x 4 k
// each), broadcasts 4 int16 of A per row (vpbroadcastq) and accumulates vpmaddwd (int16 x int16
// pair sums into int32: exact for any int8 inputs). Each accumulator lane holds half of one
// column's sum; finish() adds the halves (vphaddd). 12 accumulators + 2 B + 1 A + 1 product = 16.
// Why not vpmaddubsw (u8 x s8 with int16 saturation of the pair sums): docs/architecture.md,
// "INT8 GEMM kernels".
// Built with a target attribute; dispatch only calls it when the CPU has avx2 (and fma, for the
// FP32 epilogue it shares).
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstring>

#include "kiln/kernels/gemm/f32_6x16_avx2.h"
#include "kiln/kernels/gemm/s8_types.h"

namespace kiln::kernels::gemm::s8_6x16c4_avx2 {

#define KILN_GEMM_TARGET __attribute__((target("avx2,fma")))
#define KILN_GEMM_OP KILN_GEMM_TARGET __attribute__((always_inline)) static inline

namespace f32 = f32_6x16_avx2;
constexpr int kMr = 6;
constexpr int kPanels = 1;
constexpr ActFormat kActFormat = ActFormat::kS16;

struct Ops {
  using Acc = __m256i;
  using BV = __m256i;
  using AV = __m256i;
  static constexpr int kUnitCols = 4, kAccPerUnit = 1, kPassCols = 8, kABytes = 2;
  static constexpr int kGroupedPassCols = 8;
  static constexpr bool kGroupedSumsInRegisters = false;
  KILN_GEMM_OP Acc zero() { return _mm256_setzero_si256(); }
  KILN_GEMM_OP BV load_b(const int8_t* p) {
    return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  KILN_GEMM_OP AV load_a(const uint8_t* p) {
    int64_t v;
    std::memcpy(&v, p, 8);
    return _mm256_set1_epi64x(v);
  }
  KILN_GEMM_OP Acc mac(AV a, BV b, Acc acc, int) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
  }
  // acc[0] = columns 0-3, acc[1] = 4-7, lanes (c0 k01, c0 k23, c1 k01, c1 k23 | c2.., c3..).
  template <int U>
  KILN_GEMM_OP void finish(const Acc (&acc)[U], int32_t zp, float sa, const int32_t* colsum,
                           const float* ws, __m256* out) {
    static_assert(U == 2, "one 8-column pass");
    // hadd: (c0 c1 c4 c5 | c2 c3 c6 c7); the 64-bit permute puts the columns in order.
    const __m256i sum = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[0], acc[1]), 0xD8);
    const __m256i cs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(colsum));
    const __m256i v = _mm256_sub_epi32(sum, _mm256_mullo_epi32(_mm256_set1_epi32(zp), cs));
    out[0] = _mm256_mul_ps(_mm256_cvtepi32_ps(v),
                           _mm256_mul_ps(_mm256_set1_ps(sa), _mm256_loadu_ps(ws)));
  }
  template <int U>
  KILN_GEMM_OP void scale(const Acc (&acc)[U], const float* ws, __m256* out) {
    static_assert(U == 2, "one 8-column pass");
    const __m256i sum = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[0], acc[1]), 0xD8);
    out[0] = _mm256_mul_ps(_mm256_cvtepi32_ps(sum), _mm256_loadu_ps(ws));
  }
};

#include "kiln/kernels/gemm/s8_simd_template.inc"

#undef KILN_GEMM_OP
#undef KILN_GEMM_TARGET

}  // namespace kiln::kernels::gemm::s8_6x16c4_avx2
#endif
