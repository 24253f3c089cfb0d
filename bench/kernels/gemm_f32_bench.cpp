// FP32 packed GEMM on BERT-base shapes, one thread, for every variant this CPU runs. Reports
// GFLOP/s ("GFLOPS") and the fraction of the core's FMA peak ("peak"), where the peak for each
// vector width is measured in this binary by a pure-FMA loop (fma_peak_* below) before the
// benchmarks run: the kernel's own ISA for SIMD variants, the widest available for "ref".
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#include "kiln/kernels/gemm/gemm.h"

namespace {

namespace gemm = kiln::kernels::gemm;

// FLOP/s of a loop of independent FMAs: kAcc accumulators cover latency x pipes (4 x 2 on Zen 4/5,
// Golden Cove; 4 x 2 on Cortex-A72/A76). Returns 0 when the CPU lacks the ISA.
constexpr int64_t kPeakIters = 20'000'000;

// Thread CPU time, like Google Benchmark's default time for the GEMM rates: on a shared machine
// wall time would count the time other processes hold the core.
double thread_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

template <class F>
double best_rate(F&& loop, double flops) {
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const double t0 = thread_seconds();
    benchmark::DoNotOptimize(loop());
    best = std::max(best, flops / (thread_seconds() - t0));
  }
  return best;
}

#if defined(__x86_64__)
__attribute__((target("avx512f"), noinline)) float fma_loop_avx512() {
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
__attribute__((target("avx2,fma"), noinline)) float fma_loop_avx2() {
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
double fma_peak_avx512() {
  return gemm::cpu::avx512f() ? best_rate(fma_loop_avx512, 16.0 * 2 * 16 * kPeakIters) : 0;
}
double fma_peak_avx2() {
  return gemm::cpu::avx2_fma() ? best_rate(fma_loop_avx2, 12.0 * 2 * 8 * kPeakIters) : 0;
}
#elif defined(__aarch64__)
__attribute__((noinline)) float fma_loop_neon() {
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
double fma_peak_neon() {
  return best_rate(fma_loop_neon, 16.0 * 2 * 4 * kPeakIters);
}
#endif

// Measured peak (FLOP/s) the variant is judged against.
double peak_for(const std::string& variant) {
#if defined(__x86_64__)
  static const double avx512 = fma_peak_avx512(), avx2 = fma_peak_avx2();
  static const bool printed =
      std::printf("measured FMA peak, 1 core: avx512 %.1f GFLOP/s, avx2 %.1f GFLOP/s\n",
                  avx512 * 1e-9, avx2 * 1e-9) > 0;
  (void)printed;
  if (variant == "avx512") return avx512;
  if (variant == "avx2") return avx2;
  return std::max(avx512, avx2);
#elif defined(__aarch64__)
  static const double neon = fma_peak_neon();
  static const bool printed =
      std::printf("measured FMA peak, 1 core: neon %.1f GFLOP/s\n", neon * 1e-9) > 0;
  (void)printed;
  return neon;
#else
  return 0;
#endif
}

struct Shape {
  int64_t M, K, N;
  bool gelu;
};

void bm_gemm(benchmark::State& state, const gemm::Variant* v, Shape s) {
  std::mt19937 g(42);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> A(s.M * s.K), B(s.K * s.N), bias(s.N), C(s.M * s.N);
  for (auto& x : A) x = d(g);
  for (auto& x : B) x = d(g);
  for (auto& x : bias) x = d(g);
  float* packed = static_cast<float*>(
      std::aligned_alloc(64, (gemm::packed_b_floats(s.K, s.N) * 4 + 63) / 64 * 64));
  gemm::pack_b_f32(B.data(), s.K, s.N, false, packed);
  gemm::Epilogue ep;
  ep.bias = bias.data();
  ep.gelu = s.gelu;
  const gemm::KernelTable& kt = v->kernels();
  for (auto _ : state) {
    gemm::gemm_f32_packed_with(kt, v->schedule, nullptr, s.M, s.N, s.K, A.data(), s.K, packed,
                               C.data(), s.N, ep);
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * s.M * s.N * s.K;
  state.counters["GFLOPS"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  const double peak = peak_for(v->name);
  if (peak > 0)
    state.counters["peak"] =
        benchmark::Counter(flops / peak, benchmark::Counter::kIsIterationInvariantRate);
  std::free(packed);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  int n = 0;
  const gemm::Variant* vs = gemm::gemm_f32_variants(&n);
  peak_for("");  // measure (and print) the peaks before any benchmark runs
  std::printf("default variant: %s\n", gemm::gemm_f32_variant_name());
  const Shape shapes[] = {
      {128, 768, 768, false},  {128, 768, 3072, false}, {128, 3072, 768, false},
      {128, 768, 2304, false}, {512, 768, 768, false},  {512, 768, 3072, false},
      {512, 3072, 768, false}, {512, 768, 2304, false}, {16, 768, 768, false},
      {16, 768, 3072, false},  {16, 3072, 768, false},  {16, 768, 2304, false},
      {128, 768, 3072, true},
  };
  for (int i = 0; i < n; ++i) {
    const gemm::Variant* v = &vs[i];
    if (!v->supported()) continue;
    for (const Shape& s : shapes) {
      const std::string name = std::string("gemm_f32/") + v->name + "/M" + std::to_string(s.M) +
                               "_K" + std::to_string(s.K) + "_N" + std::to_string(s.N) +
                               (s.gelu ? "_bias_gelu" : "_bias");
      benchmark::RegisterBenchmark(name.c_str(), bm_gemm, v, s)->Unit(benchmark::kMicrosecond);
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
