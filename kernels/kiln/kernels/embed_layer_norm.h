// EmbeddingLayerNorm (passes/fuse_embed_layer_norm.cpp): per output row, the sum of one row of
// each embedding table (word, token type, position), then LayerNorm, in one pass over the row
// while it is in L1, instead of three gathers and two Adds writing [rows, H] tensors each.
// Tables are float32 [V, H] or gather_s8.h's int8 blob (per-row scale, dequantized on the fly).
// Token ids are checked first, with gather.h's message, so a bad id never reads out of bounds.
#pragma once

#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <cstdio>

#include "kiln/kernels/common.h"
#include "kiln/kernels/gather_s8.h"
#include "kiln/kernels/normalization.h"
#include "kiln/kernels/parallel.h"

namespace kiln::kernels {

// One table of the sum. Row of output row r (r = 0 .. rows-1, position s = r % period):
//   ids set, period 0:  ids[r]          (ids have the output's leading shape)
//   ids set, period P:  ids[r % P]      (ids broadcast over the leading axes, e.g. [1, S])
//   ids null:           first + step * (r % P)   (the exporter's position_ids buffer slice)
struct EmbeddingTerm {
  const float* table;    // [rows_in_table, H] float32, or null when table_s8 is set
  const void* table_s8;  // gather_s8.h blob, or null
  int64_t table_rows;
  const void* ids;  // int64 or int32 (ids_int32), or null
  bool ids_int32;
  int64_t period;
  int64_t first, step;
  const char* ids_name;  // for the error message
};

namespace detail {

inline int64_t embedding_row(const EmbeddingTerm& t, int64_t r) {
  if (!t.ids) return t.first + t.step * (r % t.period);
  const int64_t i = t.period ? r % t.period : r;
  return t.ids_int32 ? static_cast<const int32_t*>(t.ids)[i]
                     : static_cast<const int64_t*>(t.ids)[i];
}

// out[h] (=|+=) the row of table t, for output row r (row index already checked).
inline void add_embedding_row(const EmbeddingTerm& t, int64_t v, int64_t H, bool first,
                              float* __restrict out) {
  if (t.table_s8) {
    const int8_t* q = static_cast<const int8_t*>(t.table_s8) + v * H;
    const float s = reinterpret_cast<const float*>(static_cast<const uint8_t*>(t.table_s8) +
                                                   embedding_s8_rows_bytes(t.table_rows, H))[v];
    if (first)
      for (int64_t h = 0; h < H; ++h) out[h] = s * static_cast<float>(q[h]);
    else
      for (int64_t h = 0; h < H; ++h) out[h] += s * static_cast<float>(q[h]);
    return;
  }
  const float* __restrict e = t.table + v * H;
  if (first)
    for (int64_t h = 0; h < H; ++h) out[h] = e[h];
  else
    for (int64_t h = 0; h < H; ++h) out[h] += e[h];
}

}  // namespace detail

// out[r, :] = LayerNorm(sum_t table_t[row_t(r), :]) * scale + bias for r < rows, tables summed
// in order (as the exporter's Adds). scale / bias may be null. Returns 0, or 1 after writing
// "node '<node>': index <v> in '<ids_name>' is out of range [0, V)" to err.
inline int embedding_layer_norm_f32(const EmbeddingTerm* terms, int count, int64_t rows, int64_t H,
                                    const float* scale, const float* bias, float eps, float* out,
                                    const char* node, char* err, size_t err_size,
                                    const kiln_backend* be) {
  for (int t = 0; t < count; ++t) {
    const EmbeddingTerm& term = terms[t];
    // Affine rows are extreme at the first and last position; ids are checked one by one.
    const int64_t checks =
        term.ids ? (term.period ? std::min(term.period, rows) : rows) : std::min<int64_t>(rows, 2);
    for (int64_t i = 0; i < checks; ++i) {
      const int64_t r = term.ids || i == 0 ? i : std::min(rows, term.period) - 1;
      const int64_t v = detail::embedding_row(term, r);
      if (v < 0 || v >= term.table_rows) {
        if (err && err_size)
          std::snprintf(err, err_size,
                        "node '%s': index %" PRId64 " in '%s' is out of range [0, %" PRId64 ")",
                        node, v, term.ids_name, term.table_rows);
        return 1;
      }
    }
  }
  parallel_for(be, rows, grain_rows(H * (count + 2)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* y = out + r * H;
      for (int t = 0; t < count; ++t)
        detail::add_embedding_row(terms[t], detail::embedding_row(terms[t], r), H, t == 0, y);
      layernorm_row_f32(y, scale, bias, y, H, eps);
    }
  });
  return 0;
}

}  // namespace kiln::kernels
