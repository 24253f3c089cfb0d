// Thread pool implementation; see thread_pool.h.
#include "runtime/thread_pool.h"

#include <sched.h>

#include <chrono>
#include <cstdlib>

namespace kiln::rt {
namespace {

// How long idle threads spin before blocking: long enough to bridge the gaps between the
// consecutive parallel loops of one run (a BERT layer issues dozens, microseconds apart), short
// enough not to burn a shared core between runs. Measured in time, not iterations, because
// `pause` costs ~10-140 cycles depending on the x86 core and `yield` ~1 cycle on a Cortex-A72.
constexpr auto kSpinTime = std::chrono::microseconds(50);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

// Set on pool threads and while the caller runs a chunk: a nested parallel_for runs inline.
thread_local bool t_in_parallel = false;

// Spins until done() or kSpinTime has passed; returns done().
template <typename Pred>
bool spin_until(Pred done) {
  const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  for (unsigned i = 1;; ++i) {
    if (done()) return true;
    cpu_relax();
    if ((i & 63) == 0 && std::chrono::steady_clock::now() > deadline) return done();
  }
}

int online_cpus() {
#ifdef CPU_COUNT
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  unsigned hw = std::thread::hardware_concurrency();
  return hw ? static_cast<int>(hw) : 1;
}

}  // namespace

int default_num_threads(int requested) {
  if (requested > 0) return requested;
  if (const char* env = std::getenv("KILN_NUM_THREADS")) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v > 0 && v <= 1024) return static_cast<int>(v);
  }
  return online_cpus();
}

ThreadPool::ThreadPool(int num_threads) {
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(wake_mutex_);
    stop_.store(true);
  }
  wake_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(int worker) {
  t_in_parallel = true;
  uint64_t seen = 0;
  while (true) {
    auto woken = [&] {
      return generation_.load(std::memory_order_acquire) != seen || stop_.load();
    };
    if (!spin_until(woken)) {
      std::unique_lock<std::mutex> lock(wake_mutex_);
      wake_cv_.wait(lock, woken);
    }
    if (stop_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    if (worker < num_chunks_) {
      int64_t begin = worker * chunk_;
      int64_t end = begin + chunk_ < n_ ? begin + chunk_ : n_;
      if (begin < end) fn_(ctx_, begin, end);
    }
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      { std::lock_guard<std::mutex> lock(done_mutex_); }
      done_cv_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, kiln_task_fn fn, void* ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int64_t chunks = (n + grain - 1) / grain;
  if (chunks > num_threads()) chunks = num_threads();
  if (chunks <= 1 || t_in_parallel) {
    fn(ctx, 0, n);
    return;
  }
  fn_ = fn;
  ctx_ = ctx;
  n_ = n;
  chunk_ = (n + chunks - 1) / chunks;
  num_chunks_ = static_cast<int>(chunks);
  // Every worker acknowledges every generation, so none can still be reading this job when the
  // next one is written.
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(wake_mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_cv_.notify_all();
  t_in_parallel = true;
  fn(ctx, 0, chunk_ < n ? chunk_ : n);
  t_in_parallel = false;
  auto all_done = [&] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!spin_until(all_done)) {
    std::unique_lock<std::mutex> lock(done_mutex_);
    done_cv_.wait(lock, all_done);
  }
}

void ThreadPool::parallel_for_entry(void* pool, int64_t n, int64_t grain, kiln_task_fn fn,
                                    void* ctx) {
  if (pool) {
    static_cast<ThreadPool*>(pool)->parallel_for(n, grain, fn, ctx);
  } else if (n > 0) {
    fn(ctx, 0, n);
  }
}

}  // namespace kiln::rt
