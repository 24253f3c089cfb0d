// ThreadPool (runtime/thread_pool.cpp) behind kiln_backend::parallel_for: every index exactly
// once over odd n / grain / thread counts (up to 16 threads on a 2-core machine), the static split,
// the serial and nested fallbacks, the sleep / wake handshakes under many back-to-back calls, and
// that an idle pool sleeps instead of spinning. Built again with KILN_THREADING_OPENMP (host only)
// to check the benchmark-only OpenMP variant the same way.
#include <gtest/gtest.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kiln/kernels/parallel.h"
#include "runtime/thread_pool.h"

namespace kiln::rt {
namespace {

std::vector<PoolKind> kinds() {
#ifdef KILN_THREADING_OPENMP
  return {PoolKind::kSpin, PoolKind::kBlock, PoolKind::kOpenMP};
#else
  return {PoolKind::kSpin, PoolKind::kBlock};
#endif
}

std::string kind_name(PoolKind k) {
  return k == PoolKind::kSpin ? "spin" : k == PoolKind::kBlock ? "block" : "openmp";
}

// Records every [begin, end) a parallel_for hands out, and on which thread.
struct Recorder {
  std::vector<std::atomic<int>> hits;
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> chunks;
  std::vector<std::thread::id> threads;

  explicit Recorder(int64_t n) : hits(n) {}
  static void task(void* ctx, int64_t b, int64_t e) {
    auto* r = static_cast<Recorder*>(ctx);
    for (int64_t i = b; i < e; ++i) r->hits[i].fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(r->mu);
    r->chunks.emplace_back(b, e);
    r->threads.push_back(std::this_thread::get_id());
  }
};

TEST(ThreadPool, EveryIndexExactlyOnceAndStaticSplit) {
  for (PoolKind kind : kinds()) {
    for (int threads : {2, 3, 5, 16}) {
      ThreadPool pool(threads, kind);
      ASSERT_EQ(pool.num_threads(), threads);
      for (int64_t n : {1, 2, 3, 7, 16, 63, 1000, 1001}) {
        for (int64_t grain : {1, 3, 64, 1000, 5000}) {
          SCOPED_TRACE(kind_name(kind) + " threads " + std::to_string(threads) + " n " +
                       std::to_string(n) + " grain " + std::to_string(grain));
          Recorder r(n);
          ThreadPool::parallel_for_entry(&pool, n, grain, &Recorder::task, &r);
          for (int64_t i = 0; i < n; ++i) ASSERT_EQ(r.hits[i].load(), 1) << "index " << i;
          // Split into min(threads, ceil(n / grain)) chunks of ceil(n / chunks) iterations (the
          // last shorter); empty trailing chunks are not called (n = 7 on 5: 2, 2, 2, 1).
          const int64_t chunks = std::min<int64_t>(threads, (n + grain - 1) / grain);
          const int64_t chunk = (n + chunks - 1) / chunks;
          const int64_t want = (n + chunk - 1) / chunk;
          ASSERT_EQ(static_cast<int64_t>(r.chunks.size()), want);
          std::sort(r.chunks.begin(), r.chunks.end());
          for (size_t c = 0; c < r.chunks.size(); ++c) {
            EXPECT_EQ(r.chunks[c].first, static_cast<int64_t>(c) * chunk);
            EXPECT_EQ(r.chunks[c].second, std::min(n, r.chunks[c].first + chunk));
          }
          // Distinct chunks run on distinct threads, chunk 0 on the caller.
          std::vector<std::thread::id> ids = r.threads;
          std::sort(ids.begin(), ids.end());
          EXPECT_EQ(std::unique(ids.begin(), ids.end()) - ids.begin(), want);
        }
      }
    }
  }
}

TEST(ThreadPool, CallerRunsTheFirstChunk) {
  for (PoolKind kind : kinds()) {
    ThreadPool pool(2, kind);
    Recorder r(2);
    pool.parallel_for(2, 1, &Recorder::task, &r);
    ASSERT_EQ(r.chunks.size(), 2u);
    for (size_t c = 0; c < 2; ++c) {
      const bool on_caller = r.threads[c] == std::this_thread::get_id();
      EXPECT_EQ(on_caller, r.chunks[c].first == 0) << kind_name(kind);
    }
  }
}

TEST(ThreadPool, SerialFallbacks) {
  // One thread: no workers, the body runs once, inline, over everything.
  for (PoolKind kind : kinds()) {
    ThreadPool pool(1, kind);
    EXPECT_EQ(pool.num_threads(), 1);
    Recorder r(100);
    pool.parallel_for(100, 1, &Recorder::task, &r);
    ASSERT_EQ(r.chunks.size(), 1u);
    EXPECT_EQ(r.chunks[0], std::make_pair(int64_t{0}, int64_t{100}));
    EXPECT_EQ(r.threads[0], std::this_thread::get_id());
  }
  // No pool (what a 1-thread model passes), n <= 0 and a non-positive grain.
  Recorder r(10);
  ThreadPool::parallel_for_entry(nullptr, 10, 1, &Recorder::task, &r);
  ASSERT_EQ(r.chunks.size(), 1u);
  ThreadPool::parallel_for_entry(nullptr, 0, 1, &Recorder::task, &r);
  ThreadPool::parallel_for_entry(nullptr, -3, 1, &Recorder::task, &r);
  EXPECT_EQ(r.chunks.size(), 1u);
  ThreadPool pool(3);
  pool.parallel_for(0, 1, &Recorder::task, &r);
  EXPECT_EQ(r.chunks.size(), 1u);
  Recorder r2(9);
  pool.parallel_for(9, 0, &Recorder::task, &r2);
  EXPECT_EQ(r2.chunks.size(), 3u);
  for (int64_t i = 0; i < 9; ++i) EXPECT_EQ(r2.hits[i].load(), 1);
}

TEST(ThreadPool, KernelParallelForSkipsThePoolForOneThreadOrOneChunk) {
  ThreadPool pool(4);
  int entries = 0;
  struct Counting {
    ThreadPool* pool;
    int* entries;
  } counting{&pool, &entries};
  // A backend that counts how often the kernels reach the pool.
  static Counting* current = nullptr;
  current = &counting;
  auto entry = [](void*, int64_t n, int64_t grain, kiln_task_fn fn, void* ctx) {
    ++*current->entries;
    ThreadPool::parallel_for_entry(current->pool, n, grain, fn, ctx);
  };
  kiln_backend be{KILN_ABI_VERSION, 4, &pool, entry};
  std::vector<int> seen(100, 0);
  auto body = [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) ++seen[i];
  };
  kiln::kernels::parallel_for(&be, 100, 100, body);  // one chunk: inline
  EXPECT_EQ(entries, 0);
  kiln_backend one = be;
  one.num_threads = 1;
  kiln::kernels::parallel_for(&one, 100, 1, body);  // one thread: inline
  EXPECT_EQ(entries, 0);
  kiln::kernels::parallel_for(nullptr, 100, 1, body);
  EXPECT_EQ(entries, 0);
  kiln::kernels::parallel_for(&be, 100, 10, body);
  EXPECT_EQ(entries, 1);
  for (int v : seen) EXPECT_EQ(v, 4);
}

TEST(ThreadPool, NestedCallsRunInline) {
  for (PoolKind kind : kinds()) {
    ThreadPool pool(3, kind);
    kiln_backend be{KILN_ABI_VERSION, 3, &pool, &ThreadPool::parallel_for_entry};
    constexpr int64_t kOuter = 6, kInner = 50;
    std::vector<std::atomic<int>> hits(kOuter * kInner);
    std::atomic<int> inner_on_other_thread{0};
    kiln::kernels::parallel_for(&be, kOuter, 1, [&](int64_t o0, int64_t o1) {
      const auto me = std::this_thread::get_id();
      for (int64_t o = o0; o < o1; ++o)
        kiln::kernels::parallel_for(&be, kInner, 1, [&](int64_t i0, int64_t i1) {
          if (std::this_thread::get_id() != me) inner_on_other_thread.fetch_add(1);
          for (int64_t i = i0; i < i1; ++i) hits[o * kInner + i].fetch_add(1);
        });
    });
    EXPECT_EQ(inner_on_other_thread.load(), 0) << kind_name(kind);
    for (auto& h : hits) ASSERT_EQ(h.load(), 1) << kind_name(kind);
  }
}

// Many back-to-back loops, some after pauses longer than the spin window so the workers and the
// caller go through the sleep / wake paths; a lost wake-up would hang here (ctest's timeout).
TEST(ThreadPool, ManyCallsWithSleepsInBetween) {
  for (PoolKind kind : kinds()) {
    for (int threads : {2, 8}) {
      ThreadPool pool(threads, kind);
      int64_t total = 0;
      struct Ctx {
        std::atomic<int64_t> sum{0};
      } ctx;
      auto task = [](void* c, int64_t b, int64_t e) {
        int64_t s = 0;
        for (int64_t i = b; i < e; ++i) s += i;
        static_cast<Ctx*>(c)->sum.fetch_add(s, std::memory_order_relaxed);
      };
      for (int call = 0; call < 3000; ++call) {
        const int64_t n = 1 + call % 37;
        pool.parallel_for(n, 1, task, &ctx);
        total += n * (n - 1) / 2;
        if (call % 500 == 499) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        if (call % 100 == 50) std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      EXPECT_EQ(ctx.sum.load(), total) << kind_name(kind) << " " << threads;
    }
  }
}

TEST(ThreadPool, ManyPoolsCreatedAndDestroyed) {
  for (PoolKind kind : kinds()) {
    for (int i = 0; i < 50; ++i) {
      ThreadPool pool(2 + i % 7, kind);
      if (i % 2) {
        Recorder r(20);
        pool.parallel_for(20, 1, &Recorder::task, &r);
        for (auto& h : r.hits) ASSERT_EQ(h.load(), 1);
      }
    }
  }
}

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// After a burst of loops the workers (and libgomp's, for OpenMP) must stop spinning: one second
// of idling costs well under 0.1 s of CPU. Workers that spun forever would burn several tenths of
// a second each even on a loaded machine (qemu included), so this does not depend on timing.
TEST(ThreadPool, IdlePoolSleeps) {
  for (PoolKind kind : kinds()) {
    ThreadPool pool(4, kind);
    Recorder r(1000);
    for (int i = 0; i < 100; ++i) pool.parallel_for(4, 1, &Recorder::task, &r);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // past any spin window
    const double before = process_cpu_seconds();
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const double used = process_cpu_seconds() - before;
    EXPECT_LT(used, 0.1) << kind_name(kind) << ": idle pool used " << used << " s of CPU in 1 s";
  }
}

TEST(ThreadPool, EntryPointsDoNotThrow) {
  // parallel_for is called from model.so through a C function pointer: nothing may escape it.
  static_assert(noexcept(ThreadPool::parallel_for_entry(nullptr, 0, 0, nullptr, nullptr)));
  static_assert(noexcept(std::declval<ThreadPool&>().parallel_for(0, 0, nullptr, nullptr)));
}

TEST(ThreadPool, DefaultNumThreads) {
  EXPECT_EQ(default_num_threads(3), 3);
  EXPECT_GE(default_num_threads(0), 1);
}

}  // namespace
}  // namespace kiln::rt
