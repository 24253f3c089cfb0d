// Run-time quantization of the INT8 GEMM's activations A (float, row-major): one scale and zero
// point per row (per token), asymmetric int8. For row x[0..K):
//   lo = min(0, min x), hi = max(0, max x)
//   scale = (hi - lo) / 255                     (1 when that is 0 or below FLT_MIN)
//   inv   = 1 / scale                           (float)
//   z     = clamp(rne(-128 - lo * inv), -128, 127)
//   q[k]  = clamp(rne(x[k] * inv) + z, -128, 127),   x[k] ~ scale * (q[k] - z)
// rne = round half to even (ONNX DynamicQuantizeLinear's rounding; its int8 form, with x * inv in
// place of x / scale). Stored in the variant's ActFormat (s8_types.h), zero from K to the row end.
// Why per row and asymmetric: docs/architecture.md, "INT8 GEMM kernels" (measured).
// quantize_rows_ref is the plain C++ definition; the AVX-512, AVX2 and NEON versions give identical
// bytes (the same float operations; vcvtps2dq and fcvtns round half to even).
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#include "kiln/kernels/gemm/s8_types.h"

namespace kiln::kernels::gemm {

// Quantizes rows [0, rows) of A (lda floats apart, K each) into out (rows out_ld bytes apart, in
// one ActFormat); scale[r] and zp[r] = z + act_format_offset get each row's parameters.
using QuantizeRowsFn = void (*)(const float* A, int64_t lda, int64_t rows, int64_t K, void* out,
                                int64_t out_ld, float* scale, int32_t* zp);

struct RowQuantParams {
  float scale, inv;
  int32_t z;
};

inline RowQuantParams row_quant_params(float lo, float hi) {
  lo = lo < 0.0f ? lo : 0.0f;
  hi = hi > 0.0f ? hi : 0.0f;
  RowQuantParams p;
  p.scale = (hi - lo) / 255.0f;
  if (!(p.scale >= FLT_MIN)) p.scale = 1.0f;
  p.inv = 1.0f / p.scale;
  const float z = std::nearbyint(-128.0f - lo * p.inv);
  p.z = static_cast<int32_t>(z < -128.0f ? -128.0f : (z > 127.0f ? 127.0f : z));
  return p;
}

// q of one element, before the format offset.
inline int32_t quantize_value(float x, const RowQuantParams& p) {
  const int32_t q = static_cast<int32_t>(std::nearbyint(x * p.inv)) + p.z;
  return q < -128 ? -128 : (q > 127 ? 127 : q);
}

namespace detail {
// Elements [k0, K) of one row, scalar, then zero to row_bytes.
template <ActFormat F>
inline void quantize_tail(const float* x, int64_t k0, int64_t K, const RowQuantParams& p,
                          uint8_t* row, int64_t row_bytes) {
  for (int64_t k = k0; k < K; ++k) {
    const int32_t q = quantize_value(x[k], p);
    if constexpr (F == ActFormat::kS16) {
      const int16_t v = static_cast<int16_t>(q);
      std::memcpy(row + 2 * k, &v, 2);
    } else {
      row[k] = static_cast<uint8_t>(q + act_format_offset(F));
    }
  }
  const int64_t used = K * act_format_bytes(F);
  if (row_bytes > used) std::memset(row + used, 0, row_bytes - used);
}
}  // namespace detail

template <ActFormat F>
void quantize_rows_ref(const float* A, int64_t lda, int64_t rows, int64_t K, void* out,
                       int64_t out_ld, float* scale, int32_t* zp) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = A + r * lda;
    float lo = 0.0f, hi = 0.0f;
    for (int64_t k = 0; k < K; ++k) lo = std::fmin(lo, x[k]), hi = std::fmax(hi, x[k]);
    const RowQuantParams p = row_quant_params(lo, hi);
    scale[r] = p.scale;
    zp[r] = p.z + act_format_offset(F);
    detail::quantize_tail<F>(x, 0, K, p, static_cast<uint8_t*>(out) + r * out_ld, out_ld);
  }
}

#if defined(__x86_64__)
// GCC 12's AVX-512 intrinsics fill their unused mask operand with _mm512_undefined_*() (x = x),
// which -Wmaybe-uninitialized reports when AVX-512 is enabled by a target attribute only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace detail {
// 16 floats -> 16 values as stored (rne(x * inv) + z, offset included in z, clamped to the
// format's int8 range), and their store as bytes or int16 (vpmovdb / vpmovdw truncate).
__attribute__((target("avx512f"), always_inline)) inline __m512i q16(__m512 v, __m512 inv,
                                                                     __m512i z, __m512i qmin,
                                                                     __m512i qmax) {
  const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v, inv)), z);
  return _mm512_min_epi32(_mm512_max_epi32(q, qmin), qmax);
}
template <int kBytes>
__attribute__((target("avx512f"), always_inline)) inline void store16(uint8_t* d, __m512i q) {
  if constexpr (kBytes == 2)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), _mm512_cvtepi32_epi16(q));
  else
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d), _mm512_cvtepi32_epi8(q));
}
}  // namespace detail

