// Entry points generated code calls for a Dense that `kiln tune` tuned: a few schedules by M,
// each naming a variant of the FP32 table (dispatch.h). INT8: s8_tuned.h (not included here, so
// FP32-only models still compile no INT8 kernel).
//
// The tuned rows are used only where they were measured and can run. Otherwise the call is the
// plain gemm_f32_packed (the default variant and schedule for this CPU):
//   - tuned_cpu is false (model.so compares cpu_identity.h's key with the log's once, at load),
//   - the user forced a variant (KILN_GEMM_VARIANT set and non-empty: a forced variant wins over
//     tuning, so the override still means what it says),
//   - the row's variant is not built into this binary (say avx512 in an x86-64-v3 model.so) or
//     this CPU lacks it: never an illegal instruction.
#pragma once

#include <cstdint>
#include <cstdlib>

#include "kiln/kernels/gemm/dispatch.h"

namespace kiln::kernels::gemm {

// One tuned schedule: used for M <= max_m. Rows are sorted by max_m ascending; M above every
// max_m uses the last row.
struct TunedSchedule {
  int64_t max_m;
  const char* variant;  // a name from the variant table ("avx512", "neon_a76", ...)
  Schedule schedule;
};

namespace detail {

inline const TunedSchedule* tuned_row(const TunedSchedule* rows, int count, int64_t M) {
  if (!rows || count <= 0) return nullptr;
  for (int i = 0; i < count; ++i)
    if (M <= rows[i].max_m) return &rows[i];
  return &rows[count - 1];
}

inline bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v && *v;
}

// The table row a tuned schedule may run on, or null (fall back to the default).
template <class Table>
const typename Table::Row* tuned_variant(const Table& table, bool forced, bool tuned_cpu,
                                         const TunedSchedule* row) {
  if (!tuned_cpu || forced || !row || !row->variant) return nullptr;
  const typename Table::Row* v = table.find(row->variant);
  return v && v->supported() ? v : nullptr;
}

}  // namespace detail

// gemm_f32_packed (dispatch.h) with the tuned schedule for M, or the default where that cannot be
// used (above).
inline void gemm_f32_packed_tuned(const TunedSchedule* rows, int count, bool tuned_cpu,
                                  const kiln_backend* be, int64_t M, int64_t N, int64_t K,
                                  const float* A, int64_t lda, const float* packed_b, float* C,
                                  int64_t ldc, const Epilogue& ep) {
  static const bool forced = detail::env_set("KILN_GEMM_VARIANT");
  const TunedSchedule* row = detail::tuned_row(rows, count, M);
  if (const Variant* v = detail::tuned_variant(gemm_f32_table(), forced, tuned_cpu, row))
    gemm_f32_packed_with(v->kernels(), row->schedule, be, M, N, K, A, lda, packed_b, C, ldc, ep);
  else
    gemm_f32_packed(be, M, N, K, A, lda, packed_b, C, ldc, ep);
}

}  // namespace kiln::kernels::gemm
