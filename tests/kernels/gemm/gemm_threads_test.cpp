// Schedule::threads: a cap on the threads one GEMM call uses. A capped call gives the same bytes as
// an uncapped one (the plan only changes how items are cut, never a sum's order), and a cap of 1
// never leaves the calling thread. Schedule::prefetch only changes what is fetched ahead: the
// same bytes too.
#include <gtest/gtest.h>

#include "gemm_problem.h"

namespace kiln::kernels::gemm::testing {
namespace {

// Shapes whose plans split N (M small) and M (M large) on 3 threads, with and without the
// LayerNorm epilogue's second pass.
const int64_t kShapes[][3] = {{16, 200, 96}, {130, 96, 72}, {45, 161, 33}};

TEST(GemmThreads, CappedOrUnprefetchedCallsGiveTheSameBytes) {
  PoolBackend pool(3);
  for (const auto& shape : kShapes)
    for (bool ln : {false, true}) {
      const Problem p(shape[0], shape[1], shape[2], ln);
      for_both_tables([&](const auto& table) {
        for (const auto& v : table) {
          if (!v.supported()) continue;
          Schedule s = v.schedule;
          s.mc = 2 * s.mr;  // several row groups
          const std::vector<float> all = p.run(v, s, &pool.be);
          for (int cap : {1, 2, 5}) {
            Schedule c = s;
            c.threads = cap;
            EXPECT_TRUE(same_bytes(all, p.run(v, c, &pool.be)))
                << v.name << " M=" << p.M << " ln=" << ln << " threads=" << cap;
          }
          Schedule off = s;
          off.prefetch = 0;
          EXPECT_TRUE(same_bytes(all, p.run(v, off, &pool.be)))
              << v.name << " M=" << p.M << " ln=" << ln << " prefetch off";
        }
      });
    }
}

// The default variant of `table` with one row tile per item, capped at `cap` threads, on a
// counting backend of 4 threads.
template <class Table>
CountingBackend run_capped(const Table& table, const Problem& p, int cap) {
  Schedule s = table.chosen().schedule;
  s.mc = s.mr;
  s.threads = cap;
  CountingBackend be(4);
  p.run(table.chosen(), s, &be.be);
  return be;
}

TEST(GemmThreads, CapOfOneNeverCallsParallelFor) {
  for (bool ln : {false, true}) {
    const Problem p(64, 200, 96, ln);
    for_both_tables([&](const auto& table) { EXPECT_EQ(run_capped(table, p, 1).calls, 0); });
  }
}

TEST(GemmThreads, CapBoundsTheChunksOfEveryLoop) {
  for (bool ln : {false, true}) {
    // M = 16: the plan splits N, so the LayerNorm runs as its own pass.
    for (int64_t M : {16, 200}) {
      const Problem p(M, 200, 96, ln);
      for_both_tables([&](const auto& table) {
        const CountingBackend capped = run_capped(table, p, 2);
        EXPECT_GT(capped.calls, 0);
        EXPECT_LE(capped.max_chunks, 2) << "M=" << M << " ln=" << ln;
        // Uncapped, the same problem uses all four.
        EXPECT_EQ(run_capped(table, p, 0).max_chunks, 4) << "M=" << M << " ln=" << ln;
      });
    }
  }
}

}  // namespace
}  // namespace kiln::kernels::gemm::testing
