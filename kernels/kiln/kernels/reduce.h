// ONNX Reduce{Sum,Mean,Max,Min,Prod,L2,SumSquare} over any set of axes, and CumSum; float32 and
// int64/int32.
// These run in pooling and mask subgraphs (mean pooling sums [batch, seq, hidden] over seq once
// per call), so plain loops over the reduced elements, kept rows split across threads.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kiln/kernels/common.h"
#include "kiln/kernels/parallel.h"

namespace kiln::kernels {

// A reducer: `init` (the value of an empty reduction's accumulator), `add` one element into the
// accumulator, `finish` with the element count. Float accumulates in double, integers in int64.
namespace reduce_op {
struct Sum {
  template <class A>
  static A init() {
    return A(0);
  }
  template <class A, class T>
  static A add(A acc, T x) {
    return acc + static_cast<A>(x);
  }
  template <class A>
  static A finish(A acc, int64_t) {
    return acc;
  }
};
struct Mean : Sum {
  template <class A>
  static A finish(A acc, int64_t n) {
    if constexpr (std::is_floating_point_v<A>) return n ? acc / static_cast<A>(n) : A(NAN);
    return n ? acc / n : A(0);
  }
};
struct SumSquare : Sum {
  template <class A, class T>
  static A add(A acc, T x) {
    return acc + static_cast<A>(x) * static_cast<A>(x);
  }
};
struct L2 : SumSquare {
  template <class A>
  static A finish(A acc, int64_t) {
    if constexpr (std::is_floating_point_v<A>) return std::sqrt(acc);
    return static_cast<A>(std::sqrt(static_cast<double>(acc)));
  }
};
struct Prod : Sum {
  template <class A>
  static A init() {
    return A(1);
  }
  template <class A, class T>
  static A add(A acc, T x) {
    return acc * static_cast<A>(x);
  }
};
// Max / Min of nothing is the identity element (-inf / +inf, or the integer limits), as ONNX's
// reference; a NaN element makes the result NaN.
struct Max : Sum {
  template <class A>
  static A init() {
    if constexpr (std::is_floating_point_v<A>) return -INFINITY;
    return INT64_MIN;
  }
  template <class A, class T>
  static A add(A acc, T x) {
    const A v = static_cast<A>(x);
    if constexpr (std::is_floating_point_v<A>)
      if (std::isnan(v)) return v;
    return v > acc ? v : acc;
  }
};
struct Min : Sum {
  template <class A>
  static A init() {
    if constexpr (std::is_floating_point_v<A>) return INFINITY;
    return INT64_MAX;
  }
  template <class A, class T>
  static A add(A acc, T x) {
    const A v = static_cast<A>(x);
    if constexpr (std::is_floating_point_v<A>)
      if (std::isnan(v)) return v;
    return v < acc ? v : acc;
  }
};
}  // namespace reduce_op

// y = R over the axes of x (dims xd, rank) with reduce[axis] != 0. y is dense over the kept axes
// (keepdims only changes the shape, not the layout).
template <class R, class T>
void reduce(const T* x, const int64_t* xd, int rank, const uint8_t* reduce, T* y,
            const kiln_backend* be) {
  using A = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
  int64_t dense[kMaxRank];
  dense_strides(xd, rank, dense);
  int64_t kd[kMaxRank], ks[kMaxRank], rd[kMaxRank], rs[kMaxRank];
  int nk = 0, nr = 0;
  for (int i = 0; i < rank; ++i) {
    if (reduce[i]) {
      rd[nr] = xd[i];
      rs[nr++] = dense[i];
    } else {
      kd[nk] = xd[i];
      ks[nk++] = dense[i];
    }
  }
  const int64_t kept = product(kd, 0, nk), count = product(rd, 0, nr);
  parallel_for(be, kept, grain_rows(count), [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      int64_t base = 0, idx = o;
      for (int i = nk - 1; i >= 0; --i) {
        base += (idx % kd[i]) * ks[i];
        idx /= kd[i];
      }
      A acc = R::template init<A>();
      if (nr == 1 && rs[0] == 1) {
        for (int64_t j = 0; j < count; ++j) acc = R::add(acc, x[base + j]);
      } else {
        for (int64_t j = 0; j < count; ++j) {
          int64_t off = base, q = j;
          for (int i = nr - 1; i >= 0; --i) {
            off += (q % rd[i]) * rs[i];
            q /= rd[i];
          }
          acc = R::add(acc, x[off]);
        }
      }
      y[o] = static_cast<T>(R::finish(acc, count));
    }
  });
}

// ONNX CumSum of x viewed as [outer, n, inner] along n: exclusive starts from 0 (y_0 = 0),
// reverse runs from the end. Position ids (RoBERTa, MPNet): a few rows of ints per call.
template <class T>
void cumsum(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, bool exclusive, bool reverse,
            const kiln_backend*) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      T acc = T(0);
      for (int64_t j = 0; j < n; ++j) {
        const int64_t at = (o * n + (reverse ? n - 1 - j : j)) * inner + i;
        const T v = x[at];
        if (!exclusive) acc += v;
        y[at] = acc;
        if (exclusive) acc += v;
      }
    }
}

}  // namespace kiln::kernels
