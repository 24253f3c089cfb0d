// The one place that picks the FP32 GEMM variant for this CPU (MLAS-style config table).
//
// Each row of the table names a variant (the KILN_GEMM_VARIANT value), its micro-kernel, the CPU
// test and its default schedule. The first supported row in preference order wins, read once;
// KILN_GEMM_VARIANT=ref|avx2|avx512|neon|neon_a76 forces a row (ignored, with the default kept,
// if that variant is not built for this architecture or the CPU lacks it). Callers never test CPU
// features themselves.
// KILN_GEMM_NO_AVX512 (defined by the compiler for target x86-64-v3) leaves the avx512 row out,
// so such a model.so never executes AVX-512, whatever the CPU or KILN_GEMM_VARIANT says.
// One binary, one -march: the kernels are inline templates, so the linker keeps one copy of each;
// a copy compiled in a translation unit with a wider -march (say x86-64-v4) may use that ISA inside
// the avx2 kernel too. model.so is one translation unit, so this only matters to other users.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include "kiln/kernels/gemm/driver.h"
#include "kiln/kernels/gemm/f32_14x32_avx512.h"
#include "kiln/kernels/gemm/f32_4x16_ref.h"
#include "kiln/kernels/gemm/f32_6x16_avx2.h"
#include "kiln/kernels/gemm/f32_6x16_neon.h"

namespace kiln::kernels::gemm {

struct Variant {
  const char* name;    // KILN_GEMM_VARIANT value
  const char* kernel;  // micro-kernel, <op>_<dtype>_<tile>_<isa>
  const char* tile;    // rows x columns of the micro-kernel, for people
  const char* needs;   // CPU features supported() tests, for messages
  bool (*supported)();
  const KernelTable& (*kernels)();
  Schedule schedule;  // default; gemm_f32_packed_with takes any other
};

namespace cpu {
inline bool any() {
  return true;
}
#if defined(__x86_64__)
inline bool avx2_fma() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
inline bool avx512f() {
  return __builtin_cpu_supports("avx512f");
}
// The INT8 GEMM's VNNI kernels (s8_dispatch.h): AVX-512 (with BW), and the 256-bit VEX form.
inline bool avx512vnni() {
  return avx512f() && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
}
inline bool avxvnni() {
  return avx2_fma() && __builtin_cpu_supports("avxvnni");
}
#endif
#if defined(__aarch64__)
inline bool asimddp() {
#if defined(__linux__) && defined(HWCAP_ASIMDDP)
  return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
  return false;
#endif
}
#endif
}  // namespace cpu

// Preference order: best first. Schedules measured on the build host (docs/architecture.md,
// "GEMM kernels"); the aarch64 ones follow cache sizes (A72: 32 KiB L1d, 1 MiB shared L2;
// A76: 64 KiB L1d, 512 KiB private L2) and are not yet measured on a board.
inline const Variant* gemm_f32_variants(int* count) {
  static const Variant kTable[] = {
#if defined(__x86_64__) && !defined(KILN_GEMM_NO_AVX512)
    // mc 112 (8 row tiles): the item's A rows (336 KiB at K = 768) stay in Zen 5's 1 MiB L2
    // next to two 96 KiB B tiles; mc 336 (1 MiB of A) did not and measured 3-5 % slower at
    // M = 512, N = 2304 / 3072. mc 56 measured the same as 112 but streams B from L3 twice as
    // often.
    {"avx512", "gemm_f32_14x32_avx512", "14x32", "avx512f", cpu::avx512f,
     kernel_table<f32_14x32_avx512::Kernel>, Schedule{14, 2, 112, 0, 0}},
#endif
#if defined(__x86_64__)
    {"avx2", "gemm_f32_6x16_avx2", "6x16", "avx2+fma", cpu::avx2_fma,
     kernel_table<f32_6x16_avx2::Kernel>, Schedule{6, 1, 336, 0, 0}},
#endif
#if defined(__aarch64__)
    {"neon_a76", "gemm_f32_6x16_neon", "6x16", "asimddp", cpu::asimddp,
     kernel_table<f32_6x16_neon::Kernel>, Schedule{6, 1, 240, 512, 0}},
    {"neon", "gemm_f32_6x16_neon", "6x16", "asimd", cpu::any, kernel_table<f32_6x16_neon::Kernel>,
     Schedule{6, 1, 120, 256, 0}},
#endif
    {"ref", "gemm_f32_4x16_ref", "4x16", "", cpu::any, kernel_table<f32_4x16_ref::Kernel>,
     Schedule{4, 1, 128, 0, 0}},
  };
  *count = static_cast<int>(sizeof(kTable) / sizeof(kTable[0]));
  return kTable;
}

// The variant called `name` if it is built for this architecture (supported or not), else null.
inline const Variant* find_gemm_f32_variant(const char* name) {
  int n = 0;
  const Variant* t = gemm_f32_variants(&n);
  for (int i = 0; i < n; ++i)
    if (std::strcmp(t[i].name, name) == 0) return &t[i];
  return nullptr;
}

inline const Variant& select_gemm_f32_variant() {
  if (const char* env = std::getenv("KILN_GEMM_VARIANT")) {
    const Variant* v = find_gemm_f32_variant(env);
    if (v && v->supported()) return *v;
  }
  int n = 0;
  const Variant* t = gemm_f32_variants(&n);
  for (int i = 0; i < n; ++i)
    if (t[i].supported()) return t[i];
  return t[n - 1];
}

// Chosen once per process.
inline const Variant& gemm_f32_variant() {
  static const Variant& v = select_gemm_f32_variant();
  return v;
}

inline const char* gemm_f32_variant_name() {
  return gemm_f32_variant().name;
}

// "gemm f32: avx512 14x32", plus why when KILN_GEMM_VARIANT asked for another variant
// (model.so's kiln_model_kernel_variant, printed by `kiln inspect` and `kiln-rt run --verbose`).
inline const char* gemm_f32_variant_description() {
  static char text[160];
  static const bool once = [] {
    const Variant& v = gemm_f32_variant();
    int n = std::snprintf(text, sizeof(text), "gemm f32: %s %s", v.name, v.tile);
    const char* env = std::getenv("KILN_GEMM_VARIANT");
    if (env && *env && std::strcmp(env, v.name) != 0 && n > 0 &&
        n < static_cast<int>(sizeof(text))) {
      const Variant* asked = find_gemm_f32_variant(env);
      std::snprintf(text + n, sizeof(text) - n, " (KILN_GEMM_VARIANT=%.32s ignored: %s%s)", env,
                    asked ? "this CPU lacks " : "not built into this model.so",
                    asked ? asked->needs : "");
    }
    return true;
  }();
  (void)once;
  return text;
}

// C[M, N] = epilogue(A[M, K] * B) with B packed by pack_b_f32, on the variant picked for this CPU.
inline void gemm_f32_packed(const kiln_backend* be, int64_t M, int64_t N, int64_t K, const float* A,
                            int64_t lda, const float* packed_b, float* C, int64_t ldc,
                            const Epilogue& ep) {
  const Variant& v = gemm_f32_variant();
  gemm_f32_packed_with(v.kernels(), v.schedule, be, M, N, K, A, lda, packed_b, C, ldc, ep);
}

}  // namespace kiln::kernels::gemm
