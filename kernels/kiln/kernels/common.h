// Shared definitions for kiln's header-only kernels: rank limit, dense strides, broadcasting
// plans and the strided walk that elementwise, transpose, expand and slice kernels reuse.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kiln/backend.h"

namespace kiln::kernels {

constexpr int kMaxRank = 8;

inline int64_t product(const int64_t* dims, int begin, int end) {
  int64_t n = 1;
  for (int i = begin; i < end; ++i) n *= dims[i];
  return n;
}

// Row-major element strides of a dense tensor.
inline void dense_strides(const int64_t* dims, int rank, int64_t* strides) {
  int64_t s = 1;
  for (int i = rank - 1; i >= 0; --i) {
    strides[i] = s;
    s *= dims[i];
  }
}

// Up to kMaxOperands operands walked together over an output index space. Strides are in
// elements and aligned with the output dims (0 = broadcast). `coalesce` merges adjacent dims
// whose strides are contiguous for every operand and drops size-1 dims, so the common cases
// (same shape, bias over rows, scalar) become one or two flat loops.
constexpr int kMaxOperands = 4;
struct StridedPlan {
  int rank = 0;
  int operands = 0;
  int64_t dims[kMaxRank] = {};
  int64_t strides[kMaxOperands][kMaxRank] = {};

  void coalesce() {
    int r = 0;
    int64_t nd[kMaxRank];
    int64_t ns[kMaxOperands][kMaxRank];
    for (int i = 0; i < rank; ++i) {
      if (dims[i] == 1) continue;
      if (r > 0) {
        bool merge = true;
        for (int k = 0; k < operands; ++k)
          if (ns[k][r - 1] != strides[k][i] * dims[i]) merge = false;
        if (merge) {
          nd[r - 1] *= dims[i];
          for (int k = 0; k < operands; ++k) ns[k][r - 1] = strides[k][i];
          continue;
        }
      }
      nd[r] = dims[i];
      for (int k = 0; k < operands; ++k) ns[k][r] = strides[k][i];
      ++r;
    }
    if (r == 0) {  // a single element
      nd[0] = 1;
      for (int k = 0; k < operands; ++k) ns[k][0] = 0;
      r = 1;
    }
    rank = r;
    for (int i = 0; i < r; ++i) {
      dims[i] = nd[i];
      for (int k = 0; k < operands; ++k) strides[k][i] = ns[k][i];
    }
  }
  int64_t inner() const { return dims[rank - 1]; }
  int64_t rows() const { return product(dims, 0, rank - 1); }
  // Offsets of every operand at the start of row `row` (rows index dims[0..rank-2]).
  void row_offsets(int64_t row, int64_t* off) const {
    for (int k = 0; k < operands; ++k) off[k] = 0;
    for (int i = rank - 2; i >= 0; --i) {
      int64_t idx = row % dims[i];
      row /= dims[i];
      for (int k = 0; k < operands; ++k) off[k] += idx * strides[k][i];
    }
  }
};

// Output-aligned numpy broadcasting strides of an input with dims `in` (rank in_rank <= out_rank).
inline void broadcast_strides(const int64_t* in, int in_rank, int out_rank, int64_t* strides) {
  int64_t dense[kMaxRank];
  dense_strides(in, in_rank, dense);
  int shift = out_rank - in_rank;
  for (int i = 0; i < out_rank; ++i) {
    int j = i - shift;
    strides[i] = (j < 0 || in[j] == 1) ? 0 : dense[j];
  }
}

// Operand 0 is the dense output; operands 1.. are inputs broadcast to it.
inline StridedPlan broadcast_plan(const int64_t* out_dims, int out_rank, int n_in,
                                  const int64_t* const* in_dims, const int* in_ranks) {
  StridedPlan p;
  p.rank = out_rank;
  p.operands = 1 + n_in;
  for (int i = 0; i < out_rank; ++i) p.dims[i] = out_dims[i];
  dense_strides(out_dims, out_rank, p.strides[0]);
  for (int k = 0; k < n_in; ++k)
    broadcast_strides(in_dims[k], in_ranks[k], out_rank, p.strides[k + 1]);
  p.coalesce();
  return p;
}

// Elements per parallel task: enough work to amortise a task hand-off.
constexpr int64_t kGrainElements = 16384;
inline int64_t grain_rows(int64_t row_elements) {
  return row_elements >= kGrainElements ? 1
                                        : kGrainElements / (row_elements > 0 ? row_elements : 1);
}

// The widest float vector the target has natively (GCC vector extensions; wider generic vectors
// are split badly by GCC): 16 lanes with AVX-512, 8 with AVX/AVX2, 4 on SSE and NEON. The row
// kernels (normalization.h, elementwise.h, gather_s8.h) are written once over it, and it is
// matmul.h's / attention.h's MatmulVec.
#if defined(__AVX512F__)
constexpr int kVecFloats = 16;
#elif defined(__AVX__)
constexpr int kVecFloats = 8;
#else
constexpr int kVecFloats = 4;
#endif
// VecOf<W> gives W lanes of float / int32; a kernel built with a target attribute for a wider ISA
// than the translation unit's instantiates that ISA's width (the INT8 activation quantizer,
// gemm/s8_quantize.h).
template <int W>
struct VecOf {
  typedef float F __attribute__((vector_size(W * sizeof(float))));
  typedef int32_t I __attribute__((vector_size(W * sizeof(int32_t))));
};
typedef VecOf<kVecFloats>::F VecF;

// Unaligned load / store (memcpy compiles to one vector move).
inline VecF load_vec(const float* p) {
  VecF v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void store_vec(float* p, VecF v) {
  std::memcpy(p, &v, sizeof(v));
}
inline float reduce_add(VecF v) {
  float s = v[0];
  for (int i = 1; i < kVecFloats; ++i) s += v[i];
  return s;
}

// A 4 x 4 block of 32-bit values (floats, or 4 int8 values each) transposed in 16-byte registers:
// row x of dst (dst_stride bytes apart) = column x of src (rows src_stride bytes apart). 4 loads,
// 8 shuffles, 4 stores, where a scalar scatter is 16 loads and 16 stores.
inline void transpose_4x4_32(const void* src, int64_t src_stride, void* dst, int64_t dst_stride) {
  typedef uint32_t V4 __attribute__((vector_size(16)));
  const auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(dst);
  V4 r0, r1, r2, r3;
  std::memcpy(&r0, s, 16);
  std::memcpy(&r1, s + src_stride, 16);
  std::memcpy(&r2, s + 2 * src_stride, 16);
  std::memcpy(&r3, s + 3 * src_stride, 16);
  const V4 t0 = __builtin_shuffle(r0, r1, V4{0, 4, 1, 5});
  const V4 t1 = __builtin_shuffle(r0, r1, V4{2, 6, 3, 7});
  const V4 t2 = __builtin_shuffle(r2, r3, V4{0, 4, 1, 5});
  const V4 t3 = __builtin_shuffle(r2, r3, V4{2, 6, 3, 7});
  const V4 c[4] = {
      __builtin_shuffle(t0, t2, V4{0, 1, 4, 5}), __builtin_shuffle(t0, t2, V4{2, 3, 6, 7}),
      __builtin_shuffle(t1, t3, V4{0, 1, 4, 5}), __builtin_shuffle(t1, t3, V4{2, 3, 6, 7})};
  for (int x = 0; x < 4; ++x) std::memcpy(d + x * dst_stride, &c[x], 16);
}

}  // namespace kiln::kernels
