// Row kernels, vectorised (normalization.h, elementwise.h) vs the scalar loops they
// replaced (copied here as old_*), one thread, at BERT shapes: LayerNorm over 128 rows of 768
// (base) and 256 (small); Softmax over 12 x 128 rows of 128 and 384 keys; Erf / Gelu over the
// FFN activation (128 x 3072); Tanh over 128 x 768 and GeluTanh over 128 x 3072; and, without an
// old version, the f32 and int8 embedding gathers of 128 tokens from a 30522-row table. Built like
// generated model code (-O2 -march=native -ffp-contract=fast ...), and again for -march=x86-64-v3
// (kiln_rowops_bench_avx2). Reports bytes/s (read + write) and items/s (elements); compare old/new
// with
//   --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true
// (interleaved runs, medians) on a shared machine.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kiln/kernels/gather_s8.h"
#include "kiln/kernels/kernels.h"

namespace {

namespace kk = kiln::kernels;

std::vector<float> random_floats(int64_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(g);
  return v;
}

// ---- the scalar kernels as they were before vectorisation ----
void old_layernorm(const float* x, const float* scale, const float* bias, float* y, int64_t rows,
                   int64_t n, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* __restrict xr = x + r * n;
    float* __restrict yr = y + r * n;
    float sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += xr[i];
    const float mean = sum / static_cast<float>(n);
    float sq = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float d = xr[i] - mean;
      sq += d * d;
    }
    const float rstd = 1.0f / std::sqrt(sq / static_cast<float>(n) + eps);
    for (int64_t i = 0; i < n; ++i) {
      float v = (xr[i] - mean) * rstd;
      if (scale) v *= scale[i];
      if (bias) v += bias[i];
      yr[i] = v;
    }
  }
}

void old_softmax(const float* x, float* y, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; ++i) mx = std::max(mx, xr[i]);
    if (mx == -INFINITY) mx = 0;
    float sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float e = std::exp(xr[i] - mx);
      yr[i] = e;
      sum += e;
    }
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < n; ++i) yr[i] *= inv;
  }
}

