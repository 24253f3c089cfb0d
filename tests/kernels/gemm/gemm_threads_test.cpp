// Schedule::threads: a cap on the threads one GEMM call uses. A capped call gives the same bytes as
// an uncapped one (the plan only changes how items are cut, never a sum's order), and a cap of 1
// never leaves the calling thread.
#include <gtest/gtest.h>

#include "gemm_problem.h"

namespace kiln::kernels::gemm::testing {
namespace {

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
