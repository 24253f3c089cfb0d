// Persistent thread pool behind kiln_backend::parallel_for. Static chunking: a loop of n
// iterations with grain g is split into min(threads, ceil(n/g)) equal chunks; the calling thread
// runs chunk 0. A waiting thread (worker between loops, caller for the workers) spins for an
// adaptive budget of at most 50 us, then sleeps on a condition variable; the mutex and the notify
// are only paid when the other side really sleeps (see thread_pool.cpp).
//
// The benchmark-only build (KILN_THREADING_OPENMP, bench/threading/) adds an OpenMP variant of the
// same loop, picked at run time with KILN_THREADING=openmp, to compare the two on whole models.
// The shipped runtime keeps the spinning pool (measured in docs/architecture.md, "Threading").
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "kiln/backend.h"

namespace kiln::rt {

// How idle threads wait. kBlock never spins (a plain condition-variable pool, for comparison);
// kOpenMP runs loops with `#pragma omp parallel` and exists only when KILN_THREADING_OPENMP is
// defined (otherwise it means kSpin).
enum class PoolKind { kSpin, kBlock, kOpenMP };

// kSpin, or KILN_THREADING=spin|block|openmp in the benchmark-only build.
PoolKind default_pool_kind();

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads, PoolKind kind = default_pool_kind());
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }
  PoolKind kind() const { return kind_; }
  void parallel_for(int64_t n, int64_t grain, kiln_task_fn fn, void* ctx) noexcept;

  // kiln_backend::parallel_for; `pool` is a ThreadPool* (or null: run inline).
  static void parallel_for_entry(void* pool, int64_t n, int64_t grain, kiln_task_fn fn,
                                 void* ctx) noexcept;

 private:
  void worker_loop(int worker);

  int num_threads_ = 1;
  PoolKind kind_ = PoolKind::kSpin;
  std::chrono::microseconds spin_{0};         // the most a waiting thread spins
  std::chrono::microseconds caller_spin_{0};  // the caller's adaptive budget
  std::vector<std::thread> workers_;

  // Written by the caller, read by the workers: the current job, published by bumping generation_.
  alignas(64) std::atomic<uint64_t> generation_{0};
  kiln_task_fn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0, chunk_ = 0;
  int num_chunks_ = 0;
  std::atomic<bool> stop_{false};

  // Written by the workers as they finish; on its own cache line so that the decrements do not
  // invalidate the line the spinning workers poll.
  alignas(64) std::atomic<int> pending_{0};
  std::atomic<bool> caller_sleeping_{false};

  // Rarely written: only threads that give up spinning touch these.
  alignas(64) std::atomic<int> sleeping_workers_{0};
  std::mutex wake_mutex_, done_mutex_;
  std::condition_variable wake_cv_, done_cv_;
};

// Threads to use when the caller asks for `requested` (<= 0: KILN_NUM_THREADS, else the cores).
int default_num_threads(int requested);

}  // namespace kiln::rt
