// Elementwise kernels: binary ops with numpy broadcasting, unary ops, Where, Cast, and strided
// copies (Expand, Transpose, Slice are all "copy through a strided plan").
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kiln/kernels/attention.h"  // exp_f32
#include "kiln/kernels/common.h"
#include "kiln/kernels/gemm/gelu.h"
#include "kiln/kernels/parallel.h"

namespace kiln::kernels {

// tanh(x), scalar or VecF. |x| < 0.625: Cephes' tanhf odd polynomial x + x^3 P(x^2) (no
// cancellation near 0); otherwise 1 - 2 / (exp(2|x|) + 1) with attention.h's exp, |x| clamped to
// 10 (tanh(10) rounds to 1 in float). Relative error < 1e-6 against double tanh over a dense
// sweep (tests/kernels/elementwise_test.cpp); NaN propagates, +-inf gives +-1.
template <class F>
inline F tanh_f32(F x) {
  const F zero = F{}, small = F{} + 0.625f, big = F{} + 10.0f;
  const F a0 = x < zero ? -x : x;
  const F a = a0 > big ? big : a0;
  const F s = x * x;
  F p = F{} - 5.70498872745e-3f;
  p = p * s + 2.06390887954e-2f;
  p = p * s - 5.37397155531e-2f;
  p = p * s + 1.33314422036e-1f;
  p = p * s - 3.33332819422e-1f;
  const F poly = (p * s) * x + x;
  const F r = 1.0f - 2.0f / (exp_f32(a + a) + 1.0f);
  return a0 < small ? poly : (x < zero ? -r : r);
}

// ---- operators (one functor per ONNX op; shared instantiations across nodes) ----
namespace op {
struct Add {
  template <class T>
  T operator()(T a, T b) const {
    return a + b;
  }
};
struct Sub {
  template <class T>
  T operator()(T a, T b) const {
    return a - b;
  }
};
struct Mul {
  template <class T>
  T operator()(T a, T b) const {
    return a * b;
  }
};
struct Div {
  template <class T>
  T operator()(T a, T b) const {
    return a / b;
  }
};
struct Pow {
  float operator()(float a, float b) const { return std::pow(a, b); }
  template <class T>
  T operator()(T a, T b) const {  // integer power (ONNX allows int base/exponent)
    T r = 1;
    for (T i = 0; i < b; ++i) r *= a;
    return r;
  }
};
// Integer Mod (fmod=0) takes the divisor's sign, FMod the dividend's. A zero divisor gives 0 (and
// -1 is special-cased: INT64_MIN % -1 traps on x86) instead of a SIGFPE in the user's process.
struct Mod {
  template <class T>
  T operator()(T a, T b) const {
    if (b == 0 || b == -1) return 0;
    const T r = a % b;
    return r != 0 && (r < 0) != (b < 0) ? r + b : r;
  }
};
struct FMod {
  float operator()(float a, float b) const { return std::fmod(a, b); }
  template <class T>
  T operator()(T a, T b) const {
    return b == 0 || b == -1 ? 0 : a % b;
  }
};
// Min / Max propagate a NaN of either input (as numpy's minimum / maximum).
template <class T>
bool is_nan_value(T x) {
  if constexpr (std::is_floating_point_v<T>) return std::isnan(x);
  return false;
}
struct Min {
  template <class T>
  T operator()(T a, T b) const {
    return is_nan_value(a) || a < b ? a : b;
  }
};
struct Max {
  template <class T>
  T operator()(T a, T b) const {
    return is_nan_value(a) || a > b ? a : b;
  }
};
struct And {
  uint8_t operator()(uint8_t a, uint8_t b) const { return a && b; }
};
struct Or {
  uint8_t operator()(uint8_t a, uint8_t b) const { return a || b; }
};
struct Xor {
  uint8_t operator()(uint8_t a, uint8_t b) const { return (a != 0) != (b != 0); }
};
struct Equal {
  template <class T>
  uint8_t operator()(T a, T b) const {
    return a == b;
  }
};
struct Less {
  template <class T>
  uint8_t operator()(T a, T b) const {
    return a < b;
  }
};
struct Greater {
  template <class T>
  uint8_t operator()(T a, T b) const {
    return a > b;
  }
};
struct GreaterOrEqual {
  template <class T>
  uint8_t operator()(T a, T b) const {
    return a >= b;
  }
};
struct LessOrEqual {
  template <class T>
  uint8_t operator()(T a, T b) const {
    return a <= b;
  }
};
struct IsNaN {
  uint8_t operator()(float x) const { return std::isnan(x); }
};
struct IsInf {
  uint8_t operator()(float x) const { return std::isinf(x); }
};

struct Sqrt {
  float operator()(float x) const { return std::sqrt(x); }
};
// Ops with kVector = true also take a VecF: unary() runs them a native vector at a time.
// erf and exact GELU share the GEMM epilogue's rational approximation (relative error < 5e-7
// against double erf, gemm/gelu.h), ~45x faster than std::erf, which BERT's FFN pays 12*S*3072
// times per sequence.
struct Erf {
  static constexpr bool kVector = true;
  template <class F>
  F operator()(F x) const {
    return gemm::erf_f32(x);
  }
};
struct Tanh {
  static constexpr bool kVector = true;
  template <class F>
  F operator()(F x) const {
    return tanh_f32(x);
  }
};
struct Exp {
  float operator()(float x) const { return std::exp(x); }
};
struct Neg {
  template <class T>
  T operator()(T x) const {
    return -x;
  }
};
struct Relu {
  template <class T>
  T operator()(T x) const {
    return x > T(0) ? x : T(0);
  }
};
struct Sigmoid {
  float operator()(float x) const { return 1.0f / (1.0f + std::exp(-x)); }
};
struct Not {
  uint8_t operator()(uint8_t x) const { return x ? 0 : 1; }
};
struct Abs {
  template <class T>
  T operator()(T x) const {
    return x < T(0) ? -x : x;
  }
};
struct Log {
  float operator()(float x) const { return std::log(x); }
};
// Sin / Cos build rotary tables (ModernBERT), once per call over [seq, head_dim / 2]: libm is
// fast enough there and exact to float rounding.
struct Sin {
  float operator()(float x) const { return std::sin(x); }
};
struct Cos {
  float operator()(float x) const { return std::cos(x); }
};
// softplus(x) = log(1 + exp(x)); above 20 that is x to float precision (and exp would overflow
// past 88), the threshold torch uses.
struct Softplus {
  float operator()(float x) const { return x > 20.0f ? x : std::log1p(std::exp(x)); }
};
struct Sign {
  template <class T>
  T operator()(T x) const {
    return static_cast<T>((x > T(0)) - (x < T(0)));
  }
};
struct Floor {
  float operator()(float x) const { return std::floor(x); }
};
struct Ceil {
  float operator()(float x) const { return std::ceil(x); }
};
struct Identity {
  template <class T>
  T operator()(T x) const {
    return x;
  }
};
struct Square {
  float operator()(float x) const { return x * x; }
};
// Exact GELU (approximate="none"): 0.5 * x * (1 + erf(x / sqrt(2))), as torch.nn.GELU().
struct Gelu {
  static constexpr bool kVector = true;
  template <class F>
  F operator()(F x) const {
    return gemm::gelu_f32(x);
  }
};
// GELU with approximate="tanh": 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))).
struct GeluTanh {
  static constexpr bool kVector = true;
  template <class F>
  F operator()(F x) const {
    return 0.5f * x * (1.0f + tanh_f32(0.79788456080286536f * (x + 0.044715f * x * x * x)));
  }
};
}  // namespace op

// out[i] = f(a[ia], b[ib]) with numpy broadcasting of a (dims ad) and b (dims bd) to od.
template <class Op, class T, class R>
void binary(const T* a, const int64_t* ad, int ar, const T* b, const int64_t* bd, int br, R* out,
            const int64_t* od, int orank, const kiln_backend* be) {
  const int64_t* in_dims[2] = {ad, bd};
  const int in_ranks[2] = {ar, br};
  const StridedPlan p = broadcast_plan(od, orank, 2, in_dims, in_ranks);
  const int64_t inner = p.inner();
  const int64_t sa = p.strides[1][p.rank - 1], sb = p.strides[2][p.rank - 1];
  const Op f;
  parallel_for(be, p.rows(), grain_rows(inner), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t off[3];
      p.row_offsets(r, off);
      R* __restrict o = out + off[0];
      const T* __restrict x = a + off[1];
      const T* __restrict y = b + off[2];
      if (sa == 1 && sb == 1) {
        for (int64_t i = 0; i < inner; ++i) o[i] = f(x[i], y[i]);
      } else if (sa == 1 && sb == 0) {
        const T yv = y[0];
        for (int64_t i = 0; i < inner; ++i) o[i] = f(x[i], yv);
      } else if (sa == 0 && sb == 1) {
        const T xv = x[0];
        for (int64_t i = 0; i < inner; ++i) o[i] = f(xv, y[i]);
      } else {
        for (int64_t i = 0; i < inner; ++i) o[i] = f(x[i * sa], y[i * sb]);
      }
    }
  });
}

