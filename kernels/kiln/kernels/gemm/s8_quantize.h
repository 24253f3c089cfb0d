// Run-time quantization of the INT8 GEMM's activations A (float, row-major): one scale and zero
// point per row (per token), asymmetric int8. For row x[0..K):
//   lo = min(0, min x), hi = max(0, max x)
//   scale = (hi - lo) / 255                     (1 when that is 0 or below FLT_MIN)
//   inv   = 1 / scale                           (float)
//   z     = clamp(rne(-128 - lo * inv), -128, 127)
//   q[k]  = clamp(rne(x[k] * inv) + z, -128, 127),   x[k] ~ scale * (q[k] - z)
// rne = round half to even (ONNX DynamicQuantizeLinear's rounding; its int8 form, with x * inv in
// place of x / scale). With a smoothing vector m[0..K) (SmoothQuant-style, docs/architecture.md
// "Outlier channels"), every x[k] above is first x[k] * m[k] (one float product): the weights were
// multiplied by 1 / m[k] row by row at compile time, so the product is unchanged while a channel
// tens of times larger than the rest no longer takes every other channel's bits. Stored in the
// variant's ActFormat (s8_types.h), zero from K to the row end. Why per row and asymmetric:
// docs/architecture.md, "INT8 GEMM kernels" (measured). quantize_rows_ref is the plain C++
// definition; the AVX-512, AVX2 and NEON versions, one body at three vector widths
// (detail::quantize_rows_simd), give identical bytes.
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>

#include <utility>
#include <vector>

#if defined(__aarch64__)
#include <arm_neon.h>
#endif

#include "kiln/kernels/common.h"
#include "kiln/kernels/gemm/s8_types.h"

namespace kiln::kernels::gemm {

// Quantizes rows [0, rows) of A (lda floats apart, K each), each element times smooth[k] when
// smooth is not null, into out (rows out_ld bytes apart, in one ActFormat); scale[r] and zp[r] = z
// + act_format_offset get each row's parameters.
using QuantizeRowsFn = void (*)(const float* A, int64_t lda, int64_t rows, int64_t K,
                                const float* smooth, void* out, int64_t out_ld, float* scale,
                                int32_t* zp);

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
void quantize_rows_ref(const float* A, int64_t lda, int64_t rows, int64_t K, const float* smooth,
                       void* out, int64_t out_ld, float* scale, int32_t* zp) {
  std::vector<float> smoothed(smooth ? K : 0);
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = A + r * lda;
    if (smooth) {
      for (int64_t k = 0; k < K; ++k) smoothed[k] = x[k] * smooth[k];
      x = smoothed.data();
    }
    float lo = 0.0f, hi = 0.0f;
    for (int64_t k = 0; k < K; ++k) lo = std::fmin(lo, x[k]), hi = std::fmax(hi, x[k]);
    const RowQuantParams p = row_quant_params(lo, hi);
    scale[r] = p.scale;
    zp[r] = p.z + act_format_offset(F);
    detail::quantize_tail<F>(x, 0, K, p, static_cast<uint8_t*>(out) + r * out_ld, out_ld);
  }
}

