// Quantizes and packs a constant weight B (K x N, or N x K when transposed like ONNX Gemm
// transB=1) for the INT8 GEMM. Runs in the compiler on the host: plain C++.
//
// Weights are int8, symmetric, one scale per output channel n: w[k, n] ~ scale[n] * q[k, n].
// quantize_pack_b_s8 picks scale[n] = max_k |w[k, n]| / 127 and q = clamp(rne(w / scale), -127,
// 127) (round half to even, as ONNX QuantizeLinear); pack_b_s8 takes weights already quantized
// (any int8, -128 included).
//
// The blob (model.params stores it as one byte tensor, 64-byte aligned), packed_b_s8_bytes(K, N)
// bytes, Kp = K rounded up to a multiple of 4, Np = N rounded up to 16:
//   [panels]   ceil(N/16) panels of 16 columns, Kp * 16 bytes each, back to back. Panel p is Kp/4
//              groups of 64 bytes; group g holds, for column j = 0..15 of the panel, the 4 bytes
//              q[4g + 0..3, 16p + j] at offset 4j ("c4": one 32-bit lane = 4 consecutive k of
//              one column, what vpdpbusd, sdot and vpmaddwd/smull after widening consume). Zero
//              past N and past K.
//   [scale]    Np floats, scale[n], zero past N.
//   [colsum]   Np int32, sum_k q[k, n] (the zero-point correction of asymmetric activations).
// One layout for every ISA: AVX-512 VNNI reads a 64-byte group of two adjacent panels per k
// step of 4, AVX2 / NEON / sdot read one panel. With a 64-byte aligned base every group is one
// aligned cache line.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kiln/kernels/gemm/s8_types.h"

namespace kiln::kernels::gemm {

// Largest K: |sum_k (a - z) * q| <= 255 * 128 * K and the kernels' u8 sums must fit int32.
constexpr int64_t kMaxKS8 = 65536;

inline int64_t s8_padded_k(int64_t K) {
  return (K + 3) / 4 * 4;
}
inline int64_t s8_padded_n(int64_t N) {
  return (N + kNr - 1) / kNr * kNr;
}

inline size_t packed_b_s8_bytes(int64_t K, int64_t N) {
  return static_cast<size_t>(s8_padded_n(N) * (s8_padded_k(K) + 8));
}

// What the micro-kernels read, located inside a blob of packed_b_s8_bytes(K, N) bytes, and the
// activations' smoothing: null, or K floats m[k] when the blob holds W[k, :] / m[k] (the driver
// quantizes A[:, k] * m[k], s8_quantize.h).
struct PackedS8 {
  const int8_t* data = nullptr;
  const float* scale = nullptr;
  const int32_t* colsum = nullptr;
  int64_t K = 0, N = 0;
  const float* act_smooth = nullptr;
};

inline PackedS8 packed_s8_view(const void* blob, int64_t K, int64_t N,
                               const float* act_smooth = nullptr) {
  const int8_t* p = static_cast<const int8_t*>(blob);
  const int64_t np = s8_padded_n(N), panel_bytes = s8_padded_k(K) * np;
  PackedS8 v;
  v.data = p;
  v.scale = reinterpret_cast<const float*>(p + panel_bytes);
  v.colsum = reinterpret_cast<const int32_t*>(p + panel_bytes + np * 4);
  v.K = K;
  v.N = N;
  v.act_smooth = act_smooth;
  return v;
}

// Packs int8 weights q (q(k, n) = transposed ? q[n*K + k] : q[k*N + n]) with per-channel scales
// scale[n] into blob. False (blob untouched) if K > kMaxKS8.
inline bool pack_b_s8(const int8_t* q, const float* scale, int64_t K, int64_t N, bool transposed,
                      void* blob) {
  if (K > kMaxKS8) return false;
  const int64_t kp = s8_padded_k(K), np = s8_padded_n(N);
  int8_t* dst = static_cast<int8_t*>(blob);
  std::memset(dst, 0, packed_b_s8_bytes(K, N));
  float* scales = reinterpret_cast<float*>(dst + kp * np);
  int32_t* colsum = reinterpret_cast<int32_t*>(dst + kp * np + np * 4);
  for (int64_t n = 0; n < N; ++n) {
    int8_t* panel = dst + (n / kNr) * kp * kNr;
    const int64_t j = n % kNr;
    int32_t sum = 0;
    for (int64_t k = 0; k < K; ++k) {
      const int8_t v = transposed ? q[n * K + k] : q[k * N + n];
      panel[(k / 4) * 64 + j * 4 + k % 4] = v;
      sum += v;
    }
    scales[n] = scale[n];
    colsum[n] = sum;
  }
  return true;
}

// Per-output-channel symmetric quantization of float weights w (same indexing as pack_b_s8):
// scale[n] = max_k |w(k, n)| / 127 (1 for an all-zero column), q = clamp(rne(w / scale), -127,
// 127). Writes K*N values to q (same orientation as w) and N to scale.
inline void quantize_b_s8(const float* w, int64_t K, int64_t N, bool transposed, int8_t* q,
                          float* scale) {
  auto at = [&](int64_t k, int64_t n) { return transposed ? n * K + k : k * N + n; };
  for (int64_t n = 0; n < N; ++n) {
    float absmax = 0.0f;
    for (int64_t k = 0; k < K; ++k) absmax = std::fmax(absmax, std::fabs(w[at(k, n)]));
    const float s = absmax > 0.0f ? absmax / 127.0f : 1.0f;
    scale[n] = s;
    for (int64_t k = 0; k < K; ++k) {
      const float v = std::nearbyint(w[at(k, n)] / s);  // default rounding mode: half to even
      q[at(k, n)] = static_cast<int8_t>(std::fmin(127.0f, std::fmax(-127.0f, v)));
    }
  }
}

// quantize_b_s8 + pack_b_s8 (scratch: K*N + N*4 bytes on the heap, compiler side only).
inline bool quantize_pack_b_s8(const float* w, int64_t K, int64_t N, bool transposed, void* blob) {
  if (K > kMaxKS8) return false;
  std::vector<int8_t> q(static_cast<size_t>(K * N));
  std::vector<float> scale(static_cast<size_t>(N));
  quantize_b_s8(w, K, N, transposed, q.data(), scale.data());
  return pack_b_s8(q.data(), scale.data(), K, N, transposed, blob);
}

}  // namespace kiln::kernels::gemm
