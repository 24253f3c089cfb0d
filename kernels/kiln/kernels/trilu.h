// ONNX Trilu: the upper or lower triangle of each matrix of the last two dims, the rest zero.
// transformers builds causal and sliding-window masks with it (torch.triu / tril); when the mask
// depends on the run-time seq it runs once per call, a row at a time.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kiln/kernels/common.h"
#include "kiln/kernels/parallel.h"

namespace kiln::kernels {

// y[b, i, j] = x[b, i, j] where j - i >= k (upper) or j - i <= k (lower), else 0; x and y are
// [batch, rows, cols].
template <class T>
void trilu(const T* x, T* y, int64_t batch, int64_t rows, int64_t cols, int64_t k, bool upper,
           const kiln_backend* be) {
  parallel_for(be, batch * rows, grain_rows(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t i = r % rows;
      // Row i keeps columns [first, last): [i + k, cols) upper, [0, i + k + 1) lower; the
      // clamps keep k far outside the matrix (any int64) from overflowing.
      const int64_t kc = std::clamp<int64_t>(k, -rows - 1, cols + 1);
      const int64_t first = upper ? std::clamp<int64_t>(i + kc, 0, cols) : 0;
      const int64_t last = upper ? cols : std::clamp<int64_t>(i + kc + 1, 0, cols);
      const T* xr = x + r * cols;
      T* yr = y + r * cols;
      for (int64_t j = 0; j < first; ++j) yr[j] = T(0);
      if (last > first)
        std::memcpy(yr + first, xr + first, static_cast<size_t>(last - first) * sizeof(T));
      for (int64_t j = std::max(first, last); j < cols; ++j) yr[j] = T(0);
    }
  });
}

}  // namespace kiln::kernels
