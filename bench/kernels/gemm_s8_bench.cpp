// INT8 GEMM (s8_dispatch.h) on BERT-base shapes, one thread, for every variant this CPU runs.
// Reports GOP/s ("GOPS", 2 ops per multiply-add, quantizing A included) and the fraction of the
// core's int8 multiply-add peak ("peak"), measured in this binary before the benchmarks run:
//   avx512vnni: a loop of independent vpdpbusd zmm (64 multiply-adds each);
//   avxvnni:    the same with the 256-bit VEX vpdpbusd (32);
//   avx2:       a loop of independent vpmaddubsw + vpmaddwd(1) + vpaddd ymm (32 multiply-adds),
//               the u8 x s8 sequence most AVX2 int8 GEMMs use (it saturates, see the docs; the
//               avx2 kernel uses vpmaddwd on int16, whose own loop is printed too);
//   ref:        the best of the above.
// "quantize_rows/<variant>/M_K" times the variant's activation quantization alone (part of every
// GEMM call above), with its input bandwidth (floats read).
// Before the benchmarks it also prints the activation-scheme measurement behind s8_quantize.h's
// choice (per row vs per tensor, asymmetric vs symmetric, 8 vs 7 bits): relative error of the
// quantized GEMM against the exact one on BERT-like inputs.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "fma_peak.h"
#include "kiln/kernels/gemm/s8_dispatch.h"

