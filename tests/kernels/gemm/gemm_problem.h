// A random GEMM problem (A, weights packed for FP32 and INT8, bias, GELU, optional LayerNorm) and
// two backends: the runtime's real pool, and a counting fake. Shared by the Schedule::threads and
// tuned-entry-point tests.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kiln/backend.h"
#include "kiln/kernels/gemm/gemm.h"
#include "kiln/kernels/gemm/s8_dispatch.h"
#include "runtime/thread_pool.h"

namespace kiln::kernels::gemm::testing {

// The runtime's pool behind a kiln_backend, as model.so sees it.
struct PoolBackend {
  explicit PoolBackend(int threads) : pool(threads) {
    be = kiln_backend{KILN_ABI_VERSION, pool.num_threads(), &pool,
                      &rt::ThreadPool::parallel_for_entry};
  }
  rt::ThreadPool pool;
  kiln_backend be;
};

// Counts parallel_for calls and the most chunks one call could run, then runs the body inline.
struct CountingBackend {
  explicit CountingBackend(int threads) {
    be = kiln_backend{KILN_ABI_VERSION, threads, this, &CountingBackend::parallel_for};
  }
  static void parallel_for(void* pool, int64_t n, int64_t grain, kiln_task_fn fn, void* ctx) {
    auto* self = static_cast<CountingBackend*>(pool);
    ++self->calls;
    const int64_t chunks = std::min<int64_t>(self->be.num_threads, (n + grain - 1) / grain);
    self->max_chunks = std::max(self->max_chunks, chunks);
    const int64_t chunk = (n + chunks - 1) / chunks;
    for (int64_t b = 0; b < n; b += chunk) fn(ctx, b, std::min(n, b + chunk));
  }
  kiln_backend be;
  int calls = 0;
  int64_t max_chunks = 0;
};

inline std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

struct Problem {
  int64_t M, N, K;
  std::vector<float> A, W, bias, ln_scale, ln_bias, packed;
  std::vector<uint8_t> s8_blob;
  PackedS8 s8;
  Epilogue ep;

  Problem(int64_t m, int64_t n, int64_t k, bool layer_norm) : M(m), N(n), K(k) {
    A = random_floats(M * K, 1);
    W = random_floats(K * N, 2);
    bias = random_floats(N, 3);
    ln_scale = random_floats(N, 4);
    ln_bias = random_floats(N, 5);
    packed.resize(packed_b_floats(K, N));
    pack_b_f32(W.data(), K, N, false, packed.data());
    s8_blob.resize(packed_b_s8_bytes(K, N) + 64);
    uint8_t* blob = s8_blob.data() + (64 - reinterpret_cast<uintptr_t>(s8_blob.data()) % 64) % 64;
    EXPECT_TRUE(quantize_pack_b_s8(W.data(), K, N, false, blob));
    s8 = packed_s8_view(blob, K, N);
    ep.bias = bias.data();
    ep.gelu = true;
    ep.layer_norm = layer_norm;
    ep.ln_scale = ln_scale.data();
    ep.ln_bias = ln_bias.data();
    ep.ln_epsilon = 1e-5f;
  }

  std::vector<float> run(const Variant& v, Schedule s, const kiln_backend* be) const {
    std::vector<float> C(M * N);
    gemm_f32_packed_with(v.kernels(), s, be, M, N, K, A.data(), K, packed.data(), C.data(), N, ep);
    return C;
  }
  std::vector<float> run(const S8Variant& v, Schedule s, const kiln_backend* be) const {
    std::vector<float> C(M * N);
    gemm_s8_packed_with(v.kernels(), s, be, M, N, K, A.data(), K, s8, C.data(), N, ep);
    return C;
  }
};

inline bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

// Calls f(table) for the FP32 and the INT8 variant table (Problem::run takes a row of either).
template <class F>
void for_both_tables(F&& f) {
  f(gemm_f32_table());
  f(gemm_s8_table());
}

}  // namespace kiln::kernels::gemm::testing
