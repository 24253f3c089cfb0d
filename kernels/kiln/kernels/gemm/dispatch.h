// The one place that picks the FP32 GEMM variant for this CPU: the rows of f32_variants.inc as a
// VariantTable (variant_table.h), chosen once per process; KILN_GEMM_VARIANT=<name> forces a row.
// One binary, one -march: the kernels are inline templates, so the linker keeps one copy of each;
// a copy compiled in a translation unit with a wider -march (say x86-64-v4) may use that ISA inside
// the avx2 kernel too. model.so is one translation unit, so this only matters to other users.
#pragma once

#include "kiln/kernels/gemm/driver.h"
#include "kiln/kernels/gemm/f32_14x32_avx512.h"
#include "kiln/kernels/gemm/f32_4x16_ref.h"
#include "kiln/kernels/gemm/f32_6x16_avx2.h"
#include "kiln/kernels/gemm/f32_6x16_neon.h"
#include "kiln/kernels/gemm/variant_table.h"

namespace kiln::kernels::gemm {

using Variant = VariantRow<KernelTable>;

inline const VariantTable<KernelTable>& gemm_f32_table() {
#define KILN_GEMM_F32_VARIANT(name, kernel, tile, needs, supported, kernels, schedule) \
  {name, kernel, tile, needs, supported, kernels, schedule},
  static const Variant kRows[] = {
#include "kiln/kernels/gemm/f32_variants.inc"
  };
#undef KILN_GEMM_F32_VARIANT
  static const VariantTable<KernelTable> table(kRows, "KILN_GEMM_VARIANT", "gemm f32");
  return table;
}

inline const Variant& gemm_f32_variant() {
  return gemm_f32_table().chosen();
}

// "gemm f32: avx512 14x32" (+ why KILN_GEMM_VARIANT was ignored): model.so's
// kiln_model_kernel_variant.
inline const char* gemm_f32_variant_description() {
  return gemm_f32_table().description();
}

// C[M, N] = epilogue(A[M, K] * B) with B packed by pack_b_f32, on the variant picked for this CPU.
inline void gemm_f32_packed(const kiln_backend* be, int64_t M, int64_t N, int64_t K, const float* A,
                            int64_t lda, const float* packed_b, float* C, int64_t ldc,
                            const Epilogue& ep) {
  const Variant& v = gemm_f32_variant();
  gemm_f32_packed_with(v.kernels(), v.schedule, be, M, N, K, A, lda, packed_b, C, ldc, ep);
}

}  // namespace kiln::kernels::gemm
