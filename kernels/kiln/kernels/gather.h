// ONNX Gather, GatherElements and GatherND with index validation: a bad token id is the most likely
// user error at run time, so the message names the node, the index tensor, the bad value and the
// valid range.
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

namespace detail {
// Writes "node '<node>': index <v> in '<idx>' is out of range [lo, hi)" and returns 1.
inline int index_error(int64_t v, int64_t lo, int64_t hi, const char* node, const char* idx_name,
                       char* err, size_t err_size) {
  if (err && err_size)
    std::snprintf(err, err_size,
                  "node '%s': index %" PRId64 " in '%s' is out of range [%" PRId64 ", %" PRId64 ")",
                  node, v, idx_name, lo, hi);
  return 1;
}
}  // namespace detail

// ONNX GatherElements: out (idx's dims id, rank) [.., i_axis, ..] = data [.., idx[..], ..].
// RoBERTa-style position ids and pooling gather a handful of rows: plain loops.
template <class T, class I>
int gather_elements(const T* data, const int64_t* dd, const I* idx, const int64_t* id, int rank,
                    int axis, T* out, const char* node, const char* idx_name, char* err,
                    size_t err_size, const kiln_backend*) {
  int64_t ds[kMaxRank];
  dense_strides(dd, rank, ds);
  const int64_t n = product(id, 0, rank);
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i, off = 0;
    for (int k = rank - 1; k >= 0; --k) {
      const int64_t c = rem % id[k];
      rem /= id[k];
      if (k != axis) off += c * ds[k];
    }
    int64_t v = static_cast<int64_t>(idx[i]);
    if (v < -dd[axis] || v >= dd[axis])
      return detail::index_error(v, -dd[axis], dd[axis], node, idx_name, err, err_size);
    if (v < 0) v += dd[axis];
    out[i] = data[off + v * ds[axis]];
  }
  return 0;
}

// ONNX GatherND: idx is [batch..., rows..., k] (the first batch_dims dims shared with data);
// each k-tuple picks a slab of `slab` elements of data (dims dd, rank) within its batch item.
template <class T, class I>
int gather_nd(const T* data, const int64_t* dd, int rank, int batch_dims, const I* idx,
              int64_t batch, int64_t rows_per_batch, int64_t k, T* out, const char* node,
              const char* idx_name, char* err, size_t err_size, const kiln_backend*) {
  int64_t ds[kMaxRank];
  dense_strides(dd, rank, ds);
  const int64_t slab = product(dd, batch_dims + static_cast<int>(k), rank);
  const int64_t batch_stride = batch_dims > 0 ? ds[batch_dims - 1] : 0;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t r = 0; r < rows_per_batch; ++r) {
      const I* t = idx + (b * rows_per_batch + r) * k;
      int64_t off = b * batch_stride;
      for (int64_t j = 0; j < k; ++j) {
        const int64_t d = dd[batch_dims + j];
        int64_t v = static_cast<int64_t>(t[j]);
        if (v < -d || v >= d) return detail::index_error(v, -d, d, node, idx_name, err, err_size);
        off += (v < 0 ? v + d : v) * ds[batch_dims + j];
      }
      std::memcpy(out + (b * rows_per_batch + r) * slab, data + off,
                  static_cast<size_t>(slab) * sizeof(T));
    }
  return 0;
}

}  // namespace kiln::kernels
