// Quantizes and packs a constant weight B (K x N, or N x K when transposed like ONNX Gemm
// transB=1) for the INT8 GEMM. Runs in the compiler on the host: plain C++.
//
// Weights are int8, symmetric, with one scale per output channel n and group of `group`
// consecutive k (group 0, or group >= K: one group of all of K, per channel):
// w[k, n] ~ scale[k / group][n] * q[k, n]. quantize_b_s8 picks scale[g][n] = max over the
// group's k of |w[k, n]| / 127 and q = clamp(rne(w / scale), -127, 127) (round half to even, as
// ONNX QuantizeLinear); pack_b_s8 takes weights already quantized (any int8, -128 included).
// Groups along K (64 by default, kS8WeightGroup) are what a trained model's weights need once
// smoothing has moved its activation outliers into them: rows of W then differ in magnitude by
// 10-100x, and one scale per column rounds the small rows away (docs/architecture.md, "Weight
// groups along K"). The kernels sum each group's int32 products exactly, then scale and add them
// in float.
//
// The blob (model.params stores it as one byte tensor, 64-byte aligned),
// packed_b_s8_bytes(K, N, group) bytes, Kp = K rounded up to a multiple of 4, Np = N rounded up
// to 16, G = s8_weight_groups(K, group):
//   [panels]   ceil(N/16) panels of 16 columns, Kp * 16 bytes each, back to back. Panel p is Kp/4
//              groups of 64 bytes; group g holds, for column j = 0..15 of the panel, the 4 bytes
//              q[4g + 0..3, 16p + j] at offset 4j ("c4": one 32-bit lane = 4 consecutive k of
//              one column, what vpdpbusd, sdot and vpmaddwd/smull after widening consume). Zero
//              past N and past K.
//   [scale]    G x Np floats, scale[g][n] at g * Np + n, zero past N.
//   [colsum]   per channel (G = 1): Np int32, sum_k q[k, n] (the zero-point correction of
//              asymmetric activations, exact in int32);
//   [zsum]     with groups (G > 1) instead: Np floats, sum_g scale[g][n] * sum_{k in g} q[k, n]
//              (the same correction, applied in float after the groups are summed).
// One layout for every ISA: AVX-512 VNNI reads a 64-byte group of two adjacent panels per k
// step of 4, AVX2 / NEON / sdot read one panel. With a 64-byte aligned base every group is one
// aligned cache line.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kiln/kernels/gemm/s8_types.h"