namespace detail {
template <class Op, class = void>
struct IsVectorOp : std::false_type {};
template <class Op>
struct IsVectorOp<Op, std::enable_if_t<Op::kVector>> : std::true_type {};
}  // namespace detail

template <class Op, class T, class R>
void unary(const T* x, R* y, int64_t n, const kiln_backend* be) {
  const Op f;
  parallel_for(be, n, kGrainElements, [&](int64_t b, int64_t e) {
    const T* __restrict xi = x;
    R* __restrict yo = y;
    int64_t i = b;
    if constexpr (detail::IsVectorOp<Op>::value && std::is_same_v<T, float> &&
                  std::is_same_v<R, float>) {
      for (; i + kVecFloats <= e; i += kVecFloats) store_vec(yo + i, f(load_vec(xi + i)));
    }
    for (; i < e; ++i) yo[i] = f(xi[i]);
  });
}

// ONNX Clip: y = min(max(x, *lo), *hi); a null bound is no bound, NaN stays NaN. lo / hi do not
// take part in deducing T (the generated code passes a literal nullptr for an omitted bound).
template <class T>
void clip(const T* x, const std::common_type_t<T>* lo, const std::common_type_t<T>* hi, T* y,
          int64_t n, const kiln_backend* be) {
  parallel_for(be, n, kGrainElements, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      T v = x[i];
      if (lo && v < *lo) v = *lo;
      if (hi && v > *hi) v = *hi;
      y[i] = v;
    }
  });
}

