// Softmax, LayerNormalization and ReduceMean (f32).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kiln/kernels/common.h"
#include "kiln/kernels/parallel.h"

namespace kiln::kernels {

// Softmax over the middle dim of [outer, n, inner].
inline void softmax_f32(const float* x, float* y, int64_t outer, int64_t n, int64_t inner,
                        const kiln_backend* be) {
  parallel_for(be, outer * inner, grain_rows(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t o = r / inner, in = r % inner;
      const float* xr = x + o * n * inner + in;
      float* yr = y + o * n * inner + in;
      float mx = -INFINITY;
      for (int64_t i = 0; i < n; ++i) mx = std::max(mx, xr[i * inner]);
      if (mx == -INFINITY) mx = 0;  // all -inf: exp gives 0/0 = nan, as PyTorch
      float sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        const float e = std::exp(xr[i * inner] - mx);
        yr[i * inner] = e;
        sum += e;
      }
      const float inv = 1.0f / sum;
      for (int64_t i = 0; i < n; ++i) yr[i * inner] *= inv;
    }
  });
}

// LayerNormalization over the last `n` elements of each of `rows` rows:
// y = (x - mean) / sqrt(var + eps) * scale + bias. Two passes in float (mean, then the sum of
// squared deviations) instead of E[x^2] - E[x]^2, which cancels badly for large means.
// scale / bias may be null; otherwise they have n elements.
inline void layernorm_f32(const float* x, const float* scale, const float* bias, float* y,
                          int64_t rows, int64_t n, float eps, const kiln_backend* be) {
  parallel_for(be, rows, grain_rows(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* __restrict xr = x + r * n;
      float* __restrict yr = y + r * n;
      float sum = 0;
      for (int64_t i = 0; i < n; ++i) sum += xr[i];
      const float mean = sum / static_cast<float>(n);
      float sq = 0;
      for (int64_t i = 0; i < n; ++i) {
        const float d = xr[i] - mean;
        sq += d * d;
      }
      const float rstd = 1.0f / std::sqrt(sq / static_cast<float>(n) + eps);
      for (int64_t i = 0; i < n; ++i) {
        float v = (xr[i] - mean) * rstd;
        if (scale) v *= scale[i];
        if (bias) v += bias[i];
        yr[i] = v;
      }
    }
  });
}

// ReduceMean of x (dims xd, rank) over the axes with reduce[axis] != 0. The output is dense over
// the kept axes (keepdims only changes the shape, not the layout). Accumulates in double.
inline void reduce_mean_f32(const float* x, const int64_t* xd, int rank, const uint8_t* reduce,
                            float* y, const kiln_backend* be) {
  int64_t dense[kMaxRank];
  dense_strides(xd, rank, dense);
  int64_t kd[kMaxRank], ks[kMaxRank], rd[kMaxRank], rs[kMaxRank];
  int nk = 0, nr = 0;
  for (int i = 0; i < rank; ++i) {
    if (reduce[i]) {
      rd[nr] = xd[i];
      rs[nr++] = dense[i];
    } else {
      kd[nk] = xd[i];
      ks[nk++] = dense[i];
    }
  }
  const int64_t kept = product(kd, 0, nk), count = product(rd, 0, nr);
  parallel_for(be, kept, grain_rows(count), [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      int64_t base = 0, idx = o;
      for (int i = nk - 1; i >= 0; --i) {
        base += (idx % kd[i]) * ks[i];
        idx /= kd[i];
      }
      double sum = 0;
      if (nr == 1 && rs[0] == 1) {
        for (int64_t j = 0; j < count; ++j) sum += x[base + j];
      } else {
        for (int64_t j = 0; j < count; ++j) {
          int64_t off = base, q = j;
          for (int i = nr - 1; i >= 0; --i) {
            off += (q % rd[i]) * rs[i];
            q /= rd[i];
          }
          sum += x[off];
        }
      }
      y[o] = static_cast<float>(count ? sum / static_cast<double>(count) : NAN);
    }
  });
}

}  // namespace kiln::kernels