struct OldErf {
  float operator()(float x) const { return kk::gemm::erf_f32(x); }
};
struct OldGelu {
  float operator()(float x) const { return kk::gemm::gelu_f32(x); }
};
struct OldTanh {
  float operator()(float x) const { return std::tanh(x); }
};
struct OldGeluTanh {
  float operator()(float x) const {
    return 0.5f * x * (1.0f + std::tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
  }
};
template <class Op>
void old_unary(const float* x, float* y, int64_t n) {
  const Op f;
  const float* __restrict xi = x;
  float* __restrict yo = y;
  for (int64_t i = 0; i < n; ++i) yo[i] = f(xi[i]);
}

void set_rates(benchmark::State& st, int64_t elements, int64_t bytes) {
  st.SetItemsProcessed(st.iterations() * elements);
  st.SetBytesProcessed(st.iterations() * bytes);
}

// ---- LayerNorm: args rows, n ----
template <bool kNew>
void BM_LayerNorm(benchmark::State& st) {
  const int64_t rows = st.range(0), n = st.range(1);
  auto x = random_floats(rows * n, 1, -3.f, 3.f), s = random_floats(n, 2, 0.5f, 1.5f),
       b = random_floats(n, 3, -1.f, 1.f);
  std::vector<float> y(x.size());
  for (auto _ : st) {
    if (kNew)
      kk::layernorm_f32(x.data(), s.data(), b.data(), y.data(), rows, n, 1e-12f, nullptr);
    else
      old_layernorm(x.data(), s.data(), b.data(), y.data(), rows, n, 1e-12f);
    benchmark::DoNotOptimize(y.data());
  }
  set_rates(st, rows * n, 2 * rows * n * 4);
}
BENCHMARK_TEMPLATE(BM_LayerNorm, false)->Args({128, 768})->Args({128, 256});
BENCHMARK_TEMPLATE(BM_LayerNorm, true)->Args({128, 768})->Args({128, 256});

// ---- Softmax over the last axis: args rows, n ----
template <bool kNew>
void BM_Softmax(benchmark::State& st) {
  const int64_t rows = st.range(0), n = st.range(1);
  auto x = random_floats(rows * n, 4, -8.f, 8.f);
  std::vector<float> y(x.size());
  for (auto _ : st) {
    if (kNew)
      kk::softmax_f32(x.data(), y.data(), rows, n, 1, nullptr);
    else
      old_softmax(x.data(), y.data(), rows, n);
    benchmark::DoNotOptimize(y.data());
  }
  set_rates(st, rows * n, 2 * rows * n * 4);
}
BENCHMARK_TEMPLATE(BM_Softmax, false)->Args({12 * 128, 128})->Args({12 * 128, 384});
BENCHMARK_TEMPLATE(BM_Softmax, true)->Args({12 * 128, 128})->Args({12 * 128, 384});

// ---- unary ops: arg n ----
template <class Old, class New, bool kNew>
void BM_Unary(benchmark::State& st) {
  const int64_t n = st.range(0);
  auto x = random_floats(n, 5, -5.f, 5.f);
  std::vector<float> y(x.size());
  for (auto _ : st) {
    if (kNew)
      kk::unary<New>(x.data(), y.data(), n, nullptr);
    else
      old_unary<Old>(x.data(), y.data(), n);
    benchmark::DoNotOptimize(y.data());
  }
  set_rates(st, n, 2 * n * 4);
}
BENCHMARK_TEMPLATE(BM_Unary, OldErf, kk::op::Erf, false)->Name("BM_Erf<old>")->Arg(128 * 3072);
BENCHMARK_TEMPLATE(BM_Unary, OldErf, kk::op::Erf, true)->Name("BM_Erf<new>")->Arg(128 * 3072);
BENCHMARK_TEMPLATE(BM_Unary, OldGelu, kk::op::Gelu, false)->Name("BM_Gelu<old>")->Arg(128 * 3072);
BENCHMARK_TEMPLATE(BM_Unary, OldGelu, kk::op::Gelu, true)->Name("BM_Gelu<new>")->Arg(128 * 3072);
BENCHMARK_TEMPLATE(BM_Unary, OldTanh, kk::op::Tanh, false)->Name("BM_Tanh<old>")->Arg(128 * 768);
BENCHMARK_TEMPLATE(BM_Unary, OldTanh, kk::op::Tanh, true)->Name("BM_Tanh<new>")->Arg(128 * 768);
BENCHMARK_TEMPLATE(BM_Unary, OldGeluTanh, kk::op::GeluTanh, false)
    ->Name("BM_GeluTanh<old>")
    ->Arg(128 * 3072);
BENCHMARK_TEMPLATE(BM_Unary, OldGeluTanh, kk::op::GeluTanh, true)
    ->Name("BM_GeluTanh<new>")
    ->Arg(128 * 3072);

// ---- embedding gathers: 128 random tokens of a 30522 x H table; arg H ----
constexpr int64_t kVocab = 30522, kTokens = 128;

std::vector<int64_t> token_ids() {
  std::mt19937 g(7);
  std::uniform_int_distribution<int64_t> d(0, kVocab - 1);
  std::vector<int64_t> ids(kTokens);
  for (auto& v : ids) v = d(g);
  return ids;
}

// gather_s8.h is unchanged: GCC already vectorises its int8 -> float loop at -O2
// -fvect-cost-model=dynamic (x86 and aarch64, checked with -fopt-info-vec), so there is no old
// version to compare; reported for its GB/s next to the f32 gather.
void BM_GatherS8(benchmark::State& st) {
  const int64_t H = st.range(0);
  auto table = random_floats(kVocab * H, 8, -0.2f, 0.2f);
  std::vector<uint8_t> blob(kk::embedding_s8_bytes(kVocab, H));
  kk::quantize_embedding_s8(table.data(), kVocab, H, blob.data());
  const auto ids = token_ids();
  std::vector<float> out(kTokens * H);
  char err[256];
  for (auto _ : st) {
    kk::gather_s8(blob.data(), kVocab, H, ids.data(), kTokens, out.data(), "bench", "ids", err,
                  sizeof(err), nullptr);
    benchmark::DoNotOptimize(out.data());
  }
  set_rates(st, kTokens * H, kTokens * H * 5);
}
BENCHMARK(BM_GatherS8)->Arg(768)->Arg(256);

// f32 embedding gather: one memcpy per row, already a vector copy.
void BM_GatherF32(benchmark::State& st) {
  const int64_t H = st.range(0);
  auto table = random_floats(kVocab * H, 9, -0.2f, 0.2f);
  const auto ids = token_ids();
  std::vector<float> out(kTokens * H);
  char err[256];
  for (auto _ : st) {
    kk::gather(table.data(), 1, kVocab, H, ids.data(), kTokens, out.data(), false, "bench", "ids",
               err, sizeof(err), nullptr);
    benchmark::DoNotOptimize(out.data());
  }
  set_rates(st, kTokens * H, kTokens * H * 8);
}
BENCHMARK(BM_GatherF32)->Arg(768)->Arg(256);

}  // namespace

BENCHMARK_MAIN();
