// Exact (erf) GELU for the GEMM epilogue and the elementwise Erf / Gelu ops: scalar or GCC-vector
// version; f32_simd_template.inc evaluates the same formula with the same constants lane-wise in
// intrinsics.
//
// erf(x) = x * P(x^2) / Q(x^2) on x clamped to [-4, 4] (Eigen's float erf rational
// approximation; for |x| >= 4 erf(x) rounds to +-1 in float). Measured against double erf on a
// dense sweep: relative error < 1e-6 (tests/kernels/gemm/gelu_test.cpp).
// gelu(x) = 0.5 x (1 + erf(x / sqrt 2)), PyTorch's formula (approximate="none").
#pragma once

namespace kiln::kernels::gemm {

namespace erf_coef {
constexpr float kClamp = 4.0f;
constexpr float kA1 = -1.60960333262415e-02f, kA3 = -2.95459980854025e-03f,
                kA5 = -7.34990630326855e-04f, kA7 = -5.69250639462346e-05f,
                kA9 = -2.10102402082508e-06f, kA11 = 2.77068142495902e-08f,
                kA13 = -2.72614225801306e-10f;
constexpr float kB0 = -1.42647390514189e-02f, kB2 = -7.37332916720468e-03f,
                kB4 = -1.68282697438203e-03f, kB6 = -2.13374055278905e-04f,
                kB8 = -1.45660718464996e-05f;
constexpr float kSqrtHalf = 0.70710678118654752440f;
}  // namespace erf_coef

// F = float or a GCC float vector (common.h VecF): the same operations in the same order, so the
// row kernels in elementwise.h give the scalar results lane-wise.
template <class F>
inline F erf_f32(F x) {
  using namespace erf_coef;
  const F lo = F{} - kClamp, hi = F{} + kClamp;
  x = x < lo ? lo : (x > hi ? hi : x);
  const F x2 = x * x;
  F p = F{} + kA13;
  p = p * x2 + kA11;
  p = p * x2 + kA9;
  p = p * x2 + kA7;
  p = p * x2 + kA5;
  p = p * x2 + kA3;
  p = p * x2 + kA1;
  F q = F{} + kB8;
  q = q * x2 + kB6;
  q = q * x2 + kB4;
  q = q * x2 + kB2;
  q = q * x2 + kB0;
  return x * (p / q);  // not (x * p) / q: x * p would underflow for tiny x
}

template <class F>
inline F gelu_f32(F x) {
  const F h = 0.5f * x;
  return h + h * erf_f32(x * erf_coef::kSqrtHalf);
}

}  // namespace kiln::kernels::gemm
