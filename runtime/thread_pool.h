// Persistent thread pool behind kiln_backend::parallel_for. Static chunking: a loop of n
// iterations with grain g is split into min(threads, ceil(n/g)) equal chunks; the calling thread
// runs chunk 0. Idle workers spin briefly, then sleep on a condition variable.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "kiln/backend.h"

namespace kiln::rt {

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }
  void parallel_for(int64_t n, int64_t grain, kiln_task_fn fn, void* ctx);

  // kiln_backend::parallel_for; `pool` is a ThreadPool* (or null: run inline).
  static void parallel_for_entry(void* pool, int64_t n, int64_t grain, kiln_task_fn fn, void* ctx);

 private:
  void worker_loop(int worker);

  std::vector<std::thread> workers_;
  // The current job, written by the caller before bumping generation_.
  kiln_task_fn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0, chunk_ = 0;
  int num_chunks_ = 0;

  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex wake_mutex_, done_mutex_;
  std::condition_variable wake_cv_, done_cv_;
};

// Threads to use when the caller asks for `requested` (<= 0: KILN_NUM_THREADS, else the cores).
int default_num_threads(int requested);

}  // namespace kiln::rt
