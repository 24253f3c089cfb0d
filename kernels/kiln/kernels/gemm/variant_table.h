// A GEMM kernel-variant table (MLAS-style config table), shared by the FP32 (dispatch.h) and INT8
// (s8_dispatch.h) GEMMs: the row type, the CPU tests rows name, and find / select / describe.
//
// The rows themselves are written once per GEMM, in f32_variants.inc and s8_variants.inc (an
// X-macro list, as XNNPACK's f32-vsigmoid.inc): the dispatch headers make them a VariantTable,
// variant_names.h makes their names a string for text that lists them without compiling kernels.
// Callers never test CPU features themselves.
#pragma once

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include "kiln/kernels/gemm/types.h"

namespace kiln::kernels::gemm {

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
// The INT8 GEMM's VNNI kernels: AVX-512 (with BW), and the 256-bit VEX form.
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

// One row: a micro-kernel with the CPU test that allows it and its default schedule. Kernels is
// the driver's table of the micro-kernel's instantiations (KernelTable, S8KernelTable).
template <class Kernels>
struct VariantRow {
  const char* name;    // the env override's value
  const char* kernel;  // micro-kernel, <op>_<dtype>_<tile>_<isa>
  const char* tile;    // rows x columns of the micro-kernel, for people
  const char* needs;   // CPU features supported() tests, for messages
  bool (*supported)();
  const Kernels& (*kernels)();
  Schedule schedule;  // default; the drivers' *_with entry points take any other
};

// Rows in preference order (best first; the last one is the plain C++ reference, which runs
// anywhere), for the variants built for this architecture. The choice is made once, when the table
// is constructed: the first supported row, unless the environment variable `env` names another
// supported one (ignored, with the default kept, if that variant is not built here or the CPU lacks
// it).
template <class Kernels>
class VariantTable {
 public:
  using Row = VariantRow<Kernels>;

  template <size_t N>
  VariantTable(const Row (&rows)[N], const char* env, const char* label)
      : rows_(rows), count_(N), env_(env), chosen_(&select()) {
    describe(label);
  }

  const Row* begin() const { return rows_; }
  const Row* end() const { return rows_ + count_; }

  // The variant called `name` if it is built for this architecture (supported or not), else null.
  const Row* find(const char* name) const {
    for (const Row& r : *this)
      if (std::strcmp(r.name, name) == 0) return &r;
    return nullptr;
  }

  const Row& chosen() const { return *chosen_; }
  const Row& reference() const { return rows_[count_ - 1]; }

  // "<label>: avx512 14x32", plus why when the environment asked for another variant
  // (model.so's kiln_model_kernel_variant, printed by `kiln inspect` and `kiln-rt run --verbose`).
  const char* description() const { return description_; }

 private:
  const Row& select() const {
    if (const char* name = std::getenv(env_))
      if (const Row* r = find(name); r && r->supported()) return *r;
    for (const Row& r : *this)
      if (r.supported()) return r;
    return reference();
  }

  void describe(const char* label) {
    const int n = std::snprintf(description_, sizeof(description_), "%s: %s %s", label,
                                chosen_->name, chosen_->tile);
    const char* asked = std::getenv(env_);
    if (!asked || !*asked || std::strcmp(asked, chosen_->name) == 0 || n <= 0 ||
        n >= static_cast<int>(sizeof(description_)))
      return;
    const Row* r = find(asked);
    std::snprintf(description_ + n, sizeof(description_) - n, " (%s=%.32s ignored: %s%s)", env_,
                  asked, r ? "this CPU lacks " : "not built into this model.so", r ? r->needs : "");
  }

  const Row* rows_;
  size_t count_;
  const char* env_;
  const Row* chosen_;
  char description_[160] = {};
};

}  // namespace kiln::kernels::gemm