template <class From, class To>
void cast(const From* x, To* y, int64_t n, const kiln_backend* be) {
  parallel_for(be, n, kGrainElements, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = static_cast<To>(x[i]);
  });
}

// Cast to ONNX bool (stored as uint8 0/1).
template <class From>
void cast_to_bool(const From* x, uint8_t* y, int64_t n, const kiln_backend* be) {
  parallel_for(be, n, kGrainElements, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = x[i] != From(0) ? 1 : 0;
  });
}

// out = cond ? x : y with numpy broadcasting of all three.
template <class T>
void where(const uint8_t* cond, const int64_t* cd, int cr, const T* x, const int64_t* xd, int xr,
           const T* y, const int64_t* yd, int yr, T* out, const int64_t* od, int orank,
           const kiln_backend* be) {
  const int64_t* in_dims[3] = {cd, xd, yd};
  const int in_ranks[3] = {cr, xr, yr};
  const StridedPlan p = broadcast_plan(od, orank, 3, in_dims, in_ranks);
  const int64_t inner = p.inner();
  const int64_t sc = p.strides[1][p.rank - 1], sx = p.strides[2][p.rank - 1],
                sy = p.strides[3][p.rank - 1];
  parallel_for(be, p.rows(), grain_rows(inner), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t off[4];
      p.row_offsets(r, off);
      T* o = out + off[0];
      const uint8_t* c = cond + off[1];
      const T* xv = x + off[2];
      const T* yv = y + off[3];
      for (int64_t i = 0; i < inner; ++i) o[i] = c[i * sc] ? xv[i * sx] : yv[i * sy];
    }
  });
}

