// host_gemm.h. One portable tile in GCC vector extensions, compiled three times (x86-64, v3 with
// AVX2 + FMA, v4 with AVX-512) and picked by the loader for this CPU: the compiler binary itself
// is built for baseline x86-64. ~10x the double dot products this replaces.
#include "compiler/quantize/host_gemm.h"

#include <algorithm>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define KILN_HOST_CLONES \
  __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define KILN_HOST_CLONES
#endif

namespace kiln::quantize {
namespace {

constexpr int64_t kNr = PackedPanels::kNr;
constexpr int kMr = 6;  // rows per tile: 6 accumulators, each one zmm or two ymm
typedef float V16 __attribute__((vector_size(kNr * sizeof(float))));

// out[r * kNr + c] = sum over p < kc of x[r * ldx + p] * panel[p * kNr + c], r < MR. Inlined into
// each clone of host_gemm_impl, so it is compiled for each ISA.
template <int MR>
__attribute__((always_inline)) inline void tile(const float* x, int64_t ldx, const float* panel,
                                                int64_t kc, float* out) {
  V16 acc[MR] = {};
  for (int64_t p = 0; p < kc; ++p) {
    V16 b;
    std::memcpy(&b, panel + p * kNr, sizeof b);
    for (int r = 0; r < MR; ++r) acc[r] += x[r * ldx + p] * b;
  }
  std::memcpy(out, acc, sizeof acc);
}

KILN_HOST_CLONES void host_gemm_impl(const float* x, int64_t m, int64_t k, int64_t n,
                                     const float* panels, double* y, const float* scale,
                                     int64_t span) {
  std::fill(y, y + m * n, 0.0);
  float t[kMr * kNr];
  for (int64_t j0 = 0; j0 < n; j0 += kNr) {
    const int64_t nc = std::min(kNr, n - j0);
    for (int64_t p0 = 0, p1; p0 < k; p0 = p1) {
      p1 = std::min({k, p0 + kKc, (p0 / span + 1) * span});  // a chunk never straddles groups
      const int64_t kc = p1 - p0;
      const float* b = panels + (j0 / kNr * k + p0) * kNr;
      const float* s = scale ? scale + p0 / span * n + j0 : nullptr;
      for (int64_t i0 = 0; i0 < m; i0 += kMr) {
        const float* a = x + i0 * k + p0;
        const int64_t mr = std::min<int64_t>(kMr, m - i0);
        switch (mr) {
          case 6:
            tile<6>(a, k, b, kc, t);
            break;
          case 5:
            tile<5>(a, k, b, kc, t);
            break;
          case 4:
            tile<4>(a, k, b, kc, t);
            break;
          case 3:
            tile<3>(a, k, b, kc, t);
            break;
          case 2:
            tile<2>(a, k, b, kc, t);
            break;
          default:
            tile<1>(a, k, b, kc, t);
            break;
        }
        for (int64_t r = 0; r < mr; ++r)
          for (int64_t c = 0; c < nc; ++c)
            y[(i0 + r) * n + j0 + c] += s ? double(t[r * kNr + c]) * s[c] : t[r * kNr + c];
      }
    }
  }
}

}  // namespace

void host_gemm(const float* x, int64_t m, const PackedPanels& b, double* y, const float* scale,
               int64_t group) {
  const int64_t span = group > 0 && group < b.k() ? group : std::max<int64_t>(b.k(), 1);
  host_gemm_impl(x, m, b.k(), b.n(), b.panel(0), y, scale, span);
}

}  // namespace kiln::quantize
