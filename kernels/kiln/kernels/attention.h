// Fused self-attention (f32), the runtime side of the `Attention` op:
//   out[b, i, h*hd + :] = sum_j softmax_j(q_i . k_j * scale + mask[b, h, i, j]) v_j
// for every batch b, head h and query row i, reading Q, K and V in place from the [B, S, H]
// projections (row stride ldq/ldk/ldv, head h at column h*hd, so one packed [B, S, 3H] tensor
// works too) and writing [B, S, H]: the exporter's head transposes are just strides here.
//
// No [B, nh, S, S] score tensor: a task (batch, head, block of query rows) packs K^T once into
// 16-key panels on its stack (S_pad * hd floats), then walks its rows 6 at a time: a 6 x S score
// strip in registers-then-stack, softmax in place (vector exp), and the 6 x hd output
// accumulated from V rows read in place. Stack per task: (S_pad * (hd + 6)) floats, 140 KB for
// S = 512, hd = 64 (the compiler refuses shapes that need more than kAttentionMaxStackBytes).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kiln/kernels/common.h"
#include "kiln/kernels/matmul.h"
#include "kiln/kernels/parallel.h"

namespace kiln::kernels {

constexpr int kAttentionRows = 6;              // query rows per register tile
constexpr int64_t kAttentionKeys = kMatmulNr;  // keys per packed K^T panel (16)
constexpr int64_t kAttentionMaxStackBytes = 4 << 20;

inline int64_t attention_stack_bytes(int64_t seq, int64_t head_size) {
  const int64_t s_pad = (seq + kAttentionKeys - 1) / kAttentionKeys * kAttentionKeys;
  return s_pad * (head_size + kAttentionRows) * 4 + 64;
}

// exp(x) in float, scalar or MatmulVec: Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, Cephes'
// degree-5 polynomial for e^r, 2^n through the exponent bits. Relative error < 2e-7 for
// x in [-87.3, 88] (the tests check every 997th float); exp(x) = 0 below ln(FLT_MIN) (no
// denormals), +inf above 88, NaN stays NaN. Softmax only feeds it x - max <= 0.
namespace exp_coef {
constexpr float kLo = -87.3365447f;  // ln(FLT_MIN)
constexpr float kHi = 88.0f;         // keeps n <= 127
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;
constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f,
                kP3 = 4.1665795894e-2f, kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;
}  // namespace exp_coef

typedef int32_t MatmulVecI __attribute__((vector_size(kMatmulVecFloats * sizeof(int32_t))));

namespace detail {
inline int32_t to_int(float x) {
  return static_cast<int32_t>(x);
}
inline MatmulVecI to_int(MatmulVec x) {
  return __builtin_convertvector(x, MatmulVecI);
}
inline float to_float(int32_t x) {
  return static_cast<float>(x);
}
inline MatmulVec to_float(MatmulVecI x) {
  return __builtin_convertvector(x, MatmulVec);
}
inline float bits_to_float(int32_t x) {
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}
inline MatmulVec bits_to_float(MatmulVecI x) {
  MatmulVec f;
  std::memcpy(&f, &x, sizeof(f));
  return f;
}
}  // namespace detail

// F = float or MatmulVec; the same operations in the same order for both.
template <class F>
inline F exp_f32(F x) {
  using namespace exp_coef;
  const F zero = F{} + 0.0f, lo = F{} + kLo, hi = F{} + kHi;
  const F xc = x < lo ? lo : (x > hi ? hi : x);
  F fx = xc * kLog2e;
  fx = fx + (fx >= zero ? zero + 0.5f : zero - 0.5f);  // round to nearest (truncation below)
  const auto n = detail::to_int(fx);
  const F nf = detail::to_float(n);
  F r = xc - nf * kLn2Hi;
  r = r - nf * kLn2Lo;
  F p = r * kP0 + kP1;
  p = p * r + kP2;
  p = p * r + kP3;
  p = p * r + kP4;
  p = p * r + kP5;
  F y = p * (r * r) + r + 1.0f;
  y = y * detail::bits_to_float((n + 127) << 23);
  y = x < lo ? zero : y;
  return x > hi ? zero + INFINITY : y;
}

namespace detail {

struct AttentionArgs {
  const float *q, *k, *v;
  int64_t ldq, ldk, ldv;
  const float* mask;
  int64_t msb, msh, msq, msk;  // mask element strides (0 = broadcast) over b, h, i, j
  float* out;
  int64_t ldo;
  int64_t seq, num_heads, head_size, s_pad;
  float scale;
};

// kt[p][d][c] = K[key 16p + c][d] for this (b, h), zero past seq.
inline void attention_pack_kt(const AttentionArgs& a, const float* k, float* kt) {
  const int64_t hd = a.head_size;
  for (int64_t j = 0; j < a.s_pad; ++j) {
    float* dst = kt + (j / kAttentionKeys) * hd * kAttentionKeys + j % kAttentionKeys;
    if (j < a.seq) {
      const float* src = k + j * a.ldk;
      for (int64_t d = 0; d < hd; ++d) dst[d * kAttentionKeys] = src[d];
    } else {
      for (int64_t d = 0; d < hd; ++d) dst[d * kAttentionKeys] = 0.0f;
    }
  }
}

// sc[r][0..s_pad) = q_r . k_j for the 6 rows qr[r] (unscaled, unmasked).
inline void attention_scores(const AttentionArgs& a, const float* const* qr, const float* kt,
                             float* sc) {
  const int64_t hd = a.head_size;
  for (int64_t p = 0; p < a.s_pad / kAttentionKeys; ++p) {
    const float* b = kt + p * hd * kAttentionKeys;
    MatmulVec acc[kAttentionRows][kMatmulVecs];
#pragma GCC unroll 8
    for (int r = 0; r < kAttentionRows; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < kMatmulVecs; ++v) acc[r][v] = MatmulVec{};
    for (int64_t d = 0; d < hd; ++d) {
      MatmulVec bv[kMatmulVecs];
      std::memcpy(&bv, b + d * kAttentionKeys, sizeof(bv));
#pragma GCC unroll 8
      for (int r = 0; r < kAttentionRows; ++r) {
        const float x = qr[r][d];
#pragma GCC unroll 4
        for (int v = 0; v < kMatmulVecs; ++v) acc[r][v] += x * bv[v];
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < kAttentionRows; ++r)
      std::memcpy(sc + r * a.s_pad + p * kAttentionKeys, &acc[r], sizeof(acc[r]));
  }
}

// row[j] = exp(row[j] * scale + m[j] - max) for j < seq, 0 after; returns 1 / sum.
// A row whose every value is -inf gives NaN, as PyTorch's softmax does.
inline float attention_softmax_row(const AttentionArgs& a, float* row, const float* m) {
  const int64_t n = a.seq;
  const float scale = a.scale;
  if (!m) {
    for (int64_t j = 0; j < n; ++j) row[j] *= scale;
  } else if (a.msk == 1) {
    for (int64_t j = 0; j < n; ++j) row[j] = row[j] * scale + m[j];
  } else {
    for (int64_t j = 0; j < n; ++j) row[j] = row[j] * scale + m[j * a.msk];
  }
  float mx = -INFINITY;
  for (int64_t j = 0; j < n; ++j) mx = row[j] > mx ? row[j] : mx;
  if (mx == -INFINITY) mx = 0;  // all -inf: 0 / 0 below, NaN as in PyTorch
  MatmulVec vsum{};
  int64_t j = 0;
  for (; j + kMatmulVecFloats <= n; j += kMatmulVecFloats) {
    MatmulVec x;
    std::memcpy(&x, row + j, sizeof(x));
    x = exp_f32(x - mx);
    vsum += x;
    std::memcpy(row + j, &x, sizeof(x));
  }
  float sum = 0;
  for (int i = 0; i < kMatmulVecFloats; ++i) sum += vsum[i];
  for (; j < n; ++j) {
    row[j] = exp_f32(row[j] - mx);
    sum += row[j];
  }
  for (; j < a.s_pad; ++j) row[j] = 0.0f;
  return 1.0f / sum;
}

// out_r[c0 .. c0 + 16) = inv[r] * sum_j sc[r][j] v_j[c0 ..] for r < rows (full 16-column chunk).
inline void attention_pv_chunk(const AttentionArgs& a, const float* v, const float* sc,
                               const float* inv, float* const* orow, int rows, int64_t c0) {
  MatmulVec acc[kAttentionRows][kMatmulVecs];
#pragma GCC unroll 8
  for (int r = 0; r < kAttentionRows; ++r)
#pragma GCC unroll 4
    for (int w = 0; w < kMatmulVecs; ++w) acc[r][w] = MatmulVec{};
  for (int64_t j = 0; j < a.seq; ++j) {
    MatmulVec bv[kMatmulVecs];
    std::memcpy(&bv, v + j * a.ldv + c0, sizeof(bv));
#pragma GCC unroll 8
    for (int r = 0; r < kAttentionRows; ++r) {
      const float p = sc[r * a.s_pad + j];
#pragma GCC unroll 4
      for (int w = 0; w < kMatmulVecs; ++w) acc[r][w] += p * bv[w];
    }
  }
  for (int r = 0; r < rows; ++r) {
#pragma GCC unroll 4
    for (int w = 0; w < kMatmulVecs; ++w) acc[r][w] *= inv[r];
    std::memcpy(orow[r] + c0, &acc[r], sizeof(acc[r]));
  }
}

// The same for the last head_size % 16 columns, in scalars.
inline void attention_pv_tail(const AttentionArgs& a, const float* v, const float* sc,
                              const float* inv, float* const* orow, int rows, int64_t c0) {
  const int64_t cols = a.head_size - c0;
  float acc[kAttentionRows][kAttentionKeys] = {};
  for (int64_t j = 0; j < a.seq; ++j) {
    const float* vr = v + j * a.ldv + c0;
    for (int r = 0; r < rows; ++r) {
      const float p = sc[r * a.s_pad + j];
      for (int64_t c = 0; c < cols; ++c) acc[r][c] += p * vr[c];
    }
  }
  for (int r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) orow[r][c0 + c] = acc[r][c] * inv[r];
}

// Query rows [i0, i1) of batch b, head h. kt: s_pad * hd floats, sc: 6 * s_pad floats.
inline void attention_rows(const AttentionArgs& a, int64_t b, int64_t h, int64_t i0, int64_t i1,
                           float* kt, float* sc) {
  const int64_t hd = a.head_size, s = a.seq;
  const float* q = a.q + b * s * a.ldq + h * hd;
  const float* v = a.v + b * s * a.ldv + h * hd;
  attention_pack_kt(a, a.k + b * s * a.ldk + h * hd, kt);
  for (int64_t i = i0; i < i1; i += kAttentionRows) {
    const int rows = static_cast<int>(i1 - i < kAttentionRows ? i1 - i : kAttentionRows);
    const float* qr[kAttentionRows];
    float* orow[kAttentionRows];
    for (int r = 0; r < kAttentionRows; ++r) {  // missing rows repeat the last one (not stored)
      const int64_t row = i + (r < rows ? r : rows - 1);
      qr[r] = q + row * a.ldq;
      orow[r] = a.out + (b * s + row) * a.ldo + h * hd;
    }
    attention_scores(a, qr, kt, sc);
    float inv[kAttentionRows] = {};
    for (int r = 0; r < rows; ++r) {
      const float* m = a.mask ? a.mask + b * a.msb + h * a.msh + (i + r) * a.msq : nullptr;
      inv[r] = attention_softmax_row(a, sc + r * a.s_pad, m);
    }
    int64_t c0 = 0;
    for (; c0 + kMatmulNr <= hd; c0 += kMatmulNr) attention_pv_chunk(a, v, sc, inv, orow, rows, c0);
    if (c0 < hd) attention_pv_tail(a, v, sc, inv, orow, rows, c0);
  }
}

inline int64_t gcd64(int64_t x, int64_t y) {
  while (y) {
    const int64_t t = x % y;
    x = y;
    y = t;
  }
  return x;
}

}  // namespace detail

// q, k, v: row (token) strides ldq/ldk/ldv in floats, head h at column h * head_size.
// mask: additive, may be null; mask_dims = its shape right-aligned to rank 4 (each dim 1 or the
// full size of [batch, num_heads, seq, seq]), dense. out: [batch, seq, num_heads * head_size]
// with row stride ldo. Work items = (batch, head, block of query rows); the number of row blocks
// per head makes the item count a multiple of the thread count, so B = 1 with 5 heads on 2
// threads still splits evenly.
inline void attention_f32(const kiln_backend* be, const float* q, const float* k, const float* v,
                          int64_t ldq, int64_t ldk, int64_t ldv, const float* mask,
                          const int64_t* mask_dims, float* out, int64_t ldo, int64_t batch,
                          int64_t seq, int64_t num_heads, int64_t head_size, float scale) {
  if (batch <= 0 || seq <= 0 || num_heads <= 0 || head_size <= 0) return;
  detail::AttentionArgs a{q, k, v,   ldq, ldk, ldv,       mask,      0, 0,
                          0, 0, out, ldo, seq, num_heads, head_size, 0, scale};
  a.s_pad = (seq + kAttentionKeys - 1) / kAttentionKeys * kAttentionKeys;
  if (mask) {
    int64_t st[4];
    dense_strides(mask_dims, 4, st);
    a.msb = mask_dims[0] == 1 ? 0 : st[0];
    a.msh = mask_dims[1] == 1 ? 0 : st[1];
    a.msq = mask_dims[2] == 1 ? 0 : st[2];
    a.msk = mask_dims[3] == 1 ? 0 : st[3];
  }
  const int64_t heads = batch * num_heads;
  const int64_t threads = be && be->num_threads > 1 ? be->num_threads : 1;
  int64_t blocks = threads / detail::gcd64(heads, threads);
  if (blocks > seq) blocks = seq;
  const int64_t rows_per_block = (seq + blocks - 1) / blocks;
  const int64_t items = heads * blocks;
  const double flops = 4.0 * static_cast<double>(heads) * seq * seq * head_size;
  const int64_t grain = flops < (1 << 18) ? items : 1;
  const size_t scratch = static_cast<size_t>(a.s_pad * (head_size + kAttentionRows));
  parallel_for(be, items, grain, [&](int64_t t0, int64_t t1) {
    float* kt = static_cast<float*>(__builtin_alloca(scratch * sizeof(float) + 64));
    kt = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(kt) + 63) & ~uintptr_t{63});
    float* sc = kt + a.s_pad * head_size;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t bh = t / blocks, blk = t % blocks;
      const int64_t i0 = blk * rows_per_block;
      const int64_t i1 = i0 + rows_per_block < seq ? i0 + rows_per_block : seq;
      if (i0 < i1) detail::attention_rows(a, bh / num_heads, bh % num_heads, i0, i1, kt, sc);
    }
  });
}

}  // namespace kiln::kernels
