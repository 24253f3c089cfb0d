// Fused attention_f32 vs the unfused chain the exporter's graph runs (Transpose q/k/v, MatMul,
// Div, mask Add, Softmax, MatMul, Transpose back, with the reference kernels), one BERT-base
// layer (12 heads of 64, B = 1, [1, 1, 1, S] padding mask), one thread. Google Benchmark's CPU
// time is the figure to read on a shared machine.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "kiln/kernels/kernels.h"

namespace {

namespace kk = kiln::kernels;

constexpr int64_t kHeads = 12, kHd = 64, kHidden = kHeads * kHd;

struct Data {
  int64_t s;
  std::vector<float> qkv, mask, out;
  explicit Data(int64_t seq) : s(seq), qkv(seq * 3 * kHidden), mask(seq, 0.0f), out(seq * kHidden) {
    std::mt19937 rng(1);
    std::normal_distribution<float> d(0.0f, 1.0f);
    for (float& x : qkv) x = d(rng);
    for (int64_t j = seq * 3 / 4; j < seq; ++j) mask[j] = -3.4028234663852886e+38f;
  }
};

void BM_attention_fused(benchmark::State& state) {
  Data d(state.range(0));
  const int64_t md[] = {1, 1, 1, d.s};
  const float* q = d.qkv.data();
  for (auto _ : state) {
    kk::attention_f32(nullptr, q, q + kHidden, q + 2 * kHidden, 3 * kHidden, 3 * kHidden,
                      3 * kHidden, d.mask.data(), md, d.out.data(), kHidden, 1, d.s, kHeads, kHd,
                      0.125f);
    benchmark::DoNotOptimize(d.out.data());
  }
  state.counters["GFLOPS"] = benchmark::Counter(4.0 * kHeads * d.s * d.s * kHd,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

// The unfused graph on separate q, k, v [1, S, 768] (what the projections produce unpacked).
void BM_attention_unfused(benchmark::State& state) {
  Data d(state.range(0));
  const int64_t s = d.s;
  std::vector<float> q(s * kHidden), k(s * kHidden), v(s * kHidden);
  for (int64_t i = 0; i < s * kHidden; ++i) {
    const int64_t r = i / kHidden, c = i % kHidden;
    q[i] = d.qkv[r * 3 * kHidden + c];
    k[i] = d.qkv[r * 3 * kHidden + kHidden + c];
    v[i] = d.qkv[r * 3 * kHidden + 2 * kHidden + c];
  }
  std::vector<float> qh(s * kHidden), kt(s * kHidden), vh(s * kHidden), ctx(s * kHidden);
  std::vector<float> sc(kHeads * s * s), sc2(kHeads * s * s);
  const int64_t split[] = {1, s, kHeads, kHd}, heads[] = {1, kHeads, s, kHd};
  const int64_t ktd[] = {1, kHeads, kHd, s}, scd[] = {1, kHeads, s, s}, md[] = {1, 1, 1, s};
  const int64_t one[] = {1}, perm_q[] = {0, 2, 1, 3}, perm_k[] = {0, 2, 3, 1};
  const float eight = 8.0f;
  for (auto _ : state) {
    kk::transpose(q.data(), split, 4, perm_q, qh.data(), nullptr);
    kk::transpose(k.data(), split, 4, perm_k, kt.data(), nullptr);
    kk::transpose(v.data(), split, 4, perm_q, vh.data(), nullptr);
    kk::matmul_f32(qh.data(), heads, 4, kt.data(), ktd, 4, sc.data(), nullptr);
    kk::binary<kk::op::Div>(sc.data(), scd, 4, &eight, one, 0, sc2.data(), scd, 4, nullptr);
    kk::binary<kk::op::Add>(sc2.data(), scd, 4, d.mask.data(), md, 4, sc.data(), scd, 4, nullptr);
    kk::softmax_f32(sc.data(), sc2.data(), kHeads * s, s, 1, nullptr);
    kk::matmul_f32(sc2.data(), scd, 4, vh.data(), heads, 4, ctx.data(), nullptr);
    kk::transpose(ctx.data(), heads, 4, perm_q, d.out.data(), nullptr);
    benchmark::DoNotOptimize(d.out.data());
  }
  state.counters["GFLOPS"] =
      benchmark::Counter(4.0 * kHeads * s * s * kHd, benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK(BM_attention_fused)->Arg(128)->Arg(384)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_attention_unfused)->Arg(128)->Arg(384)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