// AVX-512 (the avx512vnni variant's): 64 floats per step, the K tail in masked 16-float steps (no
// scalar loop). Values are clamped in int32 and narrowed with vpmovdb / vpmovdw (truncating), so
// one body serves every ActFormat. Measured against quantize_rows_avx2 in kiln_gemm_s8_bench
// ("quantize_rows/..."): docs/architecture.md, "INT8 GEMM kernels".
template <ActFormat F>
__attribute__((target("avx512f"))) void quantize_rows_avx512(const float* A, int64_t lda,
                                                             int64_t rows, int64_t K, void* out,
                                                             int64_t out_ld, float* scale,
                                                             int32_t* zp) {
  constexpr int kBytes = F == ActFormat::kS16 ? 2 : 1;
  const int64_t tail = K % 16;
  const __mmask16 tail_mask = static_cast<__mmask16>((1u << tail) - 1);
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = A + r * lda;
    // Four independent min/max chains (latency, as in the AVX2 version); masked-off lanes load 0,
    // which min(0, .) / max(0, .) ignore.
    __m512 vlo[4], vhi[4];
    for (int i = 0; i < 4; ++i) vlo[i] = vhi[i] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 64 <= K; k += 64)
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        const __m512 v = _mm512_loadu_ps(x + k + 16 * i);
        vlo[i] = _mm512_min_ps(vlo[i], v);
        vhi[i] = _mm512_max_ps(vhi[i], v);
      }
    for (; k + 16 <= K; k += 16) {
      const __m512 v = _mm512_loadu_ps(x + k);
      vlo[0] = _mm512_min_ps(vlo[0], v);
      vhi[0] = _mm512_max_ps(vhi[0], v);
    }
    if (tail) {
      const __m512 v = _mm512_maskz_loadu_ps(tail_mask, x + k);
      vlo[1] = _mm512_min_ps(vlo[1], v);
      vhi[1] = _mm512_max_ps(vhi[1], v);
    }
    const float lo = _mm512_reduce_min_ps(
        _mm512_min_ps(_mm512_min_ps(vlo[0], vlo[1]), _mm512_min_ps(vlo[2], vlo[3])));
    const float hi = _mm512_reduce_max_ps(
        _mm512_max_ps(_mm512_max_ps(vhi[0], vhi[1]), _mm512_max_ps(vhi[2], vhi[3])));
    const RowQuantParams p = row_quant_params(lo, hi);
    scale[r] = p.scale;
    zp[r] = p.z + act_format_offset(F);
    uint8_t* row = static_cast<uint8_t*>(out) + r * out_ld;
    const __m512 inv = _mm512_set1_ps(p.inv);
    const __m512i z = _mm512_set1_epi32(p.z + act_format_offset(F));
    const __m512i qmin = _mm512_set1_epi32(-128 + act_format_offset(F));
    const __m512i qmax = _mm512_set1_epi32(127 + act_format_offset(F));
    for (k = 0; k + 64 <= K; k += 64)
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i)
        detail::store16<kBytes>(row + (k + 16 * i) * kBytes,
                                detail::q16(_mm512_loadu_ps(x + k + 16 * i), inv, z, qmin, qmax));
    for (; k + 16 <= K; k += 16)
      detail::store16<kBytes>(row + k * kBytes,
                              detail::q16(_mm512_loadu_ps(x + k), inv, z, qmin, qmax));
    if (tail) {
      const __m512i q = detail::q16(_mm512_maskz_loadu_ps(tail_mask, x + k), inv, z, qmin, qmax);
      if constexpr (kBytes == 2)
        _mm512_mask_cvtepi32_storeu_epi16(row + k * kBytes, tail_mask, q);
      else
        _mm512_mask_cvtepi32_storeu_epi8(row + k * kBytes, tail_mask, q);
    }
    const int64_t used = K * kBytes;
    if (out_ld > used) std::memset(row + used, 0, out_ld - used);
  }
}

#pragma GCC diagnostic pop