namespace detail {

// The SIMD quantizer's pieces, over W-lane GCC vectors (common.h VecOf). Vectors are passed by
// reference: these are always inlined into a function with the ISA's target attribute, and a
// by-value vector wider than the translation unit's ISA would draw -Wpsabi.

// acc = max(acc, v) (kMax) or min(acc, v), lane-wise; a NaN in v leaves acc (as fmax / fmin). x86
// gets vmaxps / vminps from the select; AArch64 would get fcmgt + bsl (the select differs from
// fmaxnm on the sign of a zero, which does not matter here), so 4 floats use fmaxnm / fminnm.
template <bool kMax, class V>
__attribute__((always_inline)) inline void extreme_into(V& acc, const V& v) {
#if defined(__aarch64__)
  if constexpr (sizeof(V) == sizeof(float32x4_t)) {
    const float32x4_t a = (float32x4_t)acc, b = (float32x4_t)v;
    acc = (V)(kMax ? vmaxnmq_f32(a, b) : vminnmq_f32(a, b));
    return;
  }
#endif
  acc = (kMax ? v > acc : v < acc) ? v : acc;
}

// Lane 0 of lo / hi becomes the min / max over their lanes: log2(W) rotate-and-combine steps.
template <int S, class V, int... L>
__attribute__((always_inline)) inline void fold_min_max(V& lo, V& hi,
                                                        std::integer_sequence<int, L...> lanes) {
  if constexpr (S > 0) {
    const V l = __builtin_shufflevector(lo, lo, ((L + S) % int(sizeof...(L)))...);
    const V h = __builtin_shufflevector(hi, hi, ((L + S) % int(sizeof...(L)))...);
    extreme_into<false>(lo, l);
    extreme_into<true>(hi, h);
    fold_min_max<S / 2>(lo, hi, lanes);
  }
}

// out = the even lanes of a, then those of b: the low half of every wider lane of a and b, each
// viewed as N lanes of T (GCC makes it vpand + vpackus + vpermq on AVX2, uzp1 on NEON).
template <class T, int N, class In, class Out, int... L>
__attribute__((always_inline)) inline void even_lanes(const In& a, const In& b, Out& out,
                                                      std::integer_sequence<int, L...>) {
  typedef T Half __attribute__((vector_size(N * sizeof(T))));
  Half ha, hb;
  std::memcpy(&ha, &a, sizeof ha);
  std::memcpy(&hb, &b, sizeof hb);
  out = __builtin_shufflevector(ha, hb, (2 * L)...);
}

// Stores the 4W values z + bits(t) - bits(1.5 * 2^23), clamped to [-128, 127] (plus the format
// offset), for the 4W int32 lanes of q = bits(t), in order, at d. A 64-byte vector (AVX-512F)
// works on int32 lanes and narrows one vector at a time (vpmovdb / vpmovdw; the int16 operations
// below need AVX-512BW); narrower vectors first keep the low 16 bits (those of bits(1.5 * 2^23)
// are zero, so that is the rounded value, |value| <= 256) and clamp 2W int16 lanes per operation,
// then narrow pairs again to bytes.
template <int W, ActFormat F>
__attribute__((always_inline)) inline void store_values(const typename VecOf<W>::I (&q)[4],
                                                        int32_t z, uint8_t* d) {
  constexpr int32_t kMagicBits = 0x4B400000;
  constexpr int32_t kOffset = act_format_offset(F);
  if constexpr (W == 16) {
    typedef int16_t H1 __attribute__((vector_size(W * sizeof(int16_t))));
    typedef uint8_t B1 __attribute__((vector_size(W)));
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      typename VecOf<W>::I v = q[i] + (z + kOffset - kMagicBits);
      v = v < kOffset - 128 ? kOffset - 128 : v;
      v = v > kOffset + 127 ? kOffset + 127 : v;
      if constexpr (F == ActFormat::kS16) {
        const H1 h = __builtin_convertvector(v, H1);
        std::memcpy(d + sizeof(h) * i, &h, sizeof(h));
      } else {
        const B1 b = __builtin_convertvector(v, B1);
        std::memcpy(d + sizeof(b) * i, &b, sizeof(b));
      }
    }
  } else {
    typedef int16_t H __attribute__((vector_size(2 * W * sizeof(int16_t))));
    typedef uint8_t B __attribute__((vector_size(4 * W)));
    H h[2];
    even_lanes<int16_t, 2 * W>(q[0], q[1], h[0], std::make_integer_sequence<int, 2 * W>{});
    even_lanes<int16_t, 2 * W>(q[2], q[3], h[1], std::make_integer_sequence<int, 2 * W>{});
    for (H& v : h) {
      v += static_cast<int16_t>(z);
      v = v < -128 ? -128 : v;
      v = v > 127 ? 127 : v;
    }
    if constexpr (F == ActFormat::kS16) {
      std::memcpy(d, h, sizeof(h));
    } else {
      B b;
      even_lanes<uint8_t, 4 * W>(h[0], h[1], b, std::make_integer_sequence<int, 4 * W>{});
      b += static_cast<uint8_t>(kOffset);
      std::memcpy(d, &b, sizeof(b));
    }
  }
}

// One body for every ISA: quantize_rows_ref's bytes, 4W floats per step in four independent
// chains (one min/max chain is bound by latency, not throughput); the loops over the four are
// unrolled by pragma because -O2 (model.so) would keep the chains in memory otherwise. Per element
//   t = x * inv + 1.5 * 2^23,   q = clamp(z + bits(t) - bits(1.5 * 2^23), -128, 127)
// (store_values): t is in [2^23, 2^24) (|x * inv| <= 256), where the float add itself rounds
// x * inv to an integer, half to even, as vcvtps2dq / fcvtns do. The product is rounded first:
// the empty asm keeps -ffp-contract=fast (how model.so is built) from fusing it into the add as
// an FMA, whose single rounding would break ties differently. The K tail goes through a
// zero-padded copy: zeros move neither min(0, .) nor max(0, .), and only the tail's values are
// stored.
template <int W, ActFormat F, bool kSmooth>
__attribute__((always_inline)) inline void quantize_rows_simd(const float* A, int64_t lda,
                                                              int64_t rows, int64_t K,
                                                              const float* smooth, void* out,
                                                              int64_t out_ld, float* scale,
                                                              int32_t* zp) {
  using V = typename VecOf<W>::F;
  using VI = typename VecOf<W>::I;
  constexpr int kStep = 4 * W;
  constexpr int kBytes = F == ActFormat::kS16 ? 2 : 1;
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  const int64_t body = K / kStep * kStep;
  float tail_m[kStep] = {};
  if (kSmooth && body < K) std::memcpy(tail_m, smooth + body, (K - body) * sizeof(float));
  // Four vectors of the row at s (times the smoothing at m), into v.
  auto load = [](const float* s, const float* m, V(&v)[4]) __attribute__((always_inline)) {
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      std::memcpy(&v[i], s + W * i, sizeof(V));
      if constexpr (kSmooth) {
        V f;
        std::memcpy(&f, m + W * i, sizeof(V));
        v[i] *= f;
      }
    }
  };
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = A + r * lda;
    float tail[kStep] = {};
    if (body < K) std::memcpy(tail, x + body, (K - body) * sizeof(float));
    V lo[4] = {}, hi[4] = {};
    auto min_max_step = [&](const float* s, const float* m) __attribute__((always_inline)) {
      V v4[4];
      load(s, m, v4);
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        const V& v = v4[i];
        extreme_into<false>(lo[i], v);
        extreme_into<true>(hi[i], v);
      }
    };
    for (int64_t k = 0; k < body; k += kStep) min_max_step(x + k, kSmooth ? smooth + k : nullptr);
    if (body < K) min_max_step(tail, tail_m);
