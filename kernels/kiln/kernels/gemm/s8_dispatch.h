// The one place that picks the INT8 GEMM variant for this CPU (config table, as dispatch.h does for
// FP32; CPU features come from dispatch.h's cpu namespace).
//
// KILN_GEMM_S8_VARIANT=ref|avx2|avxvnni|avx512vnni|neon|neondot forces a row (ignored, with the
// default kept, if that variant is not built for this architecture or the CPU lacks it).
// KILN_GEMM_NO_AVX512 (target x86-64-v3) leaves the avx512vnni row out (avxvnni stays: it is
// VEX-encoded).
// Cortex-A72 (Pi 4) gets `neon`: HWCAP lacks asimddp, so the SDOT kernel is never called there.
#pragma once

#include <cstdlib>
#include <cstring>

#include "kiln/kernels/gemm/dispatch.h"
#include "kiln/kernels/gemm/s8_14x32c4_avx512vnni.h"
#include "kiln/kernels/gemm/s8_4x16c4_ref.h"
#include "kiln/kernels/gemm/s8_6x16c4_avx2.h"
#include "kiln/kernels/gemm/s8_6x16c4_avxvnni.h"
#include "kiln/kernels/gemm/s8_6x16c4_neon.h"
#include "kiln/kernels/gemm/s8_6x16c4_neondot.h"
#include "kiln/kernels/gemm/s8_driver.h"

namespace kiln::kernels::gemm {

struct S8Variant {
  const char* name;    // KILN_GEMM_S8_VARIANT value
  const char* kernel;  // micro-kernel, <op>_<dtype>_<tile>_<isa>
  const char* tile;    // rows x columns of the micro-kernel, for people
  const char* needs;   // CPU features supported() tests, for messages
  bool (*supported)();
  const S8KernelTable& (*kernels)();
  Schedule schedule;  // default (kc is ignored: K is never blocked)
};

// Preference order: best first. x86 schedules as the FP32 ones of the same register tile
// (measured: docs/architecture.md, "INT8 GEMM kernels"); aarch64 ones follow cache sizes.
inline const S8Variant* gemm_s8_variants(int* count) {
  static const S8Variant kTable[] = {
#if defined(__x86_64__) && !defined(KILN_GEMM_NO_AVX512)
    {"avx512vnni", "gemm_s8_14x32c4_avx512vnni", "14x32", "avx512_vnni", cpu::avx512vnni,
     s8_kernel_table<s8_14x32c4_avx512vnni::Kernel, ActFormat::kU8,
                     quantize_rows_avx512<ActFormat::kU8>>,
     Schedule{14, 2, 336, 0, 0}},
#endif
#if defined(__x86_64__)
    {"avxvnni", "gemm_s8_6x16c4_avxvnni", "6x16", "avx_vnni", cpu::avxvnni,
     s8_kernel_table<s8_6x16c4_avxvnni::Kernel, ActFormat::kU8, quantize_rows_avx2<ActFormat::kU8>>,
     Schedule{6, 1, 336, 0, 0}},
    {"avx2", "gemm_s8_6x16c4_avx2", "6x16", "avx2+fma", cpu::avx2_fma,
     s8_kernel_table<s8_6x16c4_avx2::Kernel, ActFormat::kS16, quantize_rows_avx2<ActFormat::kS16>>,
     Schedule{6, 1, 336, 0, 0}},
#endif
#if defined(__aarch64__)
    {"neondot", "gemm_s8_6x16c4_neondot", "6x16", "asimddp", cpu::asimddp,
     s8_kernel_table<s8_6x16c4_neondot::Kernel, ActFormat::kS8, quantize_rows_neon>,
     Schedule{6, 1, 240, 0, 0}},
    {"neon", "gemm_s8_6x16c4_neon", "6x16", "asimd", cpu::any,
     s8_kernel_table<s8_6x16c4_neon::Kernel, ActFormat::kS8, quantize_rows_neon>,
     Schedule{6, 1, 120, 0, 0}},
#endif
    {"ref", "gemm_s8_4x16c4_ref", "4x16", "", cpu::any,
     s8_kernel_table<s8_4x16c4_ref::Kernel, ActFormat::kS8, quantize_rows_ref<ActFormat::kS8>>,
     Schedule{4, 1, 128, 0, 0}},
  };
  *count = static_cast<int>(sizeof(kTable) / sizeof(kTable[0]));
  return kTable;
}

// The variant called `name` if it is built for this architecture (supported or not), else null.
inline const S8Variant* find_gemm_s8_variant(const char* name) {
  int n = 0;
  const S8Variant* t = gemm_s8_variants(&n);
  for (int i = 0; i < n; ++i)
    if (std::strcmp(t[i].name, name) == 0) return &t[i];
  return nullptr;
}

inline const S8Variant& select_gemm_s8_variant() {
  if (const char* env = std::getenv("KILN_GEMM_S8_VARIANT")) {
    const S8Variant* v = find_gemm_s8_variant(env);
    if (v && v->supported()) return *v;
  }
  int n = 0;
  const S8Variant* t = gemm_s8_variants(&n);
  for (int i = 0; i < n; ++i)
    if (t[i].supported()) return t[i];
  return t[n - 1];
}

// Chosen once per process.
inline const S8Variant& gemm_s8_variant() {
  static const S8Variant& v = select_gemm_s8_variant();
  return v;
}

inline const char* gemm_s8_variant_name() {
  return gemm_s8_variant().name;
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
