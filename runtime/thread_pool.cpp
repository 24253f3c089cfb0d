// Thread pool implementation; see thread_pool.h.
#include "runtime/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#ifdef KILN_THREADING_OPENMP
#include <omp.h>
#endif

namespace kiln::rt {
namespace {

// How long idle threads spin before blocking, at most: long enough to bridge the gaps between the
// consecutive parallel loops of one run (a BERT layer issues dozens, microseconds apart), short
// enough not to burn a shared core between runs. Measured in time, not iterations, because
// `pause` costs ~10-140 cycles depending on the x86 core and `yield` ~1 cycle on a Cortex-A72.
constexpr auto kSpinTime = std::chrono::microseconds(50);
// Each waiting thread adapts its own spin budget within [kMinSpin, kSpinTime]: doubled when a
// spin succeeds, halved when it ends in sleep. With a core each the budget stays at the top; on
// oversubscribed cores (the partner is often descheduled) it falls and the pool behaves like a
// blocking one, instead of burning the core the partner waits for (docs/architecture.md,
// "Threading": a fixed 50 us spin ran BERT 1.3-9x slower at load 9-12 on 2 cores).
constexpr auto kMinSpin = std::chrono::microseconds(1);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

// Set on pool threads and while the caller runs a chunk: a nested parallel_for runs inline.
thread_local bool t_in_parallel = false;

// Spins until done() or `deadline`; returns done().
template <typename Pred>
bool spin_until(std::chrono::steady_clock::time_point deadline, Pred done) {
  for (unsigned i = 1;; ++i) {
    cpu_relax();
    if (done()) return true;
    if ((i & 15) == 0 && std::chrono::steady_clock::now() > deadline) return done();
  }
}

// Waits for done(): spins for `budget`, then sleeps via block(); adapts budget (see kMinSpin).
// A wait that ended in sleep but was over within `max` (futex round trip included) would have
// been caught by a longer spin: the budget grows again. Without this, one burst of contention
// left a process's pool at the 1 us floor, sleeping on every loop for the rest of its life
// (BERT-base seq 128, 2 threads: 67 ms instead of 48 in one compare.py run).
template <typename Pred, typename Block>
void adaptive_wait(std::chrono::microseconds& budget, std::chrono::microseconds max, Pred done,
                   Block block) {
  const auto grow = [&] { budget = std::min(max, std::max(kMinSpin, budget * 2)); };
  if (done()) {  // the common case: no clock read
    if (budget < max) grow();
    return;
  }
  const auto start = std::chrono::steady_clock::now();
  if (budget.count() > 0 && spin_until(start + budget, done)) {
    if (budget < max) grow();
    return;
  }
  block();
  if (std::chrono::steady_clock::now() - start <= max)
    grow();
  else
    budget = std::max(std::min(kMinSpin, max), budget / 2);
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

#ifdef KILN_THREADING_OPENMP
// The same static split as the pool, on an OpenMP team (libgomp's own spin-then-futex wait).
void openmp_parallel_for(int threads, int64_t n, int64_t grain, kiln_task_fn fn, void* ctx) {
  int64_t chunks = (n + grain - 1) / grain;
  if (chunks > threads) chunks = threads;
  if (chunks <= 1 || omp_in_parallel()) {
    fn(ctx, 0, n);
    return;
  }
  const int64_t chunk = (n + chunks - 1) / chunks;
  const int team = static_cast<int>(chunks);
#pragma omp parallel num_threads(team)
  {
    const int64_t begin = omp_get_thread_num() * chunk;
    const int64_t end = begin + chunk < n ? begin + chunk : n;
    if (begin < end) fn(ctx, begin, end);
  }
}
#endif

}  // namespace

PoolKind default_pool_kind() {
#ifdef KILN_THREADING_OPENMP
  if (const char* env = std::getenv("KILN_THREADING")) {
    if (std::strcmp(env, "block") == 0) return PoolKind::kBlock;
    if (std::strcmp(env, "openmp") == 0) return PoolKind::kOpenMP;
  }
#endif
  return PoolKind::kSpin;
}

int default_num_threads(int requested) {
  if (requested > 0) return requested;
  if (const char* env = std::getenv("KILN_NUM_THREADS")) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v > 0 && v <= 1024) return static_cast<int>(v);
  }
  return online_cpus();
}

