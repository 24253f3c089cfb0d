// The INT8 twin of tuned.h: gemm_s8_packed with a tuned schedule for M (TunedSchedule rows name
// variants of the INT8 table, s8_dispatch.h), with the same fallbacks: not the tuned CPU,
// KILN_GEMM_S8_VARIANT set, or a variant not built here / not supported by this CPU.
#pragma once

#include "kiln/kernels/gemm/s8_dispatch.h"
#include "kiln/kernels/gemm/tuned.h"

namespace kiln::kernels::gemm {

inline void gemm_s8_packed_tuned(const TunedSchedule* rows, int count, bool tuned_cpu,
                                 const kiln_backend* be, int64_t M, int64_t N, int64_t K,
                                 const float* A, int64_t lda, const PackedS8& B, float* C,
                                 int64_t ldc, const Epilogue& ep, void* workspace = nullptr) {
  static const bool forced = detail::env_set("KILN_GEMM_S8_VARIANT");
  const TunedSchedule* row = detail::tuned_row(rows, count, M);
  if (const S8Variant* v = detail::tuned_variant(gemm_s8_table(), forced, tuned_cpu, row))
    gemm_s8_packed_with(v->kernels(), row->schedule, be, M, N, K, A, lda, B, C, ldc, ep, workspace);
  else
    gemm_s8_packed(be, M, N, K, A, lda, B, C, ldc, ep, workspace);
}

}  // namespace kiln::kernels::gemm
