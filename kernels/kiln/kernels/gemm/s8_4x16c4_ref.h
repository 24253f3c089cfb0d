// gemm_s8_4x16c4_ref: the reference INT8 GEMM micro-kernel in plain C++ (any CPU), activations
// stored as s8. Same contract as the SIMD kernels (s8_types.h S8TileArgs), so the driver,
// packing, quantization and edge handling are shared and checked by it too. Up to 4 rows x 16
// columns (one panel).
#pragma once

#include <algorithm>

#include "kiln/kernels/gemm/f32_4x16_ref.h"
#include "kiln/kernels/gemm/s8_types.h"

namespace kiln::kernels::gemm::s8_4x16c4_ref {

constexpr int kMr = 4;
constexpr int kPanels = 1;
constexpr ActFormat kActFormat = ActFormat::kS8;

template <int R, int P>
void tile(const S8TileArgs& t) {
  const int8_t* a = static_cast<const int8_t*>(t.a);
  const int64_t K = 4 * t.groups, span = t.group_steps ? 4 * t.group_steps : K;
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < kNr * P; ++j) {
      const int8_t* b = t.b + (j / kNr) * t.b_panel_stride + (j % kNr) * 4;
      // Sums of int32 per weight group (all of K per channel), as the SIMD kernels add them.
      float grouped = 0.0f;
      int32_t acc = 0;
      for (int64_t k0 = 0; k0 < K; k0 += span) {
        acc = 0;
        for (int64_t k = k0; k < std::min(K, k0 + span); ++k)
          acc += a[((k / 4) * R + r) * 4 + k % 4] * b[(k / 4) * 64 + k % 4];
        if (t.group_steps)
          grouped += static_cast<float>(acc) * t.w_scale[(k0 / span) * t.w_scale_stride + j];
      }
      const float y =
          t.group_steps
              ? t.a_scale[r] * (grouped - static_cast<float>(t.a_zp[r]) * t.w_zsum[j])
              : static_cast<float>(acc - t.a_zp[r] * t.colsum[j]) * (t.a_scale[r] * t.w_scale[j]);
      t.c[r * t.ldc + j] =
          f32_4x16_ref::epilogue_scalar(y, t.bias ? t.bias + j : nullptr, t.gelu,
                                        t.residual ? t.residual + r * t.ldr + j : nullptr);
    }
}

struct Kernel {
  static constexpr int kMaxRows = kMr;
  static constexpr int kMaxPanels = kPanels;
  template <int Rows, int Panels>
  static constexpr S8TileFn kTile = &tile<Rows, Panels>;
};

}  // namespace kiln::kernels::gemm::s8_4x16c4_ref
