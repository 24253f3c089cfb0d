// Types shared by the INT8 GEMM (weights int8 per output channel, activations quantized per row at
// run time): the arguments of one micro-kernel call and the activation storage formats.
// The FP32 Epilogue, Schedule and kNr (types.h) are reused as they are.
#pragma once

#include <cstdint>

#include "kiln/kernels/gemm/types.h"

namespace kiln::kernels::gemm {

// How a variant stores a quantized activation q in [-128, 127] (zero point z, see s8_quantize.h):
// its multiply instruction decides. kS8: q (NEON sdot, smull). kU8: q + 128 (vpdpbusd, AVX-512 or
// AVX-VNNI, multiplies u8 x s8; the + 128 comes back out through the zero point). kS16: q
// sign-extended to int16 (AVX2 vpmaddwd: exact, vpmaddubsw could saturate, docs/architecture.md
// "INT8 GEMM kernels").
enum class ActFormat { kS8, kU8, kS16 };

inline int act_format_bytes(ActFormat f) {
  return f == ActFormat::kS16 ? 2 : 1;
}

// Value added to q when stored in format f; the kernels subtract (z + offset) * colsum[n].
constexpr int32_t act_format_offset(ActFormat f) {
  return f == ActFormat::kU8 ? 128 : 0;
}

// One INT8 micro-kernel call: C[rows, 16*panels] = epilogue(dequant(Aq[rows, 4*groups] *
// Bq[4*groups, 16*panels])), with, for row r and column j,
//   acc = sum_k a[r, k] * b[k, j]                        (int32, exact; a in the stored format)
//   y   = float(acc - a_zp[r] * colsum[j]) * (a_scale[r] * w_scale[j])
// then bias / gelu / residual as in the FP32 epilogue. With weight groups along K (group_steps >
// 0, s8_pack.h) instead
//   y   = a_scale[r] * (sum_g float(acc_g) * w_scale[g][j] - a_zp[r] * w_zsum[j])
// where acc_g sums the group's group_steps * 4 k exactly in int32 (|acc_g| < 2^24: exact in
// float too) and the groups are added in float. All of K in one call (the int32 accumulators
// never leave registers). a: the tile's quantized rows interleaved by groups of 4 k,
// group g of row r at a + (g * rows + r) * 4 * act_format_bytes (zero past K), so that one pointer
// walks the tile; b: the first group of the first packed panel (s8_pack.h), the next panel
// b_panel_stride bytes later.
struct S8TileArgs {
  int64_t groups;  // K rounded up to a multiple of 4, divided by 4
  const void* a;
  const int8_t* b;
  int64_t b_panel_stride;  // bytes
  const int8_t* prefetch;  // a slice of the next column tile's panels (into L2), or null
  int64_t prefetch_step;   // bytes the prefetch advances per group (64: one line per group)
  const float* a_scale;    // [rows]
  const int32_t* a_zp;     // [rows], zero point + act_format_offset
  const float* w_scale;    // [16*panels], zero past N; group g's at w_scale + g * w_scale_stride
  const int32_t* colsum;   // [16*panels], sum_k Bq[k, j] (per channel: group_steps 0)
  int64_t group_steps;     // groups of 4 k per weight scale group, 0: one scale per column
  int64_t w_scale_stride;  // floats
  const float* w_zsum;     // [16*panels], s8_pack.h zsum (weight groups only)
  float* c;
  int64_t ldc;
  bool accumulate;  // always false (kept so the driver's narrow-tile helper serves both GEMMs)
  const float* bias;
  const float* residual;
  int64_t ldr;
  bool gelu;
};

using S8TileFn = void (*)(const S8TileArgs&);

}  // namespace kiln::kernels::gemm
