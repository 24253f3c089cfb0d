// Fused attention_f32 vs the unfused chain the exporter's graph runs (Transpose q/k/v, MatMul,
// Div, mask Add, Softmax, MatMul, Transpose back, with the reference kernels), one encoder layer
// (B = 1, [1, 1, 1, S] padding mask over the last quarter, packed QKV), one thread: BERT-base
// (12 heads of 64) at S = 128 and 384, the small config (4 heads of 64) and MiniLM (12 heads of
// 32) at S = 128.
// Reports GFLOP/s ("GFLOPS", 4 * heads * S^2 * hd per run) and the fraction of the core's FMA
// peak ("peak") for the vector width this binary was built for, measured in this binary by
// bench/fma_peak.h before the benchmarks run. Built twice: -march=native and -march=x86-64-v3
// (kiln_attention_f32_bench_avx2), because x86 CI machines may lack AVX-512. Google Benchmark's
// CPU time is the figure to read on a shared machine.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "fma_peak.h"
#include "kiln/kernels/kernels.h"

namespace {

namespace kk = kiln::kernels;

// FLOP/s of one core for this binary's vector width (0 if unknown).
double peak() {
  static const double p = [] {
#if defined(__AVX512F__)
    const char* isa = "avx512";
    const double r = kiln::bench::fma_peak_avx512();
#elif defined(__AVX2__)
    const char* isa = "avx2";
    const double r = kiln::bench::fma_peak_avx2();
#elif defined(__aarch64__)
    const char* isa = "neon";
    const double r = kiln::bench::fma_peak_neon();
#else
    const char* isa = "none";
    const double r = 0;
#endif
    std::printf("kernel ISA %s (MatmulVec %d floats), measured FMA peak, 1 core: %.1f GFLOP/s\n",
                isa, kk::kMatmulVecFloats, r * 1e-9);
    return r;
  }();
  return p;
}

struct Data {
  int64_t s, heads, hd, hidden;
  std::vector<float> qkv, mask, out;
  Data(int64_t seq, int64_t num_heads, int64_t head_size)
      : s(seq),
        heads(num_heads),
        hd(head_size),
        hidden(num_heads * head_size),
        qkv(seq * 3 * hidden),
        mask(seq, 0.0f),
        out(seq * hidden) {
    std::mt19937 rng(1);
    std::normal_distribution<float> d(0.0f, 1.0f);
    for (float& x : qkv) x = d(rng);
    for (int64_t j = seq * 3 / 4; j < seq; ++j) mask[j] = -3.4028234663852886e+38f;
  }
  double flops() const { return 4.0 * heads * s * s * hd; }
};

void set_counters(benchmark::State& state, double flops) {
  state.counters["GFLOPS"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  if (peak() > 0)
    state.counters["peak"] =
        benchmark::Counter(flops / peak(), benchmark::Counter::kIsIterationInvariantRate);
}

// Args: seq, heads.
void BM_attention_fused(benchmark::State& state) {
  Data d(state.range(0), state.range(1), state.range(2));
  const int64_t md[] = {1, 1, 1, d.s}, h = d.hidden;
  const float* q = d.qkv.data();
  for (auto _ : state) {
    kk::attention_f32(nullptr, q, q + h, q + 2 * h, 3 * h, 3 * h, 3 * h, d.mask.data(), md,
                      d.out.data(), h, 1, d.s, d.heads, d.hd, 1.0f / std::sqrt(float(d.hd)));
    benchmark::DoNotOptimize(d.out.data());
  }
  set_counters(state, d.flops());
}

// The unfused graph on separate q, k, v [1, S, H] (what the projections produce unpacked).
void BM_attention_unfused(benchmark::State& state) {
  Data d(state.range(0), state.range(1), state.range(2));
  const int64_t s = d.s, nh = d.heads, h = d.hidden, hd = d.hd;
  std::vector<float> q(s * h), k(s * h), v(s * h);
  for (int64_t i = 0; i < s * h; ++i) {
    const int64_t r = i / h, c = i % h;
    q[i] = d.qkv[r * 3 * h + c];
    k[i] = d.qkv[r * 3 * h + h + c];
    v[i] = d.qkv[r * 3 * h + 2 * h + c];
  }
  std::vector<float> qh(s * h), kt(s * h), vh(s * h), ctx(s * h);
  std::vector<float> sc(nh * s * s), sc2(nh * s * s);
  const int64_t split[] = {1, s, nh, hd}, heads[] = {1, nh, s, hd};
  const int64_t ktd[] = {1, nh, hd, s}, scd[] = {1, nh, s, s}, md[] = {1, 1, 1, s};
  const int64_t one[] = {1}, perm_q[] = {0, 2, 1, 3}, perm_k[] = {0, 2, 3, 1};
  const float root = std::sqrt(float(hd));
  for (auto _ : state) {
    kk::transpose(q.data(), split, 4, perm_q, qh.data(), nullptr);
    kk::transpose(k.data(), split, 4, perm_k, kt.data(), nullptr);
    kk::transpose(v.data(), split, 4, perm_q, vh.data(), nullptr);
    kk::matmul_f32(qh.data(), heads, 4, kt.data(), ktd, 4, sc.data(), nullptr);
    kk::binary<kk::op::Div>(sc.data(), scd, 4, &root, one, 0, sc2.data(), scd, 4, nullptr);
    kk::binary<kk::op::Add>(sc2.data(), scd, 4, d.mask.data(), md, 4, sc.data(), scd, 4, nullptr);
    kk::softmax_f32(sc.data(), sc2.data(), nh * s, s, 1, nullptr);
    kk::matmul_f32(sc2.data(), scd, 4, vh.data(), heads, 4, ctx.data(), nullptr);
    kk::transpose(ctx.data(), heads, 4, perm_q, d.out.data(), nullptr);
    benchmark::DoNotOptimize(d.out.data());
  }
  set_counters(state, d.flops());
}

// BERT-base (hidden 768) at S = 128 and 384, the small config (hidden 256) at S = 128, MiniLM
// (12 heads of 32) at S = 128.
void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"seq", "heads", "hd"})
      ->Args({128, 12, 64})
      ->Args({384, 12, 64})
      ->Args({128, 4, 64})
      ->Args({128, 12, 32});
}

BENCHMARK(BM_attention_fused)->Apply(shapes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_attention_unfused)->Apply(shapes)->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  peak();  // measure (and print) the peak before any benchmark runs
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
