// The one place that picks the INT8 GEMM variant for this CPU: the rows of s8_variants.inc as a
// VariantTable (variant_table.h, as dispatch.h does for FP32), chosen once per process;
// KILN_GEMM_S8_VARIANT=<name> forces a row.
#pragma once

#include "kiln/kernels/gemm/dispatch.h"
#include "kiln/kernels/gemm/s8_14x32c4_avx512vnni.h"
#include "kiln/kernels/gemm/s8_4x16c4_ref.h"
#include "kiln/kernels/gemm/s8_6x16c4_avx2.h"
#include "kiln/kernels/gemm/s8_6x16c4_avxvnni.h"
#include "kiln/kernels/gemm/s8_6x16c4_neon.h"
#include "kiln/kernels/gemm/s8_6x16c4_neondot.h"
#include "kiln/kernels/gemm/s8_driver.h"
#include "kiln/kernels/gemm/variant_table.h"

namespace kiln::kernels::gemm {

using S8Variant = VariantRow<S8KernelTable>;

inline const VariantTable<S8KernelTable>& gemm_s8_table() {
#define KILN_GEMM_S8_VARIANT(name, kernel, tile, needs, supported, kernels, schedule) \
  {name, kernel, tile, needs, supported, kernels, schedule},
  static const S8Variant kRows[] = {
#include "kiln/kernels/gemm/s8_variants.inc"
  };
#undef KILN_GEMM_S8_VARIANT
  static const VariantTable<S8KernelTable> table(kRows, "KILN_GEMM_S8_VARIANT", "gemm s8");
  return table;
}

inline const S8Variant& gemm_s8_variant() {
  return gemm_s8_table().chosen();
}

// C[M, N] = epilogue(dequant(quantize_rows(A) * B)), B = packed_s8_view(blob, K, N) of a blob made
// by pack_b_s8 / quantize_pack_b_s8, on the variant picked for this CPU (s8_driver.h).
inline void gemm_s8_packed(const kiln_backend* be, int64_t M, int64_t N, int64_t K, const float* A,
                           int64_t lda, const PackedS8& B, float* C, int64_t ldc,
                           const Epilogue& ep, void* workspace = nullptr) {
  const S8Variant& v = gemm_s8_variant();
  gemm_s8_packed_with(v.kernels(), v.schedule, be, M, N, K, A, lda, B, C, ldc, ep, workspace);
}

}  // namespace kiln::kernels::gemm