namespace {

namespace gemm = kiln::kernels::gemm;
using kiln::bench::best_rate;
constexpr int64_t kIters = 20'000'000;

#if defined(__x86_64__)
// The peak loops are inline assembly: written with intrinsics, GCC 12 copies and stores the
// accumulators on every iteration (the same register-allocation trouble the kernels avoid, see
// s8_simd_template.inc), which understates the peak. Operand values do not affect the timing.
// Accumulator counts cover latency x pipes (vpdpbusd zmm: 24; ymm and AVX2: all 16 registers).
__attribute__((target("avx512f,avx512bw,avx512vnni"), noinline)) float vnni_loop() {
  int64_t n = kIters;
  __asm__ volatile(
      "vpternlogd $0xff, %%zmm30, %%zmm30, %%zmm30\n"
      "vpabsb %%zmm30, %%zmm31\n"
      "1:\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm0\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm1\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm2\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm3\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm4\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm5\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm6\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm7\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm8\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm9\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm10\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm11\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm12\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm13\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm14\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm15\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm16\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm17\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm18\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm19\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm20\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm21\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm22\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm23\n"
      "dec %0\n"
      "jnz 1b\n"
      : "+r"(n)
      :
      : "zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9", "zmm10",
        "zmm11", "zmm12", "zmm13", "zmm14", "zmm15", "zmm16", "zmm17", "zmm18", "zmm19", "zmm20",
        "zmm21", "zmm22", "zmm23", "zmm30", "zmm31", "cc");
  return float(n);
}
__attribute__((target("avx2,avxvnni"), noinline)) float avxvnni_loop() {
  int64_t n = kIters;
  __asm__ volatile(
      "vpcmpeqd %%ymm14, %%ymm14, %%ymm14\n"
      "vpabsb %%ymm14, %%ymm15\n"
      "1:\n"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm0\n"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm1\n"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm2\n"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm3\n"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm4\n"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm5\n"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm6\n"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm7\n"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm8\n"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm9\n"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm10\n"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm11\n"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm12\n"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm13\n"
      "dec %0\n"
      "jnz 1b\n"
      : "+r"(n)
      :
      : "ymm0", "ymm1", "ymm2", "ymm3", "ymm4", "ymm5", "ymm6", "ymm7", "ymm8", "ymm9", "ymm10",
        "ymm11", "ymm12", "ymm13", "ymm14", "ymm15", "cc");
  return float(n);
}
// Six independent vpmaddubsw -> vpmaddwd(1) -> vpaddd chains (32 multiply-adds each).
__attribute__((target("avx2"), noinline)) float maddubs_loop() {
  int64_t n = kIters;
  __asm__ volatile(
      "vpcmpeqd %%ymm12, %%ymm12, %%ymm12\n"
      "vpabsb %%ymm12, %%ymm13\n"
      "vpabsw %%ymm12, %%ymm14\n"
      "1:\n"
      "vpmaddubsw %%ymm13, %%ymm12, %%ymm6\n"
      "vpmaddwd %%ymm14, %%ymm6, %%ymm6\n"
      "vpaddd %%ymm6, %%ymm0, %%ymm0\n"
      "vpmaddubsw %%ymm13, %%ymm12, %%ymm7\n"
      "vpmaddwd %%ymm14, %%ymm7, %%ymm7\n"
      "vpaddd %%ymm7, %%ymm1, %%ymm1\n"
      "vpmaddubsw %%ymm13, %%ymm12, %%ymm8\n"
      "vpmaddwd %%ymm14, %%ymm8, %%ymm8\n"
      "vpaddd %%ymm8, %%ymm2, %%ymm2\n"
      "vpmaddubsw %%ymm13, %%ymm12, %%ymm9\n"
      "vpmaddwd %%ymm14, %%ymm9, %%ymm9\n"
      "vpaddd %%ymm9, %%ymm3, %%ymm3\n"
      "vpmaddubsw %%ymm13, %%ymm12, %%ymm10\n"
      "vpmaddwd %%ymm14, %%ymm10, %%ymm10\n"
      "vpaddd %%ymm10, %%ymm4, %%ymm4\n"
      "vpmaddubsw %%ymm13, %%ymm12, %%ymm11\n"
      "vpmaddwd %%ymm14, %%ymm11, %%ymm11\n"
      "vpaddd %%ymm11, %%ymm5, %%ymm5\n"
      "dec %0\n"
      "jnz 1b\n"
      : "+r"(n)
      :
      : "ymm0", "ymm1", "ymm2", "ymm3", "ymm4", "ymm5", "ymm6", "ymm7", "ymm8", "ymm9", "ymm10",
        "ymm11", "ymm12", "ymm13", "ymm14", "cc");
  return float(n);
}
// Six independent vpmaddwd -> vpaddd chains (16 multiply-adds each).
__attribute__((target("avx2"), noinline)) float maddwd_loop() {
  int64_t n = kIters;
  __asm__ volatile(
      "vpcmpeqd %%ymm12, %%ymm12, %%ymm12\n"
      "vpabsw %%ymm12, %%ymm13\n"
      "1:\n"
      "vpmaddwd %%ymm13, %%ymm12, %%ymm6\n"
      "vpaddd %%ymm6, %%ymm0, %%ymm0\n"
      "vpmaddwd %%ymm13, %%ymm12, %%ymm7\n"
      "vpaddd %%ymm7, %%ymm1, %%ymm1\n"
      "vpmaddwd %%ymm13, %%ymm12, %%ymm8\n"
      "vpaddd %%ymm8, %%ymm2, %%ymm2\n"
      "vpmaddwd %%ymm13, %%ymm12, %%ymm9\n"
      "vpaddd %%ymm9, %%ymm3, %%ymm3\n"
      "vpmaddwd %%ymm13, %%ymm12, %%ymm10\n"
      "vpaddd %%ymm10, %%ymm4, %%ymm4\n"
      "vpmaddwd %%ymm13, %%ymm12, %%ymm11\n"
      "vpaddd %%ymm11, %%ymm5, %%ymm5\n"
      "dec %0\n"
      "jnz 1b\n"
      : "+r"(n)
      :
      : "ymm0", "ymm1", "ymm2", "ymm3", "ymm4", "ymm5", "ymm6", "ymm7", "ymm8", "ymm9", "ymm10",
        "ymm11", "ymm12", "ymm13", "cc");
  return float(n);
}
// Ops/s (2 per multiply-add), 0 when the CPU lacks the ISA. The loops' inputs are constants, but
// the compiler cannot fold the accumulation chains.
double vnni_peak() {
  return gemm::cpu::avx512vnni() ? best_rate(vnni_loop, 24.0 * 128 * kIters) : 0;
}
double avxvnni_peak() {
  return gemm::cpu::avxvnni() ? best_rate(avxvnni_loop, 14.0 * 64 * kIters) : 0;
}
double maddubs_peak() {
  return gemm::cpu::avx2_fma() ? best_rate(maddubs_loop, 6.0 * 64 * kIters) : 0;
}
double maddwd_peak() {
  return gemm::cpu::avx2_fma() ? best_rate(maddwd_loop, 6.0 * 32 * kIters) : 0;
}
#endif

// Measured peak (ops/s) the variant is judged against: the one of the ISA its CPU test asks for.
double peak_for(const gemm::S8Variant& v) {
#if defined(__x86_64__)
  static const double vnni = vnni_peak(), avxvnni = avxvnni_peak(), maddubs = maddubs_peak(),
                      maddwd = maddwd_peak();
  static const bool printed =
      std::printf(
          "measured int8 peak, 1 core: vpdpbusd zmm %.1f GOP/s, vpdpbusd ymm %.1f GOP/s, "
          "vpmaddubsw+vpmaddwd ymm %.1f GOP/s (vpmaddwd ymm alone %.1f GOP/s)\n",
          vnni * 1e-9, avxvnni * 1e-9, maddubs * 1e-9, maddwd * 1e-9) > 0;
  (void)printed;
  if (v.supported == gemm::cpu::avx512vnni) return vnni;
  if (v.supported == gemm::cpu::avxvnni) return avxvnni;
  if (v.supported == gemm::cpu::avx2_fma) return maddubs;
  return std::max(vnni, maddubs);
#else
  return 0;
#endif
}

// ---- Activation scheme measurement (plain double arithmetic, no kernels). ----

double gelu(double x) {
  return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
}

// Quantize-dequantize x (n values) with `levels` levels, asymmetric or symmetric, rne.
void fake_quant(double* x, int64_t n, bool asym, int levels) {
  double lo = 0, hi = 0;
  for (int64_t i = 0; i < n; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  if (asym) {
    const double s = (hi - lo) / (levels - 1);
    if (s <= 0) return;
    const double z = std::nearbyint(-lo / s);
    for (int64_t i = 0; i < n; ++i)
      x[i] = s * (std::clamp(std::nearbyint(x[i] / s) + z, 0.0, levels - 1.0) - z);
  } else {
    const double half = (levels - 1) / 2.0, s = std::max(-lo, hi) / std::floor(half);
    if (s <= 0) return;
    for (int64_t i = 0; i < n; ++i)
      x[i] = s * std::clamp(std::nearbyint(x[i] / s), -std::floor(half), std::floor(half));
  }
}

// Relative Frobenius error of A W with A quantized by `scheme` and W per-channel int8.
double scheme_error(const std::vector<double>& A, const std::vector<double>& W, int64_t M,
                    int64_t K, int64_t N, bool per_row, bool asym, int levels) {
  std::vector<double> Aq = A, Wq = W;
  if (per_row)
    for (int64_t m = 0; m < M; ++m) fake_quant(Aq.data() + m * K, K, asym, levels);
  else
    fake_quant(Aq.data(), M * K, asym, levels);
  std::vector<double> col(K);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < K; ++k) col[k] = W[k * N + n];
    fake_quant(col.data(), K, false, 255);
    for (int64_t k = 0; k < K; ++k) Wq[k * N + n] = col[k];
  }
  double num = 0, den = 0;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double y = 0, yq = 0;
      for (int64_t k = 0; k < K; ++k)
        y += A[m * K + k] * W[k * N + n], yq += Aq[m * K + k] * Wq[k * N + n];
      num += (y - yq) * (y - yq), den += y * y;
    }
  return std::sqrt(num / den);
}