namespace kiln::kernels::gemm {

// Largest K: |sum_k (a - z) * q| <= 255 * 128 * K and the kernels' u8 sums must fit int32.
constexpr int64_t kMaxKS8 = 65536;

// The compiler's weight group along K (a multiple of 4, so that a group is whole c4 units; at most
// 2^9, so that a group's int32 sum, <= 255 * 128 * group, converts to float exactly).
constexpr int64_t kS8WeightGroup = 64;
constexpr int64_t kMaxS8WeightGroup = 512;

// Whether `group` is one pack_b_s8 takes: 0 (per channel) or a multiple of 4 in [4, 512].
inline bool valid_s8_weight_group(int64_t group) {
  return group == 0 || (group >= 4 && group <= kMaxS8WeightGroup && group % 4 == 0);
}

// The group size a blob really uses: 0 when one group covers all of K.
inline int64_t effective_s8_weight_group(int64_t K, int64_t group) {
  return group > 0 && group < K ? group : 0;
}

// Scale groups along K: 1 per channel.
inline int64_t s8_weight_groups(int64_t K, int64_t group) {
  const int64_t g = effective_s8_weight_group(K, group);
  return g ? (K + g - 1) / g : 1;
}

inline int64_t s8_padded_k(int64_t K) {
  return (K + 3) / 4 * 4;
}
inline int64_t s8_padded_n(int64_t N) {
  return (N + kNr - 1) / kNr * kNr;
}

inline size_t packed_b_s8_bytes(int64_t K, int64_t N, int64_t group = 0) {
  return static_cast<size_t>(s8_padded_n(N) *
                             (s8_padded_k(K) + 4 * s8_weight_groups(K, group) + 4));
}

// What the micro-kernels read, located inside a blob of packed_b_s8_bytes(K, N, group) bytes, and
// the activations' smoothing: null, or K floats m[k] when the blob holds W[k, :] / m[k] (the
// driver quantizes A[:, k] * m[k], s8_quantize.h). group: effective_s8_weight_group (0: per
// channel, colsum set; else zsum set); the scales of group g start at scale + g * scale_stride.
struct PackedS8 {
  const int8_t* data = nullptr;
  const float* scale = nullptr;
  const int32_t* colsum = nullptr;
  const float* zsum = nullptr;
  int64_t K = 0, N = 0;
  int64_t group = 0;
  int64_t scale_stride = 0;
  const float* act_smooth = nullptr;
};

inline PackedS8 packed_s8_view(const void* blob, int64_t K, int64_t N,
                               const float* act_smooth = nullptr, int64_t group = 0) {
  const int8_t* p = static_cast<const int8_t*>(blob);
  const int64_t np = s8_padded_n(N), panel_bytes = s8_padded_k(K) * np;
  PackedS8 v;
  v.data = p;
  v.scale = reinterpret_cast<const float*>(p + panel_bytes);
  v.group = effective_s8_weight_group(K, group);
  v.scale_stride = np;
  const int8_t* tail = p + panel_bytes + np * 4 * s8_weight_groups(K, group);
  if (v.group)
    v.zsum = reinterpret_cast<const float*>(tail);
  else
    v.colsum = reinterpret_cast<const int32_t*>(tail);
  v.K = K;
  v.N = N;
  v.act_smooth = act_smooth;
  return v;
}

// Packs int8 weights q (q(k, n) = transposed ? q[n*K + k] : q[k*N + n]) with scales scale[g * N
// + n] (G = s8_weight_groups(K, group) rows of N) into blob. False (blob untouched) if K >
// kMaxKS8 or the group is not valid_s8_weight_group.
inline bool pack_b_s8(const int8_t* q, const float* scale, int64_t K, int64_t N, bool transposed,
                      void* blob, int64_t group = 0) {
  if (K > kMaxKS8 || !valid_s8_weight_group(group)) return false;
  const int64_t kp = s8_padded_k(K), np = s8_padded_n(N);
  const int64_t eg = effective_s8_weight_group(K, group), groups = s8_weight_groups(K, group);
  int8_t* dst = static_cast<int8_t*>(blob);
  std::memset(dst, 0, packed_b_s8_bytes(K, N, group));
  float* scales = reinterpret_cast<float*>(dst + kp * np);
  int8_t* tail = dst + kp * np + np * 4 * groups;
  for (int64_t n = 0; n < N; ++n) {
    int8_t* panel = dst + (n / kNr) * kp * kNr;
    const int64_t j = n % kNr;
    int32_t sum = 0, group_sum = 0;
    double zsum = 0;
    for (int64_t k = 0; k < K; ++k) {
      const int8_t v = transposed ? q[n * K + k] : q[k * N + n];
      panel[(k / 4) * 64 + j * 4 + k % 4] = v;
      sum += v;
      group_sum += v;
      if (eg && ((k + 1) % eg == 0 || k + 1 == K)) {
        zsum += double(scale[(k / eg) * N + n]) * group_sum;
        group_sum = 0;
      }
    }
    for (int64_t g = 0; g < groups; ++g) scales[g * np + n] = scale[g * N + n];
    if (eg)
      reinterpret_cast<float*>(tail)[n] = static_cast<float>(zsum);
    else
      reinterpret_cast<int32_t*>(tail)[n] = sum;
  }
  return true;
}

// Symmetric quantization of float weights w (same indexing as pack_b_s8) per output channel and
// group of k: scale[g * N + n] = max over the group of |w(k, n)| / 127 (1 for an all-zero group),
// q = clamp(rne(w / scale), -127, 127). Writes K*N values to q (same orientation as w) and
// s8_weight_groups(K, group) * N to scale.
inline void quantize_b_s8(const float* w, int64_t K, int64_t N, bool transposed, int8_t* q,
                          float* scale, int64_t group = 0) {
  auto at = [&](int64_t k, int64_t n) { return transposed ? n * K + k : k * N + n; };
  const int64_t eg = effective_s8_weight_group(K, group), groups = s8_weight_groups(K, group);
  const int64_t span = eg ? eg : K;
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t k0 = g * span, k1 = std::min(K, k0 + span);
    for (int64_t n = 0; n < N; ++n) {
      float absmax = 0.0f;
      for (int64_t k = k0; k < k1; ++k) absmax = std::fmax(absmax, std::fabs(w[at(k, n)]));
      const float s = absmax > 0.0f ? absmax / 127.0f : 1.0f;
      scale[g * N + n] = s;
      for (int64_t k = k0; k < k1; ++k) {
        const float v = std::nearbyint(w[at(k, n)] / s);  // default rounding mode: half to even
        q[at(k, n)] = static_cast<int8_t>(std::fmin(127.0f, std::fmax(-127.0f, v)));
      }
    }
  }
}

// quantize_b_s8 + pack_b_s8 (scratch: K*N + G*N*4 bytes on the heap, compiler side only).
inline bool quantize_pack_b_s8(const float* w, int64_t K, int64_t N, bool transposed, void* blob,
                               int64_t group = 0) {
  if (K > kMaxKS8 || !valid_s8_weight_group(group)) return false;
  std::vector<int8_t> q(static_cast<size_t>(K * N));
  std::vector<float> scale(static_cast<size_t>(s8_weight_groups(K, group) * N));
  quantize_b_s8(w, K, N, transposed, q.data(), scale.data(), group);
  return pack_b_s8(q.data(), scale.data(), K, N, transposed, blob, group);
}

}  // namespace kiln::kernels::gemm
