// Softmax and LayerNormalization (f32); the reductions are in reduce.h.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kiln/kernels/attention.h"  // exp_f32
#include "kiln/kernels/common.h"
#include "kiln/kernels/parallel.h"

namespace kiln::kernels {

static_assert(sizeof(VecF) == sizeof(MatmulVec), "exp_f32 is overloaded for MatmulVec");

// Softmax of one contiguous row in place of y (y may alias x): max, exp(x - max) (attention.h's
// vector exp, relative error < 2e-7) with the sum, then the scale. Four accumulators per pass
// break the add/max dependency chains.
inline void softmax_row_f32(const float* x, float* y, int64_t n) {
  constexpr int64_t W = kVecFloats;
  int64_t i = 0;
  float mx = -INFINITY;
  if (n >= W) {
    VecF m0 = load_vec(x), m1 = m0, m2 = m0, m3 = m0;
    for (; i + 4 * W <= n; i += 4 * W) {
      const VecF a = load_vec(x + i), b = load_vec(x + i + W), c = load_vec(x + i + 2 * W),
                 d = load_vec(x + i + 3 * W);
      m0 = a > m0 ? a : m0;
      m1 = b > m1 ? b : m1;
      m2 = c > m2 ? c : m2;
      m3 = d > m3 ? d : m3;
    }
    for (; i + W <= n; i += W) {
      const VecF a = load_vec(x + i);
      m0 = a > m0 ? a : m0;
    }
    m0 = m1 > m0 ? m1 : m0;
    m2 = m3 > m2 ? m3 : m2;
    m0 = m2 > m0 ? m2 : m0;
    for (int l = 0; l < W; ++l) mx = std::max(mx, m0[l]);
  }
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  if (mx == -INFINITY) mx = 0;  // all -inf: exp gives 0/0 = nan, as PyTorch
  VecF s0{}, s1{};
  i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    const VecF a = exp_f32(load_vec(x + i) - mx), b = exp_f32(load_vec(x + i + W) - mx);
    store_vec(y + i, a);
    store_vec(y + i + W, b);
    s0 += a;
    s1 += b;
  }
  for (; i + W <= n; i += W) {
    const VecF a = exp_f32(load_vec(x + i) - mx);
    store_vec(y + i, a);
    s0 += a;
  }
  float sum = reduce_add(s0 + s1);
  for (; i < n; ++i) {
    y[i] = exp_f32(x[i] - mx);
    sum += y[i];
  }
  const float inv = 1.0f / sum;
  i = 0;
  for (; i + W <= n; i += W) store_vec(y + i, load_vec(y + i) * inv);
  for (; i < n; ++i) y[i] *= inv;
}

// Softmax over the middle dim of [outer, n, inner]. inner == 1 (the last axis, as every exporter
// emits) takes the vector row kernel; other axes walk strided rows in scalar code.
inline void softmax_f32(const float* x, float* y, int64_t outer, int64_t n, int64_t inner,
                        const kiln_backend* be) {
  if (inner == 1) {
    parallel_for(be, outer, grain_rows(n), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) softmax_row_f32(x + r * n, y + r * n, n);
    });
    return;
  }
  parallel_for(be, outer * inner, grain_rows(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t o = r / inner, in = r % inner;
      const float* xr = x + o * n * inner + in;
      float* yr = y + o * n * inner + in;
      float mx = -INFINITY;
      for (int64_t i = 0; i < n; ++i) mx = std::max(mx, xr[i * inner]);
      if (mx == -INFINITY) mx = 0;
      float sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        const float e = exp_f32(xr[i * inner] - mx);
        yr[i * inner] = e;
        sum += e;
      }
      const float inv = 1.0f / sum;
      for (int64_t i = 0; i < n; ++i) yr[i * inner] *= inv;
    }
  });
}

namespace detail {
// Sum over i < n of f(x[i]) for f = identity (kSquares = false) or (x[i] - c)^2, with four vector
// accumulators: float adds are not reassociated without -ffast-math, so one accumulator would
// serialise the loop on the add latency.
template <bool kSquares>
inline float row_sum(const float* x, int64_t n, float c) {
  constexpr int64_t W = kVecFloats;
  auto f = [c](VecF v) {
    if (kSquares) {
      v -= c;
      return v * v;
    }
    return v;
  };
  VecF s0{}, s1{}, s2{}, s3{};
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    s0 += f(load_vec(x + i));
    s1 += f(load_vec(x + i + W));
    s2 += f(load_vec(x + i + 2 * W));
    s3 += f(load_vec(x + i + 3 * W));
  }
  for (; i + W <= n; i += W) s0 += f(load_vec(x + i));
  float s = reduce_add((s0 + s1) + (s2 + s3));
  for (; i < n; ++i) {
    const float v = kSquares ? x[i] - c : x[i];
    s += kSquares ? v * v : v;
  }
  return s;
}

// y = (x - mean) * rstd (* scale) (+ bias); the null checks are template arguments, out of the
// loop.
template <bool kScale, bool kBias>
inline void layernorm_apply(const float* x, const float* scale, const float* bias, float* y,
                            int64_t n, float mean, float rstd) {
  constexpr int64_t W = kVecFloats;
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    VecF v = (load_vec(x + i) - mean) * rstd;
    if (kScale) v *= load_vec(scale + i);
    if (kBias) v += load_vec(bias + i);
    store_vec(y + i, v);
  }
  for (; i < n; ++i) {
    float v = (x[i] - mean) * rstd;
    if (kScale) v *= scale[i];
    if (kBias) v += bias[i];
    y[i] = v;
  }
}
}  // namespace detail

// LayerNormalization of one row of n floats: y = (x - mean) / sqrt(var + eps) * scale + bias.
// Two passes in float (mean, then the sum of squared deviations) instead of E[x^2] - E[x]^2,
// which cancels badly for large means. scale / bias may be null; otherwise they have n
// elements. y may alias x.
inline void layernorm_row_f32(const float* x, const float* scale, const float* bias, float* y,
                              int64_t n, float eps) {
  const float mean = detail::row_sum<false>(x, n, 0.0f) / static_cast<float>(n);
  const float sq = detail::row_sum<true>(x, n, mean);
  const float rstd = 1.0f / std::sqrt(sq / static_cast<float>(n) + eps);
  if (scale && bias)
    detail::layernorm_apply<true, true>(x, scale, bias, y, n, mean, rstd);
  else if (scale)
    detail::layernorm_apply<true, false>(x, scale, bias, y, n, mean, rstd);
  else if (bias)
    detail::layernorm_apply<false, true>(x, scale, bias, y, n, mean, rstd);
  else
    detail::layernorm_apply<false, false>(x, scale, bias, y, n, mean, rstd);
}

// LayerNormalization over the last `n` elements of each of `rows` rows (layernorm_row_f32 per
// row, rows split across threads).
inline void layernorm_f32(const float* x, const float* scale, const float* bias, float* y,
                          int64_t rows, int64_t n, float eps, const kiln_backend* be) {
  parallel_for(be, rows, grain_rows(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) layernorm_row_f32(x + r * n, scale, bias, y + r * n, n, eps);
  });
}

}  // namespace kiln::kernels
