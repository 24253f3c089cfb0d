// Helpers for kernel tests: deterministic random data, a threaded test backend (so that
// parallel_for really splits work), and index arithmetic for naive references.
#pragma once

#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "kiln/backend.h"

namespace kiln::kernels::testing {

inline std::vector<float> random_floats(int64_t n, uint32_t seed, float lo = -2.f, float hi = 2.f) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(g);
  return v;
}

inline int64_t numel(const std::vector<int64_t>& d) {
  int64_t n = 1;
  for (int64_t x : d) n *= x;
  return n;
}

// Multi-index of flat i in dims.
inline std::vector<int64_t> unravel(int64_t i, const std::vector<int64_t>& d) {
  std::vector<int64_t> idx(d.size());
  for (int k = static_cast<int>(d.size()) - 1; k >= 0; --k) {
    idx[k] = i % d[k];
    i /= d[k];
  }
  return idx;
}

// Flat offset in dims `d` of the output-aligned multi-index `idx` with numpy broadcasting.
inline int64_t broadcast_offset(const std::vector<int64_t>& idx, const std::vector<int64_t>& d) {
  int64_t off = 0;
  const size_t shift = idx.size() - d.size();
  for (size_t k = 0; k < d.size(); ++k) off = off * d[k] + (d[k] == 1 ? 0 : idx[k + shift]);
  return off;
}

// Splits [0, n) into num_threads chunks run on std::threads.
inline void thread_parallel_for(void* pool, int64_t n, int64_t grain, kiln_task_fn fn, void* ctx) {
  const int threads = *static_cast<int*>(pool);
  const int64_t chunk = std::max<int64_t>(grain, (n + threads - 1) / threads);
  std::vector<std::thread> ts;
  for (int64_t b = 0; b < n; b += chunk) ts.emplace_back(fn, ctx, b, std::min(n, b + chunk));
  for (auto& t : ts) t.join();
}

struct TestBackend {
  int threads = 3;
  kiln_backend be{KILN_ABI_VERSION, 3, &threads, thread_parallel_for};
  const kiln_backend* get() { return &be; }
};

}  // namespace kiln::kernels::testing
