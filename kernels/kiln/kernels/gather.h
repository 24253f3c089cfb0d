// ONNX Gather with index validation: a bad token id is the most likely user error at run time,
// so the message names the node, the index tensor, the bad value and the valid range.
#pragma once

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "kiln/kernels/common.h"
#include "kiln/kernels/parallel.h"

namespace kiln::kernels {

// data viewed as [outer, axis_dim, inner]; out = [outer, n, inner]. Returns 0, or 1 after writing
// the message to err. With allow_negative == false a negative index is an error (used for
// embedding tables, where a negative token id is a user bug even though ONNX would wrap it).
template <class T, class I>
int gather(const T* data, int64_t outer, int64_t axis_dim, int64_t inner, const I* idx, int64_t n,
           T* out, bool allow_negative, const char* node, const char* idx_name, char* err,
           size_t err_size, const kiln_backend* be) {
  const int64_t lo = allow_negative ? -axis_dim : 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t v = static_cast<int64_t>(idx[i]);
    if (v < lo || v >= axis_dim) {
      if (err && err_size)
        std::snprintf(err, err_size,
                      "node '%s': index %" PRId64 " in '%s' is out of range [%" PRId64 ", %" PRId64
                      ")",
                      node, v, idx_name, lo, axis_dim);
      return 1;
    }
  }
  const size_t row_bytes = static_cast<size_t>(inner) * sizeof(T);
  parallel_for(be, outer * n, grain_rows(inner), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t o = r / n, i = r % n;
      int64_t v = static_cast<int64_t>(idx[i]);
      if (v < 0) v += axis_dim;
      std::memcpy(out + r * inner, data + (o * axis_dim + v) * inner, row_bytes);
    }
  });
  return 0;
}

}  // namespace kiln::kernels
