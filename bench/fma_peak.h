// The core's FP32 FMA peak, measured: a loop of independent vector FMAs per ISA width (AVX-512,
// AVX2, NEON), one thread, best of 5 by thread CPU time (on a shared machine wall time would
// count the time other processes hold the core). kAcc accumulators cover FMA latency x pipes
// (4 x 2 on Zen 4/5 and Golden Cove, 4 x 2 on Cortex-A72/A76), so the loop is throughput-bound.
// Header-only so that every benchmark judges itself against the same loop.
#pragma once

#include <time.h>

#include <algorithm>
#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#include "kiln/kernels/gemm/variant_table.h"

namespace kiln::bench {

constexpr int64_t kPeakIters = 20'000'000;

inline double thread_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Best FLOP/s of `loop` (which does `flops` FLOP) over 5 repetitions.
template <class F>
double best_rate(F&& loop, double flops) {
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const double t0 = thread_seconds();
    volatile float sink = loop();
    (void)sink;
    best = std::max(best, flops / (thread_seconds() - t0));
  }
  return best;
}

#if defined(__x86_64__)
__attribute__((target("avx512f"), noinline)) inline float fma_loop_avx512() {
  constexpr int kAcc = 16;
  __m512 acc[kAcc];
  for (int j = 0; j < kAcc; ++j) acc[j] = _mm512_set1_ps(0.001f * j);
  const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < kPeakIters; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < kAcc; ++j) acc[j] = _mm512_fmadd_ps(acc[j], m, a);
  __m512 s = acc[0];
  for (int j = 1; j < kAcc; ++j) s = _mm512_add_ps(s, acc[j]);
  float out[16];
  _mm512_storeu_ps(out, s);
  return out[0] + out[15];
}
__attribute__((target("avx2,fma"), noinline)) inline float fma_loop_avx2() {
  constexpr int kAcc = 12;
  __m256 acc[kAcc];
  for (int j = 0; j < kAcc; ++j) acc[j] = _mm256_set1_ps(0.001f * j);
  const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < kPeakIters; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < kAcc; ++j) acc[j] = _mm256_fmadd_ps(acc[j], m, a);
  __m256 s = acc[0];
  for (int j = 1; j < kAcc; ++j) s = _mm256_add_ps(s, acc[j]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[7];
}
// FLOP/s, or 0 when the CPU lacks the ISA.
inline double fma_peak_avx512() {
  namespace cpu = kiln::kernels::gemm::cpu;
  return cpu::avx512f() ? best_rate(fma_loop_avx512, 16.0 * 2 * 16 * kPeakIters) : 0;
}
inline double fma_peak_avx2() {
  namespace cpu = kiln::kernels::gemm::cpu;
  return cpu::avx2_fma() ? best_rate(fma_loop_avx2, 12.0 * 2 * 8 * kPeakIters) : 0;
}
#elif defined(__aarch64__)
__attribute__((noinline)) inline float fma_loop_neon() {
  constexpr int kAcc = 16;
  float32x4_t acc[kAcc];
  for (int j = 0; j < kAcc; ++j) acc[j] = vdupq_n_f32(0.001f * j);
  const float32x4_t m = vdupq_n_f32(0.999999f), a = vdupq_n_f32(1e-7f);
  for (int64_t i = 0; i < kPeakIters; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < kAcc; ++j) acc[j] = vfmaq_f32(a, acc[j], m);
  float32x4_t s = acc[0];
  for (int j = 1; j < kAcc; ++j) s = vaddq_f32(s, acc[j]);
  return vaddvq_f32(s);
}
inline double fma_peak_neon() {
  return best_rate(fma_loop_neon, 16.0 * 2 * 4 * kPeakIters);
}
#endif

}  // namespace kiln::bench