// BERT-like GEMM inputs, M tokens x K features: LayerNorm outputs (unit variance per row, a few
// outlier features ~10x, as BERT's LayerNorm gains produce) and GELU outputs of FFN-up (per-token
// scale varying 0.5-3x). Weights N(0, 0.02^2) (BERT's initialiser).
void print_scheme_errors() {
  const int64_t M = 64, K = 768, N = 192;
  std::mt19937 g(7);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::uniform_real_distribution<double> ud(std::log(0.5), std::log(3.0));
  std::vector<double> ln(M * K), act(M * K), W(K * N);
  for (int64_t m = 0; m < M; ++m) {
    const double row_scale = std::exp(ud(g));
    for (int64_t k = 0; k < K; ++k) {
      ln[m * K + k] = nd(g) * (k % 97 == 5 ? 10.0 : 1.0);
      act[m * K + k] = gelu(row_scale * nd(g));
    }
  }
  for (auto& w : W) w = 0.02 * nd(g);
  std::printf("activation scheme, relative error of the GEMM (weights int8 per channel):\n");
  std::printf("  %-34s %-16s %-16s\n", "scheme", "LayerNorm out", "GELU out");
  struct S {
    const char* name;
    bool per_row, asym;
    int levels;
  } schemes[] = {{"per row, asymmetric int8 (chosen)", true, true, 256},
                 {"per row, symmetric int8", true, false, 255},
                 {"per tensor, asymmetric int8", false, true, 256},
                 {"per tensor, symmetric int8", false, false, 255},
                 {"per row, asymmetric 7-bit (u8<128)", true, true, 128}};
  for (const S& s : schemes)
    std::printf("  %-34s %-16.2e %-16.2e\n", s.name,
                scheme_error(ln, W, M, K, N, s.per_row, s.asym, s.levels),
                scheme_error(act, W, M, K, N, s.per_row, s.asym, s.levels));
}

// ---- Benchmarks. ----

struct Shape {
  int64_t M, K, N;
  bool gelu;
};