#pragma GCC unroll 4
    for (int i = 1; i < 4; ++i) extreme_into<false>(lo[0], lo[i]), extreme_into<true>(hi[0], hi[i]);
    fold_min_max<W / 2>(lo[0], hi[0], std::make_integer_sequence<int, W>{});
    const RowQuantParams p = row_quant_params(lo[0][0], hi[0][0]);
    scale[r] = p.scale;
    zp[r] = p.z + act_format_offset(F);
    uint8_t* row = static_cast<uint8_t*>(out) + r * out_ld;
    const V inv = V{} + p.inv;
    auto quantize_step = [&](const float* s, const float* m, uint8_t* d)
        __attribute__((always_inline)) {
      VI q[4];
      V v4[4];
      load(s, m, v4);
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        V v = v4[i] * inv;
#if defined(__aarch64__)
        __asm__("" : "+w"(v));
#else
        __asm__("" : "+x"(v));
#endif
        v += kMagic;
        std::memcpy(&q[i], &v, sizeof(v));
      }
      store_values<W, F>(q, p.z, d);
    };
    for (int64_t k = 0; k < body; k += kStep)
      quantize_step(x + k, kSmooth ? smooth + k : nullptr, row + k * kBytes);
    if (body < K) {
      uint8_t tail_q[kStep * kBytes];
      quantize_step(tail, tail_m, tail_q);
      std::memcpy(row + body * kBytes, tail_q, (K - body) * kBytes);
    }
    if (out_ld > K * kBytes) std::memset(row + K * kBytes, 0, out_ld - K * kBytes);
  }
}

}  // namespace detail

// The ISA entry points (a QuantizeRowsFn each, see s8_dispatch.h for who uses which): the SIMD body
// at the ISA's vector width, built with its target attribute so that a baseline translation unit
// holds them; dispatch only calls them on CPUs that have the ISA.
#if defined(__x86_64__)
template <ActFormat F>
__attribute__((target("avx512f"))) void quantize_rows_avx512(const float* A, int64_t lda,
                                                             int64_t rows, int64_t K,
                                                             const float* smooth, void* out,
                                                             int64_t out_ld, float* scale,
                                                             int32_t* zp) {
  if (smooth)
    detail::quantize_rows_simd<16, F, true>(A, lda, rows, K, smooth, out, out_ld, scale, zp);
  else
    detail::quantize_rows_simd<16, F, false>(A, lda, rows, K, nullptr, out, out_ld, scale, zp);
}
template <ActFormat F>
__attribute__((target("avx2"))) void quantize_rows_avx2(const float* A, int64_t lda, int64_t rows,
                                                        int64_t K, const float* smooth, void* out,
                                                        int64_t out_ld, float* scale, int32_t* zp) {
  if (smooth)
    detail::quantize_rows_simd<8, F, true>(A, lda, rows, K, smooth, out, out_ld, scale, zp);
  else
    detail::quantize_rows_simd<8, F, false>(A, lda, rows, K, nullptr, out, out_ld, scale, zp);
}
#endif
#if defined(__aarch64__)
template <ActFormat F>
void quantize_rows_neon(const float* A, int64_t lda, int64_t rows, int64_t K, const float* smooth,
                        void* out, int64_t out_ld, float* scale, int32_t* zp) {
  if (smooth)
    detail::quantize_rows_simd<4, F, true>(A, lda, rows, K, smooth, out, out_ld, scale, zp);
  else
    detail::quantize_rows_simd<4, F, false>(A, lda, rows, K, nullptr, out, out_ld, scale, zp);
}
#endif

}  // namespace kiln::kernels::gemm