ThreadPool::ThreadPool(int num_threads, PoolKind kind)
    : num_threads_(num_threads > 1 ? num_threads : 1), kind_(kind) {
#ifndef KILN_THREADING_OPENMP
  if (kind_ == PoolKind::kOpenMP) kind_ = PoolKind::kSpin;
#endif
  spin_ = kind_ == PoolKind::kSpin ? kSpinTime : std::chrono::microseconds(0);
  caller_spin_ = spin_;
  if (kind_ == PoolKind::kOpenMP) return;  // the OpenMP runtime owns its threads
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(wake_mutex_);
    stop_.store(true);
  }
  wake_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

// Sleeping is a Dekker handshake on two seq_cst pairs, so the common case (the other side still
// spinning) costs no mutex and no futex call:
//   worker: sleeping_workers_++ then re-read generation_ | caller: generation_++ then read
//           sleeping_workers_ (notify if > 0)
//   caller: caller_sleeping_ = true then re-read pending_ | worker: pending_-- then read
//           caller_sleeping_ (notify if set)
// In each pair one side must see the other's write, so a sleeper is never missed.
void ThreadPool::worker_loop(int worker) {
  t_in_parallel = true;
  uint64_t seen = 0;
  std::chrono::microseconds budget = spin_;
  while (true) {
    auto woken = [&] { return generation_.load() != seen || stop_.load(); };
    adaptive_wait(budget, spin_, woken, [&] {
      std::unique_lock<std::mutex> lock(wake_mutex_);
      sleeping_workers_.fetch_add(1);
      wake_cv_.wait(lock, woken);
      sleeping_workers_.fetch_sub(1, std::memory_order_relaxed);
    });
    if (stop_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    if (worker < num_chunks_) {
      int64_t begin = worker * chunk_;
      int64_t end = begin + chunk_ < n_ ? begin + chunk_ : n_;
      if (begin < end) fn_(ctx_, begin, end);
    }
    if (pending_.fetch_sub(1) == 1 && caller_sleeping_.load()) {
      std::lock_guard<std::mutex> lock(done_mutex_);
      done_cv_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, kiln_task_fn fn, void* ctx) noexcept {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
#ifdef KILN_THREADING_OPENMP
  if (kind_ == PoolKind::kOpenMP) return openmp_parallel_for(num_threads_, n, grain, fn, ctx);
#endif
  int64_t chunks = (n + grain - 1) / grain;
  if (chunks > num_threads_) chunks = num_threads_;
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
  generation_.fetch_add(1);
  if (sleeping_workers_.load() > 0) {
    { std::lock_guard<std::mutex> lock(wake_mutex_); }
    wake_cv_.notify_all();
  }
  t_in_parallel = true;
  fn(ctx, 0, chunk_ < n ? chunk_ : n);
  t_in_parallel = false;
  auto all_done = [&] { return pending_.load() == 0; };
  adaptive_wait(caller_spin_, spin_, all_done, [&] {
    std::unique_lock<std::mutex> lock(done_mutex_);
    // A read-modify-write, not a store: qemu-user on x86 does not keep an aarch64 store-release
    // ordered before the following load-acquire (the store can sit in the host's store buffer
    // while pending_ is read), so a plain seq_cst store lost this wake-up under qemu and the
    // caller slept forever. Every side of both handshakes is an RMW now.
    caller_sleeping_.exchange(true);
    done_cv_.wait(lock, all_done);
    caller_sleeping_.store(false, std::memory_order_relaxed);
  });
}

void ThreadPool::parallel_for_entry(void* pool, int64_t n, int64_t grain, kiln_task_fn fn,
                                    void* ctx) noexcept {
  if (pool) {
    static_cast<ThreadPool*>(pool)->parallel_for(n, grain, fn, ctx);
  } else if (n > 0) {
    fn(ctx, 0, n);
  }
}

}  // namespace kiln::rt
