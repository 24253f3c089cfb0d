// ONNX ScatterND: a copy of data with slabs replaced (or combined) at index tuples. The dynamo
// exporter writes it for in-place index assignment (x[..., idx] = v) in mask and position code.
// Indices are checked like gather.h's before anything is written: a bad index is an error naming
// the node, the index tensor, the value and the valid range, never a write out of bounds.
#pragma once

#include <cstdint>
#include <cstring>

#include "kiln/kernels/common.h"
#include "kiln/kernels/gather.h"

namespace kiln::kernels {

enum class ScatterReduction : int { kNone, kAdd, kMul, kMax, kMin };

// data and out have dims dd (rank); idx holds `tuples` k-tuples indexing data's first k dims
// (negative: from the end); updates holds one slab (data's dims after k) per tuple, applied in
// tuple order (so with kNone the last of duplicate indices wins, as in the ONNX reference).
// Returns 0, or 1 after writing the message to err.
template <class T, class I>
int scatter_nd(const T* data, const int64_t* dd, int rank, const I* idx, int64_t tuples, int64_t k,
               const T* updates, ScatterReduction red, T* out, const char* node,
               const char* idx_name, char* err, size_t err_size, const kiln_backend*) {
  int64_t ds[kMaxRank];
  dense_strides(dd, rank, ds);
  for (int64_t t = 0; t < tuples * k; ++t) {
    const int64_t d = dd[t % k], v = static_cast<int64_t>(idx[t]);
    if (v < -d || v >= d) return detail::index_error(v, -d, d, node, idx_name, err, err_size);
  }
  if (out != data) std::memcpy(out, data, static_cast<size_t>(product(dd, 0, rank)) * sizeof(T));
  const int64_t slab = product(dd, static_cast<int>(k), rank);
  for (int64_t t = 0; t < tuples; ++t) {
    int64_t off = 0;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t v = static_cast<int64_t>(idx[t * k + j]);
      off += (v < 0 ? v + dd[j] : v) * ds[j];
    }
    T* o = out + off;
    const T* u = updates + t * slab;
    switch (red) {
      case ScatterReduction::kNone:
        std::memcpy(o, u, static_cast<size_t>(slab) * sizeof(T));
        break;
      case ScatterReduction::kAdd:
        for (int64_t e = 0; e < slab; ++e) o[e] += u[e];
        break;
      case ScatterReduction::kMul:
        for (int64_t e = 0; e < slab; ++e) o[e] *= u[e];
        break;
      case ScatterReduction::kMax:  // NaN wins, as numpy.maximum
        for (int64_t e = 0; e < slab; ++e)
          if (!(o[e] != o[e] || o[e] >= u[e])) o[e] = u[e];
        break;
      case ScatterReduction::kMin:
        for (int64_t e = 0; e < slab; ++e)
          if (!(o[e] != o[e] || o[e] <= u[e])) o[e] = u[e];
        break;
    }
  }
  return 0;
}

}  // namespace kiln::kernels
