// ONNX Slice and Concat.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kiln/kernels/common.h"
#include "kiln/kernels/elementwise.h"

namespace kiln::kernels {

// ONNX Slice semantics for one axis of size `dim`: clamps start/end (negative = from the end)
// and returns the first index and the element count.
inline void slice_axis(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t* first,
                       int64_t* count) {
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
    *count = end > start ? (end - start + step - 1) / step : 0;
  } else {
    start = std::clamp<int64_t>(start, 0, dim - 1);
    end = std::clamp<int64_t>(end, -1, dim - 1);
    *count = start > end ? (start - end - step - 1) / (-step) : 0;
  }
  *first = start;
}

// out = in[first[i] :: step[i]] per axis, out dims od (counts).
template <class T>
void slice(const T* in, const int64_t* id, int rank, const int64_t* first, const int64_t* step,
           T* out, const int64_t* od, const kiln_backend* be) {
  int64_t dense[kMaxRank], is[kMaxRank];
  dense_strides(id, rank, dense);
  int64_t base = 0;
  for (int i = 0; i < rank; ++i) {
    base += first[i] * dense[i];
    is[i] = dense[i] * step[i];
  }
  strided_copy(in + base, is, out, od, rank, be);
}

// ONNX Concat of n inputs along an axis: outer = prod(dims before axis), chunk[k] =
// dim_k(axis) * prod(dims after axis) elements per outer index for input k.
template <class T>
void concat(const T* const* ins, const int64_t* chunk, int n, int64_t outer, T* out,
            const kiln_backend* be) {
  int64_t row = 0;
  for (int k = 0; k < n; ++k) row += chunk[k];
  parallel_for(be, outer, grain_rows(row), [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      T* dst = out + o * row;
      for (int k = 0; k < n; ++k) {
        std::memcpy(dst, ins[k] + o * chunk[k], static_cast<size_t>(chunk[k]) * sizeof(T));
        dst += chunk[k];
      }
    }
  });
}

}  // namespace kiln::kernels
