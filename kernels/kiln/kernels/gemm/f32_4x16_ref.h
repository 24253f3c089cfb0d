// gemm_f32_4x16_ref: the reference FP32 GEMM micro-kernel in plain C++ (any CPU). Same contract
// as the SIMD kernels (types.h TileArgs), so the driver, packing and edge handling are shared and
// the reference checks them too. Up to 4 rows x 16 columns (one panel).
#pragma once

#include "kiln/kernels/gemm/gelu.h"
#include "kiln/kernels/gemm/types.h"

namespace kiln::kernels::gemm::f32_4x16_ref {

constexpr int kMr = 4;
constexpr int kPanels = 1;

// The epilogue (types.h) on one element: x (+ *bias) (gelu) (+ *residual); null = skip. Also the
// INT8 reference kernel's epilogue (s8_4x16c4_ref.h).
inline float epilogue_scalar(float x, const float* bias, bool gelu, const float* residual) {
  if (bias) x += *bias;
  if (gelu) x = gelu_f32(x);
  if (residual) x += *residual;
  return x;
}

template <int R, int P>
void tile(const TileArgs& t) {
  constexpr int kCols = kNr * P;
  float acc[R][kCols];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < kCols; ++j) acc[r][j] = t.accumulate ? t.c[r * t.ldc + j] : 0.0f;
  for (int64_t k = 0; k < t.k; ++k) {
    const float* b = t.b + k * kNr;
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < kCols; ++j)
        acc[r][j] += t.a[r * t.lda + k] * b[(j / kNr) * t.b_panel_stride + j % kNr];
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < kCols; ++j) {
      t.c[r * t.ldc + j] = t.last
                               ? epilogue_scalar(acc[r][j], t.bias ? t.bias + j : nullptr, t.gelu,
                                                 t.residual ? t.residual + r * t.ldr + j : nullptr)
                               : acc[r][j];
    }
}

struct Kernel {
  static constexpr int kMaxRows = kMr;
  static constexpr int kMaxPanels = kPanels;
  template <int Rows, int Panels>
  static constexpr TileFn kTile = &tile<Rows, Panels>;
};

}  // namespace kiln::kernels::gemm::f32_4x16_ref