// AVX2 (the avxvnni and avx2 variants').
// 32 floats per step: four cvtps2dq, saturating packs (which also clamp to int8 / uint8), and a
// permute to undo the packs' lane interleave.
template <ActFormat F>
__attribute__((target("avx2,fma"))) void quantize_rows_avx2(const float* A, int64_t lda,
                                                            int64_t rows, int64_t K, void* out,
                                                            int64_t out_ld, float* scale,
                                                            int32_t* zp) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = A + r * lda;
    // Four independent min/max chains: one chain is bound by vminps latency, not throughput.
    __m256 vlo[4], vhi[4];
    for (int i = 0; i < 4; ++i) vlo[i] = vhi[i] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 32 <= K; k += 32)
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        const __m256 v = _mm256_loadu_ps(x + k + 8 * i);
        vlo[i] = _mm256_min_ps(vlo[i], v);
        vhi[i] = _mm256_max_ps(vhi[i], v);
      }
    for (; k + 8 <= K; k += 8) {
      const __m256 v = _mm256_loadu_ps(x + k);
      vlo[0] = _mm256_min_ps(vlo[0], v);
      vhi[0] = _mm256_max_ps(vhi[0], v);
    }
    alignas(32) float l8[8], h8[8];
    _mm256_store_ps(l8,
                    _mm256_min_ps(_mm256_min_ps(vlo[0], vlo[1]), _mm256_min_ps(vlo[2], vlo[3])));
    _mm256_store_ps(h8,
                    _mm256_max_ps(_mm256_max_ps(vhi[0], vhi[1]), _mm256_max_ps(vhi[2], vhi[3])));
    float lo = 0.0f, hi = 0.0f;
    for (int i = 0; i < 8; ++i) lo = std::fmin(lo, l8[i]), hi = std::fmax(hi, h8[i]);
    for (; k < K; ++k) lo = std::fmin(lo, x[k]), hi = std::fmax(hi, x[k]);
    const RowQuantParams p = row_quant_params(lo, hi);
    scale[r] = p.scale;
    zp[r] = p.z + act_format_offset(F);
    uint8_t* row = static_cast<uint8_t*>(out) + r * out_ld;
    const __m256 inv = _mm256_set1_ps(p.inv);
    const __m256i z = _mm256_set1_epi32(p.z + act_format_offset(F));
#define q8(s) _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(s), inv)), z)
    k = 0;
    if constexpr (F == ActFormat::kS16) {
      const __m256i lo16 = _mm256_set1_epi32(-128), hi16 = _mm256_set1_epi32(127);
      for (; k + 16 <= K; k += 16) {
        const __m256i a = _mm256_min_epi32(_mm256_max_epi32(q8(x + k), lo16), hi16);
        const __m256i b = _mm256_min_epi32(_mm256_max_epi32(q8(x + k + 8), lo16), hi16);
        const __m256i v = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(row + 2 * k), v);
      }
    } else {
      const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
      for (; k + 32 <= K; k += 32) {
        const __m256i ab = _mm256_packs_epi32(q8(x + k), q8(x + k + 8));
        const __m256i cd = _mm256_packs_epi32(q8(x + k + 16), q8(x + k + 24));
        const __m256i v =
            F == ActFormat::kU8 ? _mm256_packus_epi16(ab, cd) : _mm256_packs_epi16(ab, cd);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(row + k),
                            _mm256_permutevar8x32_epi32(v, order));
      }
    }
#undef q8
    detail::quantize_tail<F>(x, k, K, p, row, out_ld);
  }
}
#endif

#if defined(__aarch64__)
// NEON, s8 only: 16 floats per step, fcvtns (round half to even) and saturating narrows.
inline void quantize_rows_neon(const float* A, int64_t lda, int64_t rows, int64_t K, void* out,
                               int64_t out_ld, float* scale, int32_t* zp) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = A + r * lda;
    float32x4_t vlo[4], vhi[4];
    for (int i = 0; i < 4; ++i) vlo[i] = vhi[i] = vdupq_n_f32(0.0f);
    int64_t k = 0;
    for (; k + 16 <= K; k += 16)
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        const float32x4_t v = vld1q_f32(x + k + 4 * i);
        vlo[i] = vminq_f32(vlo[i], v);
        vhi[i] = vmaxq_f32(vhi[i], v);
      }
    for (; k + 4 <= K; k += 4) {
      const float32x4_t v = vld1q_f32(x + k);
      vlo[0] = vminq_f32(vlo[0], v);
      vhi[0] = vmaxq_f32(vhi[0], v);
    }
    float lo = vminvq_f32(vminq_f32(vminq_f32(vlo[0], vlo[1]), vminq_f32(vlo[2], vlo[3])));
    float hi = vmaxvq_f32(vmaxq_f32(vmaxq_f32(vhi[0], vhi[1]), vmaxq_f32(vhi[2], vhi[3])));
    for (; k < K; ++k) lo = std::fmin(lo, x[k]), hi = std::fmax(hi, x[k]);
    const RowQuantParams p = row_quant_params(lo, hi);
    scale[r] = p.scale;
    zp[r] = p.z;
    int8_t* row = static_cast<int8_t*>(out) + r * out_ld;
    const float32x4_t inv = vdupq_n_f32(p.inv);
    const int32x4_t z = vdupq_n_s32(p.z);
#define q4(s) vqmovn_s32(vaddq_s32(vcvtnq_s32_f32(vmulq_f32(vld1q_f32(s), inv)), z))
    k = 0;
    for (; k + 16 <= K; k += 16) {
      const int16x8_t a = vcombine_s16(q4(x + k), q4(x + k + 4));
      const int16x8_t b = vcombine_s16(q4(x + k + 8), q4(x + k + 12));
      vst1q_s8(row + k, vcombine_s8(vqmovn_s16(a), vqmovn_s16(b)));
    }
#undef q4
    detail::quantize_tail<ActFormat::kS8>(x, k, K, p, reinterpret_cast<uint8_t*>(row), out_ld);
  }
}
#endif

}  // namespace kiln::kernels::gemm
