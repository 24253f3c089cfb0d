// `kiln variants`; see variants.h.
#include "tools/kiln/variants.h"

#include <cstdio>
#include <vector>

#include "kiln/kernels/gemm/variant_table.h"

namespace kiln::tools {
namespace {

struct Variant {
  const char* name;
  const char* needs;
  bool (*supported)();
};

using namespace kiln::kernels::gemm;  // the rows name cpu::<feature>

#define KILN_GEMM_F32_VARIANT(name, kernel, tile, needs, supported, ...) {name, needs, supported},
const Variant kF32[] = {
#include "kiln/kernels/gemm/f32_variants.inc"
};
#undef KILN_GEMM_F32_VARIANT

#define KILN_GEMM_S8_VARIANT(name, kernel, tile, needs, supported, ...) {name, needs, supported},
const Variant kS8[] = {
#include "kiln/kernels/gemm/s8_variants.inc"
};
#undef KILN_GEMM_S8_VARIANT

template <size_t N>
void print(const char* key, const Variant (&rows)[N], bool json, bool last) {
  if (json) std::printf("  \"%s\": [", key);
  for (size_t i = 0; i < N; ++i) {
    const Variant& v = rows[i];
    if (json)
      std::printf("%s{\"name\": \"%s\", \"needs\": \"%s\", \"runs_here\": %s}", i ? ", " : "",
                  v.name, v.needs, v.supported() ? "true" : "false");
    else
      std::printf("%-6s %-12s needs %-12s %s\n", key, v.name, *v.needs ? v.needs : "-",
                  v.supported() ? "runs on this CPU" : "not on this CPU");
  }
  if (json) std::printf("]%s\n", last ? "" : ",");
}

}  // namespace

int print_variants(bool json) {
  if (json) std::printf("{\n");
  print("f32", kF32, json, false);
  print("s8", kS8, json, true);
  if (json) std::printf("}\n");
  return 0;
}

}  // namespace kiln::tools
