// The compiler's INT8 emulation GEMM (compiler/quantize/host_gemm.h, which --min-cosine and
// quant-report run once per candidate layer) against the double dot products it replaced, on
// BERT-base Dense shapes at seq 128. GFLOP/s in "GFLOPS" (2 per multiply-add). The compiler is
// built for baseline x86-64; host_gemm picks its AVX2 or AVX-512 clone at load time, the old
// loop ran as built.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "compiler/quantize/host_gemm.h"

namespace {

using kiln::quantize::host_gemm;
using kiln::quantize::PackedPanels;

// The replaced loop: per output, a dot product of x's row and W^T's row in double, eight chains.
double dot(const float* a, const float* b, int64_t k) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t p = 0;
  for (; p + 8 <= k; p += 8)
    for (int l = 0; l < 8; ++l) s[l] += double(a[p + l]) * double(b[p + l]);
  for (; p < k; ++p) s[0] += double(a[p]) * double(b[p]);
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

struct Operands {
  int64_t m, k, n;
  std::vector<float> x, w, wt;  // x [M, K], W [K, N], W^T [N, K]
  explicit Operands(const benchmark::State& st) : m(st.range(0)), k(st.range(1)), n(st.range(2)) {
    std::mt19937 rng(1);
    std::uniform_int_distribution<int> d(-127, 127);  // int8 values, as the INT8 emulation has
    x.resize(m * k), w.resize(k * n), wt.resize(n * k);
    for (float& v : x) v = float(d(rng));
    for (int64_t p = 0; p < k; ++p)
      for (int64_t j = 0; j < n; ++j) wt[j * k + p] = w[p * n + j] = float(d(rng));
  }
  void count(benchmark::State& st) const {
    st.counters["GFLOPS"] =
        benchmark::Counter(2.0 * m * k * n, benchmark::Counter::kIsIterationInvariantRate,
                           benchmark::Counter::kIs1000);
  }
};

void BM_double_dots(benchmark::State& st) {
  const Operands o(st);
  std::vector<double> y(o.m * o.n);
  for (auto _ : st) {
    for (int64_t i = 0; i < o.m; ++i)
      for (int64_t j = 0; j < o.n; ++j) y[i * o.n + j] = dot(&o.x[i * o.k], &o.wt[j * o.k], o.k);
    benchmark::DoNotOptimize(y.data());
  }
  o.count(st);
}

// Packing included: the emulation packs each weight once per run.
void BM_host_gemm(benchmark::State& st) {
  const Operands o(st);
  std::vector<double> y(o.m * o.n);
  for (auto _ : st) {
    host_gemm(o.x.data(), o.m, PackedPanels(o.w.data(), o.k, o.n), y.data());
    benchmark::DoNotOptimize(y.data());
  }
  o.count(st);
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "K", "N"});
  for (auto [k, n] : {std::pair{768, 768}, {768, 3072}, {3072, 768}}) b->Args({128, k, n});
}

BENCHMARK(BM_double_dots)->Apply(shapes)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_host_gemm)->Apply(shapes)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
