// Fluent tester for the packed FP32 GEMM (after XNNPACK's GemmMicrokernelTester): describe a
// problem, run one variant (any schedule) through gemm_f32_packed_with, compare with a double
// precision reference, and check that nothing outside C's M x N block was written.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "kiln/backend.h"
#include "kiln/kernels/gemm/gemm.h"

namespace kiln::kernels::gemm::testing {

// kiln_backend whose parallel_for runs contiguous chunks on std::threads (like the runtime pool).
class ThreadBackend {
 public:
  explicit ThreadBackend(int threads) : threads_(threads) {
    be_ = kiln_backend{KILN_ABI_VERSION, threads, this, &ThreadBackend::parallel_for};
  }
  const kiln_backend* get() const { return threads_ > 1 ? &be_ : nullptr; }
  // Work items of the last parallel_for (0 = never called).
  int64_t last_items() const { return last_items_; }

 private:
  static void parallel_for(void* pool, int64_t n, int64_t grain, kiln_task_fn fn, void* ctx) {
    static_cast<ThreadBackend*>(pool)->last_items_ = n;
    const int threads = static_cast<ThreadBackend*>(pool)->threads_;
    const int64_t chunks = std::min<int64_t>(threads, (n + grain - 1) / grain);
    const int64_t chunk = (n + chunks - 1) / chunks;
    std::vector<std::thread> ts;
    for (int64_t b = chunk; b < n; b += chunk) ts.emplace_back(fn, ctx, b, std::min(n, b + chunk));
    fn(ctx, 0, std::min(n, chunk));
    for (auto& t : ts) t.join();
  }
  int threads_;
  int64_t last_items_ = 0;
  kiln_backend be_;
};

inline double gelu_f64(double x) {
  return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
}

class GemmTester {
 public:
  // Setters, one line each (clang-format would spread them over four).
  // clang-format off
  GemmTester& m(int64_t v) { m_ = v; return *this; }
  GemmTester& n(int64_t v) { n_ = v; return *this; }
  GemmTester& k(int64_t v) { k_ = v; return *this; }
  GemmTester& lda(int64_t v) { lda_ = v; return *this; }  // 0 = k
  GemmTester& ldc(int64_t v) { ldc_ = v; return *this; }  // 0 = n
  GemmTester& ldr(int64_t v) { ldr_ = v; return *this; }  // 0 = n
  GemmTester& bias(bool v = true) { bias_ = v; return *this; }
  GemmTester& gelu(bool v = true) { gelu_ = v; return *this; }
  GemmTester& residual(bool v = true) { residual_ = v; return *this; }
  GemmTester& transposed_b(bool v = true) { trans_b_ = v; return *this; }
  // residual = C itself (the in-place residual add): C starts as the residual, ldr = ldc.
  GemmTester& residual_in_place(bool v = true) { in_place_ = residual_ = v; return *this; }
  GemmTester& threads(int v) { threads_ = v; return *this; }
  GemmTester& seed(uint32_t v) { seed_ = v; return *this; }
  // clang-format on

  void test(const Variant& v) const { test(v.kernels(), v.schedule); }

  void test(const KernelTable& kt, const Schedule& s) const {
    const int64_t lda = lda_ ? lda_ : k_, ldc = ldc_ ? ldc_ : n_;
    const int64_t ldr = in_place_ ? ldc : (ldr_ ? ldr_ : n_);
    std::mt19937 g(seed_);
    std::uniform_real_distribution<float> d(-1.f, 1.f);
    auto fill = [&](std::vector<float>& x) {
      for (auto& e : x) e = d(g);
    };
    std::vector<float> A(std::max<int64_t>(1, m_ * lda)), B(std::max<int64_t>(1, k_ * n_)),
        bias(n_), res(m_ * ldr);
    fill(A), fill(B), fill(bias), fill(res);
    // Packed B from a 64-byte aligned buffer, as model.params provides.
    const size_t floats = packed_b_floats(k_, n_) + 16;
    std::vector<float> packed_store(floats + 16, std::nanf(""));
    float* packed = packed_store.data();
    while (reinterpret_cast<uintptr_t>(packed) % 64) ++packed;
    pack_b_f32(B.data(), k_, n_, trans_b_, packed);
    const float kSentinel = -12345.f;
    std::vector<float> C(m_ * ldc, kSentinel);
    if (in_place_) C = res;
    Epilogue ep;
    ep.bias = bias_ ? bias.data() : nullptr;
    ep.residual = in_place_ ? C.data() : residual_ ? res.data() : nullptr;
    ep.ldr = ldr;
    ep.gelu = gelu_;
    ThreadBackend be(threads_);
    gemm_f32_packed_with(kt, s, be.get(), m_, n_, k_, A.data(), lda, packed, C.data(), ldc, ep);

    int failures = 0;
    for (int64_t i = 0; i < m_; ++i) {
      for (int64_t j = 0; j < ldc; ++j) {
        const float got = C[i * ldc + j];
        if (j >= n_) {
          ASSERT_EQ(got, in_place_ ? res[i * ldc + j] : kSentinel)
              << "wrote past N at (" << i << ", " << j << ") " << what();
          continue;
        }
        double acc = 0, mag = 0;
        for (int64_t p = 0; p < k_; ++p) {
          const double b = trans_b_ ? B[j * k_ + p] : B[p * n_ + j];
          acc += double(A[i * lda + p]) * b;
          mag += std::fabs(double(A[i * lda + p]) * b);
        }
        if (bias_) acc += bias[j], mag += std::fabs(bias[j]);
        // float rounding of a K-term sum: |err| <= ~K eps sum|terms|; GELU's slope is <= 1.13
        // and its own error is ~1e-6 of its terms (gelu.h).
        double tol = 2.4e-7 * (k_ + 2) * mag + 1e-30;
        if (gelu_) {
          tol = tol * 1.13 + 2e-6 * (std::fabs(gelu_f64(acc)) + 0.5 * std::fabs(acc));
          acc = gelu_f64(acc);
        }
        if (residual_) acc += res[i * ldr + j], tol += 1.2e-7 * (std::fabs(acc) + 1);
        if (!(std::fabs(got - acc) <= tol) && ++failures <= 5)
          ADD_FAILURE() << "C(" << i << ", " << j << ") = " << got << ", want " << acc << " (tol "
                        << tol << ") " << what();
      }
    }
    ASSERT_EQ(failures, 0) << what();
  }

 private:
  std::string what() const {
    return "[M=" + std::to_string(m_) + " N=" + std::to_string(n_) + " K=" + std::to_string(k_) +
           " lda=" + std::to_string(lda_) + " ldc=" + std::to_string(ldc_) +
           " bias=" + std::to_string(bias_) + " gelu=" + std::to_string(gelu_) +
           " residual=" + std::to_string(residual_) + (in_place_ ? " (in place)" : "") +
           " transB=" + std::to_string(trans_b_) + " threads=" + std::to_string(threads_) + "]";
  }
  int64_t m_ = 1, n_ = 1, k_ = 1, lda_ = 0, ldc_ = 0, ldr_ = 0;
  bool bias_ = false, gelu_ = false, residual_ = false, trans_b_ = false, in_place_ = false;
  int threads_ = 1;
  uint32_t seed_ = 1;
};

// The names of a dispatch table's rows: the parameters of the every-variant test suites.
template <class Kernels>
std::vector<const char*> variant_names(const VariantTable<Kernels>& table) {
  std::vector<const char*> names;
  for (const VariantRow<Kernels>& v : table) names.push_back(v.name);
  return names;
}

}  // namespace kiln::kernels::gemm::testing
