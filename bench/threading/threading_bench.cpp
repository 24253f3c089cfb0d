// Fork-join cost of kiln_backend::parallel_for per pool kind: the runtime's spinning pool (spin
// 50 us, then sleep), the same pool never spinning (a plain condition-variable pool) and OpenMP
// (libgomp, `omp parallel` with the pool's static split). Bodies: empty (n = threads items: pure
// overhead) and the LayerNorm kernel on 128 x 256 (the smallest that splits) and 512 x 256 floats,
// a few us of work like the row-wise ops a BERT layer runs between its GEMMs; "serial" is the
// LayerNorm with no backend. Calls go through kiln::kernels::parallel_for, as model.so's do. Wall
// time (UseRealTime) is the figure: the work is on several threads. On a shared machine compare
// kinds within one run.
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kiln/kernels/normalization.h"
#include "kiln/kernels/parallel.h"
#include "runtime/thread_pool.h"

namespace {

using kiln::rt::PoolKind;
using kiln::rt::ThreadPool;

const char* kind_name(PoolKind k) {
  switch (k) {
    case PoolKind::kSpin:
      return "spin";
    case PoolKind::kBlock:
      return "block";
    case PoolKind::kOpenMP:
      return "openmp";
  }
  return "?";
}

// A pool and the backend struct model.so would see.
struct Backend {
  Backend(int threads, PoolKind kind) : pool(threads, kind) {
    be = kiln_backend{KILN_ABI_VERSION, threads, &pool, &ThreadPool::parallel_for_entry};
  }
  ThreadPool pool;
  kiln_backend be;
};

void bm_fork_join(benchmark::State& state, PoolKind kind) {
  const int threads = static_cast<int>(state.range(0));
  Backend b(threads, kind);
  int64_t items = 0;
  for (auto _ : state) {
    kiln::kernels::parallel_for(&b.be, threads, 1,
                                [&](int64_t i0, int64_t i1) { benchmark::DoNotOptimize(i1 - i0); });
    ++items;
  }
  state.SetItemsProcessed(items);
}

// kind < 0: serial (no backend).
void bm_layernorm(benchmark::State& state, int kind) {
  const int64_t rows = state.range(0), n = 256;
  std::vector<float> x(rows * n), y(rows * n), scale(n, 1.5f), bias(n, 0.25f);
  std::mt19937 rng(0);
  std::normal_distribution<float> dist;
  for (float& v : x) v = dist(rng);
  std::unique_ptr<Backend> b;
  if (kind >= 0) b.reset(new Backend(2, static_cast<PoolKind>(kind)));
  const kiln_backend* be = b ? &b->be : nullptr;
  for (auto _ : state) {
    kiln::kernels::layernorm_f32(x.data(), scale.data(), bias.data(), y.data(), rows, n, 1e-12f,
                                 be);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * rows * n * 2 * sizeof(float));
}

int register_all() {
  const PoolKind kinds[] = {PoolKind::kSpin, PoolKind::kBlock, PoolKind::kOpenMP};
  for (PoolKind k : kinds)
    benchmark::RegisterBenchmark((std::string("fork_join/") + kind_name(k)).c_str(), bm_fork_join,
                                 k)
        ->ArgName("threads")
        ->Arg(2)
        ->Arg(4)
        ->UseRealTime();
  benchmark::RegisterBenchmark("layernorm_2t/serial", bm_layernorm, -1)
      ->ArgName("rows")
      ->Arg(128)
      ->Arg(512)
      ->UseRealTime();
  for (PoolKind k : kinds)
    benchmark::RegisterBenchmark((std::string("layernorm_2t/") + kind_name(k)).c_str(),
                                 bm_layernorm, static_cast<int>(k))
        ->ArgName("rows")
        ->Arg(128)
        ->Arg(512)
        ->UseRealTime();
  return 0;
}
const int registered = register_all();

}  // namespace

BENCHMARK_MAIN();
