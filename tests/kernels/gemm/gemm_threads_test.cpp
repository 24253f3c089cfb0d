// Schedule::threads: a cap on the threads one GEMM call uses. A capped call gives the same bytes as
// an uncapped one (the plan only changes how items are cut, never a sum's order), and a cap of 1
// never leaves the calling thread.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kiln/backend.h"
#include "kiln/kernels/gemm/gemm.h"
#include "kiln/kernels/gemm/s8_dispatch.h"
#include "runtime/thread_pool.h"

namespace kiln::kernels::gemm::testing {
namespace {

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

std::vector<float> random_floats(size_t n, uint32_t seed) {
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

  std::vector<float> f32(const Variant& v, Schedule s, const kiln_backend* be) const {
    std::vector<float> C(M * N);
    gemm_f32_packed_with(v.kernels(), s, be, M, N, K, A.data(), K, packed.data(), C.data(), N, ep);
    return C;
  }
  std::vector<float> s8_(const S8Variant& v, Schedule s, const kiln_backend* be) const {
    std::vector<float> C(M * N);
    gemm_s8_packed_with(v.kernels(), s, be, M, N, K, A.data(), K, s8, C.data(), N, ep);
    return C;
  }
};

bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

// Shapes whose plans split N (M small) and M (M large) on 3 threads, with and without the
// LayerNorm epilogue's second pass.
const int64_t kShapes[][3] = {{16, 200, 96}, {130, 96, 72}, {45, 161, 33}};

TEST(GemmThreads, CappedCallsGiveTheSameBytes) {
  PoolBackend pool(3);
  for (const auto& shape : kShapes)
    for (bool ln : {false, true}) {
      const Problem p(shape[0], shape[1], shape[2], ln);
      for (const Variant& v : gemm_f32_table()) {
        if (!v.supported()) continue;
        Schedule s = v.schedule;
        s.mc = 2 * s.mr;  // several row groups
        const std::vector<float> all = p.f32(v, s, &pool.be);
        for (int cap : {1, 2, 5}) {
          Schedule c = s;
          c.threads = cap;
          EXPECT_TRUE(same_bytes(all, p.f32(v, c, &pool.be)))
              << v.name << " M=" << p.M << " ln=" << ln << " threads=" << cap;
        }
      }
      for (const S8Variant& v : gemm_s8_table()) {
        if (!v.supported()) continue;
        Schedule s = v.schedule;
        s.mc = 2 * s.mr;
        const std::vector<float> all = p.s8_(v, s, &pool.be);
        for (int cap : {1, 2, 5}) {
          Schedule c = s;
          c.threads = cap;
          EXPECT_TRUE(same_bytes(all, p.s8_(v, c, &pool.be)))
              << v.name << " M=" << p.M << " ln=" << ln << " threads=" << cap;
        }
      }
    }
}

TEST(GemmThreads, CapOfOneNeverCallsParallelFor) {
  for (bool ln : {false, true}) {
    const Problem p(64, 200, 96, ln);
    Schedule s = gemm_f32_variant().schedule;
    s.mc = s.mr;
    s.threads = 1;
    CountingBackend f32(4);
    p.f32(gemm_f32_variant(), s, &f32.be);
    EXPECT_EQ(f32.calls, 0);
    Schedule s8 = gemm_s8_variant().schedule;
    s8.mc = s8.mr;
    s8.threads = 1;
    CountingBackend q(4);
    p.s8_(gemm_s8_variant(), s8, &q.be);
    EXPECT_EQ(q.calls, 0);
  }
}

TEST(GemmThreads, CapBoundsTheChunksOfEveryLoop) {
  for (bool ln : {false, true}) {
    // M = 16: the plan splits N, so the LayerNorm runs as its own pass.
    for (int64_t M : {16, 200}) {
      const Problem p(M, 200, 96, ln);
      Schedule s = gemm_f32_variant().schedule;
      s.mc = s.mr;
      s.threads = 2;
      CountingBackend f32(4);
      p.f32(gemm_f32_variant(), s, &f32.be);
      EXPECT_GT(f32.calls, 0);
      EXPECT_LE(f32.max_chunks, 2) << "M=" << M << " ln=" << ln;
      Schedule s8 = gemm_s8_variant().schedule;
      s8.mc = s8.mr;
      s8.threads = 2;
      CountingBackend q(4);
      p.s8_(gemm_s8_variant(), s8, &q.be);
      EXPECT_GT(q.calls, 0);
      EXPECT_LE(q.max_chunks, 2) << "M=" << M << " ln=" << ln;
      // Uncapped, the same problem uses all four.
      s.threads = 0;
      CountingBackend all(4);
      p.f32(gemm_f32_variant(), s, &all.be);
      EXPECT_EQ(all.max_chunks, 4);
    }
  }
}

}  // namespace
}  // namespace kiln::kernels::gemm::testing
