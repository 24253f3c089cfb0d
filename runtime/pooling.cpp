// Pooling and L2 normalisation for kiln_model_embed (see pooling.h). Plain loops over the
// contiguous hidden dimension, which the compiler vectorises (SSE2 / AVX2 / NEON as built).
#include "runtime/pooling.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace kiln::rt {
namespace {

struct PoolingName {
  Pooling mode;
  const char* name;
};
constexpr PoolingName kPoolingNames[] = {{Pooling::kNone, "none"},
                                         {Pooling::kCls, "cls"},
                                         {Pooling::kMean, "mean"},
                                         {Pooling::kMax, "max"},
                                         {Pooling::kLast, "last"}};

void mean_row(const float* h, int64_t n, int64_t dim, float* out) {
  std::memcpy(out, h, sizeof(float) * dim);
  for (int64_t t = 1; t < n; ++t) {
    const float* row = h + t * dim;
    for (int64_t d = 0; d < dim; ++d) out[d] += row[d];
  }
  const float count = static_cast<float>(n);
  for (int64_t d = 0; d < dim; ++d) out[d] /= count;
}

void max_row(const float* h, int64_t n, int64_t dim, float* out) {
  std::memcpy(out, h, sizeof(float) * dim);
  for (int64_t t = 1; t < n; ++t) {
    const float* row = h + t * dim;
    for (int64_t d = 0; d < dim; ++d) out[d] = std::max(out[d], row[d]);
  }
}

}  // namespace

bool pooling_from_name(const std::string& name, Pooling* out) {
  for (const PoolingName& p : kPoolingNames)
    if (name == p.name) {
      *out = p.mode;
      return true;
    }
  return false;
}

const char* pooling_name(Pooling mode) {
  for (const PoolingName& p : kPoolingNames)
    if (p.mode == mode) return p.name;
  return "?";
}

void pool_f32(Pooling mode, const float* hidden, int64_t batch, int64_t seq, int64_t dim,
              const int64_t* lengths, float* const* out_rows) {
  for (int64_t b = 0; b < batch; ++b) {
    const float* h = hidden + b * seq * dim;
    const int64_t n = lengths[b];
    float* out = out_rows[b];
    switch (mode) {
      case Pooling::kCls:
        std::memcpy(out, h, sizeof(float) * dim);
        break;
      case Pooling::kLast:
        std::memcpy(out, h + (n - 1) * dim, sizeof(float) * dim);
        break;
      case Pooling::kMean:
        mean_row(h, n, dim, out);
        break;
      case Pooling::kMax:
        max_row(h, n, dim, out);
        break;
      case Pooling::kNone:
        break;
    }
  }
}

void l2_normalize_f32(float* const* rows, int64_t count, int64_t dim) {
  for (int64_t i = 0; i < count; ++i) {
    float* x = rows[i];
    double sum = 0;
    for (int64_t d = 0; d < dim; ++d) sum += static_cast<double>(x[d]) * x[d];
    const float norm = std::max(static_cast<float>(std::sqrt(sum)), 1e-12f);
    for (int64_t d = 0; d < dim; ++d) x[d] /= norm;
  }
}

}  // namespace kiln::rt
