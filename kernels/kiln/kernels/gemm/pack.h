// Packs a constant FP32 weight B (K x N, or N x K when transposed like ONNX Gemm transB=1) into
// the layout every GEMM micro-kernel streams. Runs in the compiler on the host: plain C++.
//
// Layout: ceil(N/16) column panels, one after the other. Panel p holds columns 16p..16p+15 as K
// rows of 16 contiguous floats (k-major); columns past N are zero. A panel is K*64 bytes, so with
// a 64-byte aligned base every row of every panel is 64-byte aligned (one AVX-512 load, one cache
// line). K blocking needs no change of layout: rows k0..k1 of a panel are contiguous.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kiln/kernels/gemm/types.h"

namespace kiln::kernels::gemm {

inline int64_t packed_b_panels(int64_t N) {
  return (N + kNr - 1) / kNr;
}

inline size_t packed_b_floats(int64_t K, int64_t N) {
  return static_cast<size_t>(packed_b_panels(N) * K * kNr);
}

// B(k, n) = b_is_transposed ? B[n*K + k] : B[k*N + n].
inline void pack_b_f32(const float* B, int64_t K, int64_t N, bool b_is_transposed, float* packed) {
  const int64_t panels = packed_b_panels(N);
  for (int64_t p = 0; p < panels; ++p) {
    float* dst = packed + p * K * kNr;
    const int64_t n0 = p * kNr, cols = N - n0 < kNr ? N - n0 : kNr;
    for (int64_t k = 0; k < K; ++k) {
      float* row = dst + k * kNr;
      for (int64_t j = 0; j < cols; ++j)
        row[j] = b_is_transposed ? B[(n0 + j) * K + k] : B[k * N + n0 + j];
      for (int64_t j = cols; j < kNr; ++j) row[j] = 0.0f;
    }
  }
}

}  // namespace kiln::kernels::gemm
