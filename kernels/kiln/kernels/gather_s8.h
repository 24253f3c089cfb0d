// Embedding lookup from an int8 table (INT8 quantization, docs/architecture.md): rows stored as
// int8 with one symmetric float scale per row, dequantized on gather. A BERT word-embedding table
// (30522 x 768) shrinks from 94 MB to 23.5 MB; per-row scales keep a rare token's small row from
// being flattened by the table's largest value.
//
// Blob (one uint8 params entry, embedding_s8_bytes(V, H) bytes):
//   [rows]    V * H int8, row v at v * H, q = clamp(rne(x / scale[v]), -127, 127)
//   [pad]     zero up to a multiple of 64 bytes
//   [scales]  V floats, scale[v] = max_h |x[v, h]| / 127 (1 for an all-zero row)
#pragma once

#include <cinttypes>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "kiln/kernels/common.h"
#include "kiln/kernels/parallel.h"

namespace kiln::kernels {

inline size_t embedding_s8_rows_bytes(int64_t V, int64_t H) {
  return (static_cast<size_t>(V * H) + 63) / 64 * 64;
}

inline size_t embedding_s8_bytes(int64_t V, int64_t H) {
  return embedding_s8_rows_bytes(V, H) + static_cast<size_t>(V) * sizeof(float);
}

// Compiler side: quantizes table[V, H] into blob (embedding_s8_bytes(V, H) bytes).
inline void quantize_embedding_s8(const float* table, int64_t V, int64_t H, void* blob) {
  uint8_t* base = static_cast<uint8_t*>(blob);
  std::memset(base, 0, embedding_s8_bytes(V, H));
  int8_t* q = reinterpret_cast<int8_t*>(base);
  float* scale = reinterpret_cast<float*>(base + embedding_s8_rows_bytes(V, H));
  for (int64_t v = 0; v < V; ++v) {
    const float* x = table + v * H;
    float absmax = 0.0f;
    for (int64_t h = 0; h < H; ++h) absmax = std::fmax(absmax, std::fabs(x[h]));
    const float s = absmax > 0.0f ? absmax / 127.0f : 1.0f;
    scale[v] = s;
    for (int64_t h = 0; h < H; ++h) {
      const float r = std::nearbyint(x[h] / s);  // round half to even (default rounding mode)
      q[v * H + h] = static_cast<int8_t>(std::fmin(127.0f, std::fmax(-127.0f, r)));
    }
  }
}

// out[i, :] = scale[idx[i]] * q[idx[i], :] for i < n. An index outside [0, V) (negative included:
// a negative token id is a user bug) writes a message naming the node, the index tensor, the value
// and the range to err and returns 1; otherwise 0.
template <class I>
int gather_s8(const void* blob, int64_t V, int64_t H, const I* idx, int64_t n, float* out,
              const char* node, const char* idx_name, char* err, size_t err_size,
              const kiln_backend* be) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t v = static_cast<int64_t>(idx[i]);
    if (v < 0 || v >= V) {
      if (err && err_size)
        std::snprintf(err, err_size,
                      "node '%s': index %" PRId64 " in '%s' is out of range [0, %" PRId64 ")", node,
                      v, idx_name, V);
      return 1;
    }
  }
  const int8_t* q = static_cast<const int8_t*>(blob);
  const float* scale = reinterpret_cast<const float*>(static_cast<const uint8_t*>(blob) +
                                                      embedding_s8_rows_bytes(V, H));
  parallel_for(be, n, grain_rows(H), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t v = static_cast<int64_t>(idx[r]);
      const int8_t* src = q + v * H;
      const float s = scale[v];
      float* dst = out + r * H;
      for (int64_t h = 0; h < H; ++h) dst[h] = s * static_cast<float>(src[h]);
    }
  });
  return 0;
}

}  // namespace kiln::kernels
