// FP32 packed GEMM on BERT-base shapes, one thread, for every variant this CPU runs. Reports
// GFLOP/s ("GFLOPS") and the fraction of the core's FMA peak ("peak"), where the peak for each
// vector width is measured in this binary by a pure-FMA loop (bench/fma_peak.h) before the
// benchmarks run: the kernel's own ISA for SIMD variants, the widest available for "ref".
// "B_GBps" is the packed weight's bytes per second: at M = 16 each weight float feeds only 32 FLOP
// (8 FLOP per byte), so compare it with the read bandwidth printed at start-up (a 9 MiB buffer,
// L3-resident like B here; a 256 MiB one, from DRAM like a whole model's weights) to see how close
// those shapes are to being memory bound.
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

#include "fma_peak.h"
#include "kiln/kernels/gemm/gemm.h"

namespace {

namespace gemm = kiln::kernels::gemm;

#if defined(__x86_64__)
using kiln::bench::fma_peak_avx2;
using kiln::bench::fma_peak_avx512;
#elif defined(__aarch64__)
using kiln::bench::fma_peak_neon;
#endif

// Measured peak (FLOP/s) the variant is judged against: the one of the ISA its CPU test asks for.
double peak_for(const gemm::Variant& v) {
#if defined(__x86_64__)
  static const double avx512 = fma_peak_avx512(), avx2 = fma_peak_avx2();
  static const bool printed =
      std::printf("measured FMA peak, 1 core: avx512 %.1f GFLOP/s, avx2 %.1f GFLOP/s\n",
                  avx512 * 1e-9, avx2 * 1e-9) > 0;
  (void)printed;
  if (v.supported == gemm::cpu::avx512f) return avx512;
  if (v.supported == gemm::cpu::avx2_fma) return avx2;
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

// Read bandwidth (bytes/s) over a `bytes` buffer: best of 5 passes by thread CPU time, after one
// pass that faults the pages in. An integer sum, which the compiler vectorises at any -march; 16
// independent lanes so that the adds' latency does not bound it (one chain measured 52 GB/s from
// L3 where AVX-512 loads read 120).
double read_bandwidth(size_t bytes) {
  constexpr size_t kLanes = 16;
  std::vector<uint64_t> buf(bytes / 8 / kLanes * kLanes, 1);
  volatile uint64_t sink = 0;
  double best = 0;
  for (int rep = 0; rep < 6; ++rep) {
    const double t0 = kiln::bench::thread_seconds();
    uint64_t s[kLanes] = {};
    for (size_t i = 0; i < buf.size(); i += kLanes)
      for (size_t j = 0; j < kLanes; ++j) s[j] += buf[i + j];
    for (size_t j = 0; j < kLanes; ++j) sink = sink + s[j];
    if (rep > 0) best = std::max(best, bytes / (kiln::bench::thread_seconds() - t0));
  }
  return best;
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
  const double peak = peak_for(*v);
  if (peak > 0)
    state.counters["peak"] =
        benchmark::Counter(flops / peak, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["B_GBps"] = benchmark::Counter(gemm::packed_b_floats(s.K, s.N) * 4e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
  std::free(packed);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const auto& variants = gemm::gemm_f32_table();
  peak_for(variants.chosen());  // measure (and print) the peaks before any benchmark runs
  std::printf("measured read bandwidth, 1 core: 9 MiB %.1f GB/s, 256 MiB %.1f GB/s\n",
              read_bandwidth(9 << 20) * 1e-9, read_bandwidth(256 << 20) * 1e-9);
  std::printf("default variant: %s\n", variants.chosen().name);
  const Shape shapes[] = {
      {128, 768, 768, false},  {128, 768, 3072, false}, {128, 3072, 768, false},
      {128, 768, 2304, false}, {512, 768, 768, false},  {512, 768, 3072, false},
      {512, 3072, 768, false}, {512, 768, 2304, false}, {16, 768, 768, false},
      {16, 768, 3072, false},  {16, 3072, 768, false},  {16, 768, 2304, false},
      {128, 768, 3072, true},
  };
  for (const gemm::Variant& v : variants) {
    if (!v.supported()) continue;
    for (const Shape& s : shapes) {
      const std::string name = std::string("gemm_f32/") + v.name + "/M" + std::to_string(s.M) +
                               "_K" + std::to_string(s.K) + "_N" + std::to_string(s.N) +
                               (s.gelu ? "_bias_gelu" : "_bias");
      benchmark::RegisterBenchmark(name.c_str(), bm_gemm, &v, s)->Unit(benchmark::kMicrosecond);
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
