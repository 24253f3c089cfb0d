// ONNX Pad (constant, edge and reflect modes). MobileBERT pads its embedding trigram once per
// call: one source lookup per output element is fast enough.
#pragma once

#include <cstdint>

#include "kiln/kernels/common.h"
#include "kiln/kernels/parallel.h"

namespace kiln::kernels {

enum class PadMode : int { kConstant, kEdge, kReflect };

// y (dims od) = x (dims xd, rank) shifted by begin[k] along each axis; begin may be negative
// (a crop). Outside x: value (constant), the nearest edge element, or the mirror image without
// repeating the edge (reflect; needs every padded dim >= 2, checked by the compiler).
template <class T>
void pad(const T* x, const int64_t* xd, int rank, const int64_t* begin, PadMode mode, T value, T* y,
         const int64_t* od, const kiln_backend* be) {
  int64_t xs[kMaxRank];
  dense_strides(xd, rank, xs);
  const int64_t n = product(od, 0, rank);
  parallel_for(be, n, kGrainElements, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      int64_t rem = i, off = 0;
      bool inside = true;
      for (int k = rank - 1; k >= 0; --k) {
        int64_t c = rem % od[k] - begin[k];
        rem /= od[k];
        const int64_t d = xd[k];
        if (c < 0 || c >= d) {
          if (mode == PadMode::kConstant || d == 0) {
            inside = false;
            break;
          }
          if (mode == PadMode::kEdge) {
            c = c < 0 ? 0 : d - 1;
          } else {
            const int64_t period = 2 * (d - 1);
            c = period ? ((c % period) + period) % period : 0;
            if (c >= d) c = period - c;
          }
        }
        off += c * xs[k];
      }
      y[i] = inside ? x[off] : value;
    }
  });
}

}  // namespace kiln::kernels