// Dense out (dims od) from `in` read with per-output-dim element strides `is` (0 = broadcast).
template <class T>
void strided_copy(const T* in, const int64_t* is, T* out, const int64_t* od, int orank,
                  const kiln_backend* be) {
  StridedPlan p;
  p.rank = orank;
  p.operands = 2;
  for (int i = 0; i < orank; ++i) {
    p.dims[i] = od[i];
    p.strides[1][i] = is[i];
  }
  dense_strides(od, orank, p.strides[0]);
  for (int i = 0; i < orank; ++i)
    if (od[i] == 0) return;  // empty output
  p.coalesce();
  const int64_t inner = p.inner();
  const int64_t si = p.strides[1][p.rank - 1];
  parallel_for(be, p.rows(), grain_rows(inner), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t off[2];
      p.row_offsets(r, off);
      T* __restrict o = out + off[0];
      const T* __restrict x = in + off[1];
      if (si == 1)
        std::memcpy(o, x, static_cast<size_t>(inner) * sizeof(T));
      else if (si == 0)
        for (int64_t i = 0; i < inner; ++i) o[i] = x[0];
      else
        for (int64_t i = 0; i < inner; ++i) o[i] = x[i * si];
    }
  });
}

// ONNX Expand: numpy broadcast of `in` (dims id) to od.
template <class T>
void expand(const T* in, const int64_t* id, int ir, T* out, const int64_t* od, int orank,
            const kiln_backend* be) {
  int64_t is[kMaxRank];
  broadcast_strides(id, ir, orank, is);
  strided_copy(in, is, out, od, orank, be);
}

// ONNX Transpose: out dim i = in dim perm[i].
template <class T>
void transpose(const T* in, const int64_t* id, int rank, const int64_t* perm, T* out,
               const kiln_backend* be) {
  int64_t dense[kMaxRank], is[kMaxRank], od[kMaxRank];
  dense_strides(id, rank, dense);
  for (int i = 0; i < rank; ++i) {
    od[i] = id[perm[i]];
    is[i] = dense[perm[i]];
  }
  strided_copy(in, is, out, od, rank, be);
}

// ONNX Tile: out (dims od) [i] = in (dims id) [i mod id], rank >= 1; a row of the last dim at a
// time.
template <class T>
void tile(const T* in, const int64_t* id, int rank, T* out, const int64_t* od,
          const kiln_backend* be) {
  if (rank == 0) {  // a scalar tiles to itself
    out[0] = in[0];
    return;
  }
  int64_t is[kMaxRank];
  dense_strides(id, rank, is);
  const int64_t inner = od[rank - 1], n_in = id[rank - 1];
  const int64_t rows = product(od, 0, rank - 1);
  if (inner == 0 || n_in == 0) return;
  parallel_for(be, rows, grain_rows(inner), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t rem = r, src = 0;
      for (int k = rank - 2; k >= 0; --k) {
        src += (rem % od[k]) % id[k] * is[k];
        rem /= od[k];
      }
      T* o = out + r * inner;
      for (int64_t j = 0; j < inner; ++j) o[j] = in[src + j % n_in];
    }
  });
}

inline void copy_bytes(const void* in, void* out, int64_t nbytes, const kiln_backend* be) {
  parallel_for(be, nbytes, 1 << 20, [&](int64_t b, int64_t e) {
    std::memcpy(static_cast<char*>(out) + b, static_cast<const char*>(in) + b,
                static_cast<size_t>(e - b));
  });
}

template <class T>
void fill(T* out, int64_t n, T value) {
  for (int64_t i = 0; i < n; ++i) out[i] = value;
}

// ONNX Range: out[i] = start + i * delta, n elements (computed by the caller from the shape).
template <class T>
void range(T start, T delta, T* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(start + static_cast<T>(i) * delta);
}

}  // namespace kiln::kernels