// group: weight scales per group of that many k (s8_pack.h), 0 per channel.
void bm_gemm_s8(benchmark::State& state, const gemm::S8Variant* v, Shape s, int64_t group) {
  std::mt19937 g(42);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> A(s.M * s.K), W(s.K * s.N), bias(s.N), C(s.M * s.N);
  for (auto& x : A) x = d(g);
  for (auto& x : W) x = d(g);
  for (auto& x : bias) x = d(g);
  const size_t bytes = (gemm::packed_b_s8_bytes(s.K, s.N, group) + 63) / 64 * 64;
  void* blob = std::aligned_alloc(64, bytes);
  gemm::quantize_pack_b_s8(W.data(), s.K, s.N, false, blob, group);
  const gemm::PackedS8 B = gemm::packed_s8_view(blob, s.K, s.N, nullptr, group);
  std::vector<uint8_t> ws(gemm::gemm_s8_workspace_bytes(s.M, s.K));
  gemm::Epilogue ep;
  ep.bias = bias.data();
  ep.gelu = s.gelu;
  const gemm::S8KernelTable& kt = v->kernels();
  for (auto _ : state) {
    gemm::gemm_s8_packed_with(kt, v->schedule, nullptr, s.M, s.N, s.K, A.data(), s.K, B, C.data(),
                              s.N, ep, ws.data());
    benchmark::ClobberMemory();
  }
  const double ops = 2.0 * s.M * s.N * s.K;
  state.counters["GOPS"] =
      benchmark::Counter(ops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  const double peak = peak_for(*v);
  if (peak > 0)
    state.counters["peak"] =
        benchmark::Counter(ops / peak, benchmark::Counter::kIsIterationInvariantRate);
  std::free(blob);
}

// The activation quantization alone (step (1) of every gemm_s8_packed call), on LayerNorm-like
// rows, with or without per-channel smoothing (compiler/quantize/smooth.h); "GBps" counts the
// floats of A read.
void bm_quantize_rows(benchmark::State& state, gemm::QuantizeRowsFn fn, gemm::ActFormat f,
                      int64_t M, int64_t K, bool smoothed) {
  std::mt19937 g(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> A(M * K), smooth(K);
  for (auto& x : A) x = nd(g);
  for (auto& s : smooth) s = 0.5f + std::fabs(nd(g));
  const int64_t ld = gemm::s8_act_row_bytes(f, K);
  std::vector<uint8_t> out(M * ld);
  std::vector<float> scale(M);
  std::vector<int32_t> zp(M);
  for (auto _ : state) {
    fn(A.data(), K, M, K, smoothed ? smooth.data() : nullptr, out.data(), ld, scale.data(),
       zp.data());
    benchmark::ClobberMemory();
  }
  state.counters["GBps"] =
      benchmark::Counter(4.0 * M * K * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Each variant's quantizer, in its activation format.
void register_quantize_benchmarks() {
  for (const gemm::S8Variant& v : gemm::gemm_s8_table()) {
    if (!v.supported()) continue;
    const gemm::S8KernelTable& kt = v.kernels();
    for (bool smoothed : {false, true})
      for (int64_t M : {16, 32, 128})
        for (int64_t K : {768, 3072}) {
          const std::string name =
              std::string(smoothed ? "quantize_rows_smoothed/" : "quantize_rows/") + v.name + "/M" +
              std::to_string(M) + "_K" + std::to_string(K);
          benchmark::RegisterBenchmark(name.c_str(), bm_quantize_rows, kt.quantize, kt.format, M, K,
                                       smoothed)
              ->Unit(benchmark::kMicrosecond);
        }
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (!std::getenv("KILN_BENCH_SKIP_SCHEMES")) print_scheme_errors();
  const auto& variants = gemm::gemm_s8_table();
  peak_for(variants.chosen());
  std::printf("default s8 variant: %s\n", variants.chosen().name);
  const Shape shapes[] = {
      {128, 768, 768, false},  {128, 768, 3072, false}, {128, 3072, 768, false},
      {128, 768, 2304, false}, {512, 768, 768, false},  {512, 768, 3072, false},
      {512, 3072, 768, false}, {512, 768, 2304, false}, {16, 768, 768, false},
      {16, 768, 3072, false},  {16, 3072, 768, false},  {16, 768, 2304, false},
      {32, 768, 768, false},   {32, 768, 3072, false},  {32, 3072, 768, false},
      {32, 768, 2304, false},  {128, 768, 3072, true},
  };
  for (const gemm::S8Variant& v : variants) {
    if (!v.supported()) continue;
    for (const Shape& s : shapes)
      for (int64_t group : {int64_t{0}, int64_t{64}, int64_t{128}}) {
        const std::string name = std::string("gemm_s8/") + v.name + "/M" + std::to_string(s.M) +
                                 "_K" + std::to_string(s.K) + "_N" + std::to_string(s.N) +
                                 (s.gelu ? "_bias_gelu" : "_bias") +
                                 (group ? "_g" + std::to_string(group) : "");
        benchmark::RegisterBenchmark(name.c_str(), bm_gemm_s8, &v, s, group)
            ->Unit(benchmark::kMicrosecond);
      }
  }
  register_quantize_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
